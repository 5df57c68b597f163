"""Choosing on the backtest: the champion family (one-SE rule) and its calibration method."""

from __future__ import annotations

import numpy as np

from models.calibration import METHODS, Calibrator
from training.config import TrainingConfig
from training.metrics import paired_bootstrap_se
from training.tune import OriginScores

# Simplest first: fewer parameters and an easier story. Under the one-SE rule (after Breiman et al.,
# 1984) a simpler family replaces the best one when its backtest deficit is within one standard
# error of the paired difference between the two, i.e. when the data cannot tell them apart.
SIMPLEST_FIRST = (
    "recency_rule",
    "bgnbd",
    "logistic",
    "decision_tree",
    "random_forest",
    "lightgbm",
    "xgboost",
    "svm",
    "neural_network",
    "historic_rate",
    "bgnbd_gamma_gamma",
    "lightgbm_tweedie",
    "xgboost_tweedie",
)


def choose_champion(
    results: list[dict], y_backtest, cfg: TrainingConfig, metric: str | None = None
) -> tuple[dict, dict]:
    """The champion among the families (each result has ``name``, ``backtest`` metrics and ``p_backtest``) by
    ``metric`` (default ``cfg.metric``), and how it was chosen (logged with the run)."""
    metric = metric or cfg.metric
    best = max(results, key=lambda r: np.nan_to_num(r["backtest"][metric], nan=-np.inf))  # first of equals
    se = (
        paired_bootstrap_se(
            y_backtest,
            {r["name"]: r["p_backtest"] for r in results},
            best["name"],
            metric,
            cfg.bootstrap_resamples,
            cfg.seed,
        )
        if cfg.champion_rule == "one_se"
        else {}
    )
    deficit = {r["name"]: best["backtest"][metric] - r["backtest"][metric] for r in results}
    eligible = [r for r in results if r is best or deficit[r["name"]] <= se.get(r["name"], 0.0)]
    rank = {name: i for i, name in enumerate(SIMPLEST_FIRST)}
    chosen = min(eligible, key=lambda r: rank.get(r["name"], len(rank)))
    return chosen, {
        "rule": cfg.champion_rule,
        "best_on_backtest": best["name"],
        "backtest_best": best["backtest"][metric],
        "deficit": deficit,
        "paired_se": se,
        "within": sorted((r["name"] for r in eligible), key=lambda n: rank.get(n, len(rank))),
        "champion": chosen["name"],
    }


def _log_loss(y, p) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def choose_calibration(pairs: list[tuple[OriginScores, OriginScores]], cfg: TrainingConfig) -> tuple[str, dict]:
    """``cfg.calibration``, or with ``auto`` the method (none, sigmoid or isotonic) with the lowest mean log loss
    over the backtest origins when fitted as deployed: each on the out-of-time scores of a cutoff whose labels were
    known at that origin (``pairs``: (calibration scores, scores judged)). Sigmoid without such a pair."""
    if cfg.calibration != "auto":
        return cfg.calibration, {}
    if not pairs:
        return "sigmoid", {}
    losses = {
        m: float(np.mean([_log_loss(j.y, Calibrator(m).fit(f.p, f.y).predict(j.p)) for f, j in pairs])) for m in METHODS
    }
    return min(losses, key=losses.get), losses
