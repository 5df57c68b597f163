"""Ranking, probability and targeting metrics for a binary propensity score, and the value task's metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

TOP_SHARES = (0.05, 0.10, 0.20)


def expected_calibration_error(y, p, bins: int = 10) -> float:
    y, p = np.asarray(y, float), np.asarray(p, float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(total)


def top_share_metrics(y, p, share: float) -> dict[str, float]:
    y, p = np.asarray(y, float), np.asarray(p, float)
    k = max(1, int(round(share * len(y))))
    top = np.argsort(-p, kind="stable")[:k]
    precision = y[top].mean()
    base = y.mean()
    pct = int(share * 100)
    return {
        f"precision_at_{pct}": float(precision),
        f"recall_at_{pct}": float(y[top].sum() / max(y.sum(), 1)),
        f"lift_at_{pct}": float(precision / base) if base > 0 else float("nan"),
    }


def score_metrics(y, p) -> dict[str, float]:
    y, p = np.asarray(y, int), np.clip(np.asarray(p, float), 1e-7, 1 - 1e-7)
    two_classes = len(np.unique(y)) == 2
    out = {
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if two_classes else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "base_rate": float(y.mean()),
        "n": int(len(y)),
    }
    for share in TOP_SHARES:
        out.update(top_share_metrics(y, p, share))
    out["neg_log_loss"] = -out["log_loss"]
    return out


def _gini(y, pred) -> float:
    """Gini of the realised values ordered by the prediction, highest first (ties by position)."""
    order = np.lexsort((np.arange(len(y)), -pred))
    cum = np.cumsum(y[order]) / y.sum()
    return float(cum.sum() / len(y) - (len(y) + 1) / (2 * len(y)))


def normalized_gini(y, pred) -> float:
    """Gini of the prediction's ordering over the Gini of the perfect ordering (1: perfect, 0: random); as in
    Wang et al. 2019 (Google's lifetime_value). Realised values below zero (net returns) count as zero here."""
    y, pred = np.maximum(np.asarray(y, float), 0), np.asarray(pred, float)
    if len(y) < 2 or y.sum() <= 0:
        return float("nan")
    return _gini(y, pred) / _gini(y, y)


def decile_table(y, pred, bins: int = 10) -> pd.DataFrame:
    """Customers in deciles of the prediction (1 = highest): predicted vs realised totals per decile."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    order = np.lexsort((np.arange(len(y)), -pred))
    decile = np.empty(len(y), int)
    decile[order] = np.arange(len(y)) * bins // max(len(y), 1) + 1
    frame = pd.DataFrame({"decile": decile, "predicted": pred, "realised": y})
    out = frame.groupby("decile").agg(customers=("realised", "size"), predicted=("predicted", "sum"))
    out["realised"] = frame.groupby("decile")["realised"].sum()
    out["error"] = out["predicted"] / out["realised"].where(out["realised"] != 0) - 1
    return out.reset_index()


def value_metrics(y, pred) -> dict[str, float]:
    """Ranking (normalised Gini, Spearman), money (MAE, the error of the total, decile MAPE) for predicted spend."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    deciles = decile_table(y, pred)
    total = y.sum()
    return {
        "gini": normalized_gini(y, pred),
        "spearman": float(spearmanr(y, pred).statistic) if np.ptp(y) > 0 and np.ptp(pred) > 0 else float("nan"),
        "mae": float(np.abs(y - pred).mean()),
        "neg_mae": -float(np.abs(y - pred).mean()),
        "total_error": float(pred.sum() / total - 1) if total else float("nan"),
        "decile_mape": float(deciles["error"].abs().mean()),
        "predicted_total": float(pred.sum()),
        "realised_total": float(total),
        "mean": float(y.mean()),
        "n": int(len(y)),
    }


def ranking_metrics(task: str) -> tuple[str, str]:
    """The two ranking metrics a task's leaderboard, per-origin tables and margins report."""
    return ("gini", "spearman") if task == "value" else ("roc_auc", "pr_auc")


def task_metrics(task: str):
    """The metric function of a task: ``value_metrics`` for value, ``score_metrics`` for the binary tasks."""
    return value_metrics if task == "value" else score_metrics


def _metric_fn(metric: str):
    if metric == "gini":
        return normalized_gini
    if metric == "spearman":
        return lambda y, p: float(spearmanr(y, p).statistic)
    if metric == "neg_mae":
        return lambda y, p: -float(np.abs(np.asarray(y) - np.asarray(p)).mean())
    if metric == "pr_auc":
        return average_precision_score
    if metric == "roc_auc":
        return roc_auc_score
    return lambda y, p: -log_loss(y, p, labels=[0, 1])


def paired_bootstrap_se(
    y, scores: dict[str, np.ndarray], reference: str, metric: str, resamples: int = 200, seed: int = 0
) -> dict[str, float]:
    """Standard error of ``metric(reference) - metric(other)`` for every other score, over the same bootstrap resamples.

    Paired: both models are scored on each resample, so what they share (an easy or a hard
    resample) cancels out and only the difference between them is left.
    """
    binary = metric not in ("gini", "spearman", "neg_mae")
    y = np.asarray(y, int if binary else float)
    probs = {
        k: np.clip(np.asarray(v, float), 1e-7, 1 - 1e-7) if binary else np.asarray(v, float) for k, v in scores.items()
    }
    fn, rng = _metric_fn(metric), np.random.default_rng(seed)
    diffs: dict[str, list[float]] = {k: [] for k in probs if k != reference}
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        ref = fn(y[idx], probs[reference][idx])
        for k in diffs:
            diffs[k].append(ref - fn(y[idx], probs[k][idx]))
    return {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in diffs.items()}


def segment_metrics(y, p, segments: pd.Series) -> pd.DataFrame:
    rows = []
    frame = pd.DataFrame({"y": np.asarray(y), "p": np.asarray(p), "segment": np.asarray(segments)})
    for name, part in frame.groupby("segment"):
        two = part["y"].nunique() == 2
        rows.append(
            {
                "segment": name,
                "n": len(part),
                "rate": part["y"].mean(),
                "mean_score": part["p"].mean(),
                "roc_auc": roc_auc_score(part["y"], part["p"]) if two else np.nan,
                "pr_auc": average_precision_score(part["y"], part["p"]) if two else np.nan,
            }
        )
    return pd.DataFrame(rows)
