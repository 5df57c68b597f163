"""Train, compare, calibrate and register: one MLflow parent run per task, a child run per family."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.inspection import permutation_importance
from sklearn.model_selection import train_test_split

from features.build import Horizons, build_training_table, data_window
from features.clusters import fit_clusters
from features.errors import PropensityError
from features.pipeline import Log
from features.segments import assign_segments, load_segment_rules
from models.families import get_family
from models.packaged import PropensityModel
from models.registry import ALIAS, MODEL_NAMES
from models.spec import FeatureSpec, model_input, spec_for_columns
from training.config import TrainingConfig
from training.metrics import paired_bootstrap_se, score_metrics, segment_metrics
from training.plots import plot_all, plot_importance
from training.split import TimeSplit, plan_split
from training.tune import tune_family

LEADERBOARD_COLUMNS = [
    "family",
    "kind",
    "valid_metric",
    "test_roc_auc",
    "test_pr_auc",
    "test_log_loss",
    "test_brier",
    "test_ece",
    "test_lift_at_10",
    "test_precision_at_10",
    "fit_s",
    "predict_s",
]


@dataclass
class TaskData:
    task: str
    split: TimeSplit
    spec: FeatureSpec
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    window: tuple

    def xy(self, part: str):
        frame = getattr(self, part)
        return model_input(frame, self.spec), frame[self.task].to_numpy()

    def fingerprint(self) -> dict:
        out = {
            "task": self.task,
            "horizon_days": self.split.horizon_days,
            "data_first_ts": str(self.window[0]),
            "data_last_ts": str(self.window[1]),
        }
        for part in ("train", "valid", "test"):
            frame = getattr(self, part)
            out[f"{part}_cutoffs"] = sorted(str(d.date()) for d in frame["as_of"].unique())
            out[f"{part}_rows"] = len(frame)
            out[f"{part}_rate"] = round(float(frame[self.task].mean()), 4)
        table = pd.concat([self.train, self.valid, self.test])
        digest = pd.util.hash_pandas_object(table[["customer_id", "as_of", self.task]], index=False).to_numpy()
        out["content_sha1"] = hashlib.sha1(digest.tobytes()).hexdigest()[:16]
        return out


@dataclass
class TaskResult:
    task: str
    leaderboard: pd.DataFrame
    champion: str
    champion_test: dict
    version: int | None
    run_id: str
    margins: dict = field(default_factory=dict)
    selection: dict = field(default_factory=dict)  # how the champion was chosen (choose_champion)
    margin_se: dict = field(default_factory=dict)  # paired bootstrap SE of each margin, on the test cutoff


def task_horizons(task: str, cfg: TrainingConfig) -> Horizons:
    """Horizons for one task's training table (only that task's label is used)."""
    h = cfg.horizons[task]
    return Horizons(churn_horizon_days=h, purchase_horizon_days=h, lookback_days=cfg.lookback_days)


def prepare_task(log: Log, task: str, cfg: TrainingConfig) -> TaskData:
    first_ts, last_ts = data_window(log.table)
    split = plan_split(first_ts, last_ts, cfg.horizons[task], cfg.min_history_days)
    table = build_training_table(log.table, split.all, task_horizons(task, cfg))
    table = pd.concat([table, assign_segments(table, load_segment_rules())[["rfm_segment"]]], axis=1)
    parts = {
        name: table[table["as_of"].isin(pd.to_datetime(list(cutoffs)))].reset_index(drop=True)
        for name, cutoffs in (("train", split.train), ("valid", [split.valid]), ("test", [split.test]))
    }
    for name, frame in parts.items():
        if frame.empty or frame[task].nunique() < 2:
            raise PropensityError(
                f"The {name} cutoffs of the {task} task have {len(frame)} customers and a single label class: there is nothing to learn."
            )
    if not set(parts["train"]["as_of"]).isdisjoint(set(parts["test"]["as_of"]) | set(parts["valid"]["as_of"])):
        raise AssertionError("a validation or test cutoff leaked into training")
    return TaskData(
        task, split, spec_for_columns(table.columns), parts["train"], parts["valid"], parts["test"], (first_ts, last_ts)
    )


def _subsample(X, y, max_rows: int, seed: int):
    if len(y) <= max_rows:
        return X, y
    X_s, _, y_s, _ = train_test_split(X, y, train_size=max_rows, stratify=y, random_state=seed)
    return X_s, y_s


def _family_params(name: str, task: str, cfg: TrainingConfig) -> dict:
    return {"horizon_days": cfg.horizons[task], "target": task} if name == "bgnbd" else {}


def run_family(name: str, data: TaskData, cfg: TrainingConfig) -> dict:
    family = get_family(name)
    X_tr, y_tr = data.xy("train")
    if name == "svm":
        X_tr, y_tr = _subsample(X_tr, y_tr, cfg.svm_max_rows, cfg.seed)
    X_va, y_va = data.xy("valid")
    X_te, y_te = data.xy("test")
    params = tune_family(family, data.spec, X_tr, y_tr, X_va, y_va, cfg) or _family_params(name, data.task, cfg)
    model = family.build(data.spec, params, cfg.seed)
    t0 = time.perf_counter()
    model.fit(X_tr, y_tr)
    fit_s = time.perf_counter() - t0
    p_va = model.predict_proba(X_va)[:, 1]
    t0 = time.perf_counter()
    p_te = model.predict_proba(X_te)[:, 1]
    predict_s = time.perf_counter() - t0
    return {
        "name": name,
        "family": family,
        "params": params,
        "model": model,
        "fit_s": fit_s,
        "predict_s": predict_s,
        "p_valid": p_va,
        "p_test": p_te,
        "valid": score_metrics(y_va, p_va),
        "test": score_metrics(y_te, p_te),
    }


def _leaderboard(results: list[dict], metric: str) -> pd.DataFrame:
    rows = []
    for r in results:
        t = r["test"]
        rows.append(
            {
                "family": r["name"],
                "kind": "baseline" if r["family"].baseline else "model",
                "valid_metric": r["valid"][metric],
                **{
                    f"test_{k}": t[k]
                    for k in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_at_10", "precision_at_10")
                },
                "fit_s": r["fit_s"],
                "predict_s": r["predict_s"],
            }
        )
    return (
        pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
        .sort_values("valid_metric", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


# Simplest first: fewer parameters and an easier story. Under the one-SE rule (after Breiman et al.,
# 1984) a simpler family replaces the best one when its validation deficit is within one standard
# error of the paired difference between the two, i.e. when the data cannot tell them apart.
SIMPLEST_FIRST = ("recency_rule", "bgnbd", "logistic", "decision_tree", "random_forest", "lightgbm", "xgboost", "svm")


def choose_champion(results: list[dict], y_valid, cfg: TrainingConfig) -> tuple[dict, dict]:
    """The champion among the trained families, and how it was chosen (logged with the run)."""
    best = max(results, key=lambda r: r["valid"][cfg.metric])  # first of equals, in training order
    se = (
        paired_bootstrap_se(
            y_valid,
            {r["name"]: r["p_valid"] for r in results},
            best["name"],
            cfg.metric,
            cfg.bootstrap_resamples,
            cfg.seed,
        )
        if cfg.champion_rule == "one_se"
        else {}
    )
    deficit = {r["name"]: best["valid"][cfg.metric] - r["valid"][cfg.metric] for r in results}
    eligible = [r for r in results if r is best or deficit[r["name"]] <= se.get(r["name"], 0.0)]
    rank = {name: i for i, name in enumerate(SIMPLEST_FIRST)}
    chosen = min(eligible, key=lambda r: rank.get(r["name"], len(rank)))
    return chosen, {
        "rule": cfg.champion_rule,
        "best_on_valid": best["name"],
        "valid_best": best["valid"][cfg.metric],
        "deficit": deficit,
        "paired_se": se,
        "within": sorted((r["name"] for r in eligible), key=lambda n: rank.get(n, len(rank))),
        "champion": chosen["name"],
    }


def _log_leaderboard(board: pd.DataFrame, folder: Path) -> None:
    board.to_csv(folder / "leaderboard.csv", index=False)
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in board.itertuples(index=False)]
    lines = ["| " + " | ".join(board.columns) + " |", "|" + "---|" * len(board.columns)]
    (folder / "leaderboard.md").write_text("\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells]) + "\n")


def train_task(
    log: Log, task: str, cfg: TrainingConfig, register: bool = True, progress: Callable[[str], None] = lambda _: None
) -> TaskResult:
    data = prepare_task(log, task, cfg)
    families = [*cfg.models, *[b for b in cfg.baselines if b not in cfg.models]]
    with (
        mlflow.start_run(run_name=f"train-{task}", nested=mlflow.active_run() is not None) as parent,
        tempfile.TemporaryDirectory() as tmp,
    ):
        folder = Path(tmp)
        mlflow.log_dict(cfg.model_dump(), "config.json")
        mlflow.log_dict(data.fingerprint(), "dataset.json")
        mlflow.log_params(
            {
                "task": task,
                "horizon_days": cfg.horizons[task],
                "split": data.split.describe(),
                "metric": cfg.metric,
                "seed": cfg.seed,
            }
        )
        mlflow.log_metrics({f"{k}": v for k, v in data.fingerprint().items() if isinstance(v, (int, float))})
        results = []
        for name in families:
            progress(f"{task}: {name}")
            with mlflow.start_run(run_name=name, nested=True):
                r = run_family(name, data, cfg)
                mlflow.log_params({"family": name, **{f"param_{k}": v for k, v in r["params"].items()}})
                mlflow.log_metrics({f"valid_{k}": v for k, v in r["valid"].items() if np.isfinite(v)})
                mlflow.log_metrics({f"test_{k}": v for k, v in r["test"].items() if np.isfinite(v)})
                mlflow.log_metrics({"fit_s": r["fit_s"], "predict_s": r["predict_s"]})
            results.append(r)
        board = _leaderboard(results, cfg.metric)
        X_va, y_va = data.xy("valid")
        champion, selection = choose_champion(results, y_va, cfg)
        mlflow.log_dict(selection, "selection.json")
        mlflow.log_metrics({f"selection_paired_se_{k}": v for k, v in selection["paired_se"].items()})

        X_te, y_te = data.xy("test")
        calibrated = CalibratedClassifierCV(FrozenEstimator(champion["model"]), method=cfg.calibration).fit(X_va, y_va)
        p_cal = calibrated.predict_proba(X_te)[:, 1]
        champion_test = score_metrics(y_te, p_cal)
        mlflow.log_metrics({f"champion_test_{k}": v for k, v in champion_test.items() if np.isfinite(v)})
        mlflow.set_tags({"champion": champion["name"], "best_on_valid": selection["best_on_valid"], "task": task})
        baselines = [r for base in ("recency_rule", "bgnbd") for r in results if r["name"] == base]
        margins = {
            f"{r['name']}_{m}": champion_test[m] - r["test"][m] for r in baselines for m in ("roc_auc", "pr_auc")
        }
        margin_se = {}
        for m in ("roc_auc", "pr_auc"):  # paired bootstrap over the test customers, one pass for both baselines
            se = paired_bootstrap_se(
                y_te,
                {"champion": p_cal, **{r["name"]: r["p_test"] for r in baselines}},
                "champion",
                m,
                cfg.bootstrap_resamples,
                cfg.seed,
            )
            margin_se.update({f"{name}_{m}": v for name, v in se.items()})
        mlflow.log_metrics({f"margin_vs_{k}": v for k, v in margins.items()})
        mlflow.log_metrics({f"margin_se_vs_{k}": v for k, v in margin_se.items()})

        _log_leaderboard(board, folder)
        scores = {r["name"]: r["p_test"] for r in results}
        plot_all(y_te, scores, champion["name"], p_cal, f"{task} @ {data.split.test}", folder)
        sample = min(len(y_va), 3000)
        imp = permutation_importance(
            champion["model"],
            X_va.iloc[:sample],
            y_va[:sample],
            scoring="average_precision",
            n_repeats=3,
            random_state=cfg.seed,
        )
        importance = pd.Series(imp.importances_mean, index=X_va.columns).drop(labels="customer_id", errors="ignore")
        importance.sort_values(ascending=False).to_csv(folder / "importance.csv")
        plot_importance(importance, task, folder)
        segment_metrics(y_te, p_cal, data.test["rfm_segment"]).to_csv(folder / "segments_test.csv", index=False)
        mlflow.log_artifacts(str(folder), "evaluation")

        version = _register(task, calibrated, champion["name"], data, cfg) if register else None
        return TaskResult(
            task, board, champion["name"], champion_test, version, parent.info.run_id, margins, selection, margin_se
        )


def _register(task: str, estimator, family: str, data: TaskData, cfg: TrainingConfig) -> int:
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    X_tr, _ = data.xy("train")
    rules = load_segment_rules()
    clusters = fit_clusters(data.train, rules.clusters).to_dict()
    packaged = PropensityModel(
        estimator, data.spec, task, family, cfg.horizons[task], PropensityModel.reference_row(X_tr, data.spec), clusters
    )
    X_va, _ = data.xy("valid")
    example = X_va.drop(columns=["customer_id"]).head(5)
    signature = infer_signature(example, packaged.predict(None, example))
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=packaged,
        signature=signature,
        input_example=example,
        registered_model_name=MODEL_NAMES[task],
    )
    version = int(info.registered_model_version)
    client = MlflowClient()
    name = MODEL_NAMES[task]
    fingerprint = data.fingerprint()
    tags = {
        "family": family,
        "task": task,
        "horizon_days": str(cfg.horizons[task]),
        "calibration": cfg.calibration,
        "feature_spec": json.dumps(data.spec.to_dict()),
        "data_window": f"{data.window[0]} .. {data.window[1]}",
        "train_cutoffs": ",".join(fingerprint["train_cutoffs"]),
        "valid_cutoff": str(data.split.valid),
        "test_cutoff": str(data.split.test),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    client.set_registered_model_alias(name, ALIAS, str(version))
    return version


def evaluate_registered(log: Log, task: str, as_of: date, cfg: TrainingConfig, version: int | None = None) -> dict:
    """Re-score a registered model on a chosen (fully observed) cutoff."""
    from models.registry import load_model

    model = load_model(task, version)
    table = build_training_table(log.table, [as_of], task_horizons(task, cfg))
    if table.empty or table[task].nunique() < 2:
        raise PropensityError(
            f"The cutoff {as_of} has {len(table)} customers and a single {task} class: nothing to evaluate."
        )
    p = model.predict_proba(model_input(table, model.feature_spec))
    return score_metrics(table[task].to_numpy(), p)
