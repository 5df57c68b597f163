"""Which features earn their place: the backtest with each candidate group left out, on the real UCI log.

    python benchmarks/feature_ablation.py                     # both tasks, the default backtest plan
    python benchmarks/feature_ablation.py --until 2011-09-10  # the nine-month log
    python benchmarks/feature_ablation.py --store data/propensity.duckdb   # your own ingested log

For each task the backtest table is built once (``training.dataset.prepare_task``, the default config's
origins and horizons); then logistic regression and LightGBM, each with fixed parameters so that the
comparison is not tuning noise, are fitted at every origin on all features, on all but one candidate
group, and on the features before the candidates were added. Reported: ROC-AUC and PR-AUC on the latest
origin (the test origin) and their mean over all origins, and each variant's change against "all".
Needs ../shared/data/online_retail unless ``--store`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from uci_backtest import markdown, uci_store  # noqa: E402

CANDIDATES = {
    "rhythm regularity (gap_cv)": ["gap_cv"],
    "second-to-last purchase": ["recency_prev_days"],
    "last 7/14 days": ["invoices_7d", "invoices_14d"],
    "frequency trend": ["invoice_trend"],
    "same season a year ago": ["invoices_year_ago_90d"],
    "price level": ["unit_price_mean"],
    "repeat products": ["repeat_product_share"],
}
PARAMS = {
    "logistic": {"C": 1.0},
    "lightgbm": {
        "n_estimators": 300,
        "learning_rate": 0.03,
        "num_leaves": 15,
        "min_child_samples": 50,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
    },
}


def without(spec, columns):
    from models.spec import FeatureSpec

    return FeatureSpec(tuple(c for c in spec.numeric if c not in columns), spec.categorical)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=["churn", "purchase"])
    parser.add_argument("--until", default=None, help="keep only lines before this date")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "feature_ablation")
    parser.add_argument("--store", type=Path, default=None, help="a Propensity store to use instead of UCI")
    args = parser.parse_args()

    import pandas as pd

    from features.transactions import open_store_log
    from models.families import get_family
    from training.config import load_config
    from training.dataset import prepare_task
    from training.metrics import score_metrics
    from training.tune import score_origins

    cfg = load_config()
    store = args.store or uci_store(args.out, args.until)
    every = [c for cols in CANDIDATES.values() for c in cols]
    with open_store_log(store) as log:
        for task in args.tasks:
            t0 = time.perf_counter()
            data = prepare_task(log, task, cfg)
            variants = {
                "all": [],
                **{f"without {k}": v for k, v in CANDIDATES.items()},
                "none of the candidates": every,
            }
            rows = []
            for family, params in PARAMS.items():
                for variant, dropped in variants.items():
                    trimmed = dataclasses.replace(data, spec=without(data.spec, dropped))
                    scores = score_origins(get_family(family), params, trimmed, data.plan.origins, cfg)
                    metrics = [score_metrics(s.y, s.p) for s in scores]
                    rows.append(
                        {
                            "family": family,
                            "variant": variant,
                            "test roc_auc": metrics[-1]["roc_auc"],
                            "test pr_auc": metrics[-1]["pr_auc"],
                            "mean roc_auc": sum(m["roc_auc"] for m in metrics) / len(metrics),
                            "mean pr_auc": sum(m["pr_auc"] for m in metrics) / len(metrics),
                        }
                    )
            table = pd.DataFrame(rows)
            for metric in ("test roc_auc", "test pr_auc", "mean roc_auc", "mean pr_auc"):
                reference = table[table["variant"] == "all"].set_index("family")[metric]
                table[f"Δ {metric}"] = table[metric] - table["family"].map(reference)
            shown = ["family", "variant", "test roc_auc", "test pr_auc", "mean roc_auc", "mean pr_auc"]
            shown += ["Δ test roc_auc", "Δ test pr_auc", "Δ mean roc_auc", "Δ mean pr_auc"]
            print(f"\n## {task} (horizon {cfg.horizons[task]} days), {time.perf_counter() - t0:.0f} s\n")
            print(f"Origins: {', '.join(str(o.as_of) for o in data.plan.origins)}; the last is the test origin.\n")
            print(markdown(table[shown]))


if __name__ == "__main__":
    main()
