"""Comparing the families on the backtest: each tuned on the earlier origins and scored at every origin, side by
side in worker processes, then ranked in the leaderboard.

Families are independent of one another, so ``cfg.workers`` of them (2 by default) run at once. Every backtest
fit runs its learner on one thread, OpenMP and BLAS included, in a worker or not: a result never depends on how
many families ran beside it, and a run with one worker gives the same figures as a run with two.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
from threadpoolctl import threadpool_limits

from models.families import get_family
from training.config import TrainingConfig
from training.dataset import TaskData
from training.metrics import ranking_metrics, task_metrics
from training.tune import pooled, score_origins, tune_family

TEST_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_at_10", "precision_at_10")
VALUE_TEST_METRICS = ("gini", "spearman", "mae", "total_error", "decile_mape")


# The families that take longest (measured on a 25,000-customer log) start first, so that the workers finish together.
SLOWEST_FIRST = ("random_forest", "xgboost", "xgboost_tweedie", "lightgbm", "lightgbm_tweedie", "neural_network", "svm")


def test_metrics(task: str) -> tuple[str, ...]:
    return VALUE_TEST_METRICS if task == "value" else TEST_METRICS


def leaderboard_columns(task: str) -> list[str]:
    ranking = [f"mean_{m}" for m in ranking_metrics(task)]
    return ["family", "kind", "backtest_metric", *(f"test_{k}" for k in test_metrics(task)), *ranking, "fit_s"]


def run_family(name: str, data: TaskData, cfg: TrainingConfig) -> dict:
    """Tune on the backtest origins, then score every origin with the chosen parameters (on one thread)."""
    family = get_family(name)
    with threadpool_limits(limits=1):
        t_start = time.perf_counter()
        params, trials = tune_family(family, data, data.plan.backtest or (data.plan.test,), cfg)
        t0 = time.perf_counter()
        scores = score_origins(family, params, data, data.plan.origins, cfg, cfg.tuning.backtest_max_rows)
        t1 = time.perf_counter()
    y_b, p_b = pooled(scores[:-1] or scores[-1:])
    test = scores[-1]
    metrics = task_metrics(data.task)
    ranking = ranking_metrics(data.task)
    per_origin = []
    for s in scores:  # every metric of an origin from one call
        figures = metrics(s.y, s.p)
        per_origin.append({"family": name, "origin": str(s.origin.as_of), **{k: figures[k] for k in ranking}})
    return {
        "name": name,
        "params": params,
        "trials": trials,
        "scores": scores,
        "p_backtest": p_b,
        "backtest": metrics(y_b, p_b),
        "p_test": test.p,
        "test": metrics(test.y, test.p),
        "per_origin": per_origin,
        "fit_s": (t1 - t0) / len(scores),
        "total_s": t1 - t_start,
    }


def run_families(
    names: list[str], data: TaskData, cfg: TrainingConfig, progress: Callable[[str], None] = lambda _: None
) -> list[dict]:
    """Every family's result, in the order of ``names`` (with its ``Family`` under "family")."""
    workers = min(cfg.workers, len(names))
    if workers > 1:
        from joblib import Parallel, delayed

        progress(f"{data.task}: {len(names)} families, {workers} at a time")
        slowest_first = sorted(
            names, key=lambda n: SLOWEST_FIRST.index(n) if n in SLOWEST_FIRST else len(SLOWEST_FIRST)
        )
        parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered", batch_size=1)
        done = parallel(delayed(run_family)(name, data, cfg) for name in slowest_first)
    else:
        done = (run_family(name, data, cfg) for name in names)
    results = {}
    for result in done:
        result["family"] = get_family(result["name"])  # not pickled: a family holds its builder functions
        progress(f"{data.task}: {result['name']} done in {result['total_s']:.0f} s")
        results[result["name"]] = result
    return [results[name] for name in names]


def leaderboard(results: list[dict], metric: str, task: str) -> pd.DataFrame:
    rows = []
    for r in results:
        origins = pd.DataFrame(r["per_origin"])
        rows.append(
            {
                "family": r["name"],
                "kind": "baseline" if r["family"].baseline else "model",
                "backtest_metric": r["backtest"][metric],
                **{f"test_{k}": r["test"][k] for k in test_metrics(task)},
                **{f"mean_{m}": origins[m].mean() for m in ranking_metrics(task)},
                "fit_s": r["fit_s"],
            }
        )
    board = pd.DataFrame(rows, columns=leaderboard_columns(task))
    return board.sort_values("backtest_metric", ascending=False, kind="stable").reset_index(drop=True)
