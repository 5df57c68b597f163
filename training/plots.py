"""Evaluation plots: ROC, PR, calibration, cumulative gain, feature importance (PNG files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no backend switch for importers
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def cumulative_gain(y, p) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-np.asarray(p), kind="stable")
    hits = np.cumsum(np.asarray(y)[order])
    share = np.arange(1, len(order) + 1) / len(order)
    return share, hits / max(hits[-1], 1)


def plot_all(
    y, scores: dict[str, np.ndarray], champion: str, calibrated: np.ndarray, title: str, out: Path
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    curves = (
        ("roc.png", lambda p: roc_curve(y, p)[:2], "false positive rate", "true positive rate", f"ROC - {title}", True),
        (
            "pr.png",
            lambda p: precision_recall_curve(y, p)[1::-1],
            "recall",
            "precision",
            f"Precision-recall - {title}",
            False,
        ),
        (
            "gain.png",
            lambda p: cumulative_gain(y, p),
            "share of customers contacted (by score)",
            "share of positives reached",
            f"Cumulative gain - {title}",
            True,
        ),
    )
    for filename, curve, xlabel, ylabel, heading, diagonal in curves:
        fig = Figure(figsize=(5, 4.5))
        ax = fig.subplots()
        for name, p in scores.items():
            xs, ys = curve(p)
            ax.plot(xs, ys, lw=2 if name == champion else 1, label=name)
        if diagonal:
            ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        else:
            ax.axhline(np.mean(y), color="k", ls=":", lw=0.8)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=heading)
        ax.legend(fontsize=7)
        paths.append(_save(fig, out / filename))

    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    for label, p in ((f"{champion} (raw)", scores[champion]), (f"{champion} (calibrated)", calibrated)):
        frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(mean, frac, marker="o", label=label)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=f"Calibration (test) - {title}")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out / "calibration.png"))
    return paths


def plot_importance(importance: pd.Series, title: str, out: Path) -> Path:
    top = importance.sort_values().tail(15)
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    ax.barh(top.index, top.values)
    ax.set(xlabel="permutation importance (drop in PR-AUC)", title=f"Feature importance - {title}")
    return _save(fig, out / "importance.png")


def plot_value_deciles(deciles: pd.DataFrame, title: str, out: Path) -> Path:
    """Predicted vs realised net spend per decile of the prediction (1 = highest predicted)."""
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    x = deciles["decile"].to_numpy()
    ax.bar(x - 0.2, deciles["predicted"], width=0.4, label="predicted")
    ax.bar(x + 0.2, deciles["realised"], width=0.4, label="realised")
    ax.set(xlabel="decile of predicted value (1 = highest)", ylabel="net spend", title=f"Deciles - {title}")
    ax.set_xticks(x)
    ax.legend(fontsize=7)
    return _save(fig, out / "deciles.png")
