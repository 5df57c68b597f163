"""Behavioural clusters: K-Means on standardised log RFM, k chosen by silhouette.

The fitted scaler and centroids are kept (``ClusterModel.to_dict``) so later scoring assigns the same
clusters. Clusters are numbered by ascending centroid monetary value, so numbering is stable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from features.errors import PropensityError
from features.segments import ClusterRules


@dataclass
class ClusterModel:
    columns: list[str]
    mean: np.ndarray
    scale: np.ndarray
    centroids: np.ndarray
    silhouette: float

    def _scaled(self, features: pd.DataFrame) -> np.ndarray:
        x = np.log1p(features[self.columns].to_numpy(dtype=float).clip(min=0))
        return (x - self.mean) / self.scale

    def assign(self, features: pd.DataFrame) -> np.ndarray:
        z = self._scaled(features)
        distances = ((z[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        return distances.argmin(axis=1)

    def to_dict(self) -> dict:
        return {
            "columns": self.columns,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "centroids": self.centroids.tolist(),
            "silhouette": self.silhouette,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ClusterModel:
        return cls(
            data["columns"],
            np.array(data["mean"]),
            np.array(data["scale"]),
            np.array(data["centroids"]),
            data["silhouette"],
        )


def fit_clusters(features: pd.DataFrame, rules: ClusterRules) -> ClusterModel:
    from features.definitions import MONEY

    # An event log has no money columns: its clusters use the configured columns it has.
    rules = rules.model_copy(update={"columns": [c for c in rules.columns if c in features.columns or c not in MONEY]})
    missing = [c for c in rules.columns if c not in features.columns]
    if missing or not rules.columns:
        raise PropensityError(f"Cannot cluster: the feature table has no {missing}.")
    if len(features) < rules.k_min + 1:
        raise PropensityError(f"Cannot cluster {len(features)} customers into at least {rules.k_min} clusters.")
    x = np.log1p(features[rules.columns].to_numpy(dtype=float).clip(min=0))
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    rng = np.random.default_rng(rules.seed)
    sample = rng.choice(len(z), min(len(z), rules.silhouette_sample), replace=False)
    best = None
    for k in range(rules.k_min, min(rules.k_max, len(z) - 1) + 1):
        km = KMeans(n_clusters=k, n_init=4, random_state=rules.seed).fit(z[sample])
        labels = km.labels_
        if len(set(labels)) < 2:
            continue
        score = silhouette_score(z[sample], labels)
        if best is None or score > best[0]:
            best = (score, km.cluster_centers_)
    if best is None:
        raise PropensityError("Cannot cluster: every customer looks the same.")
    score, centroids = best
    monetary_axis = rules.columns.index("monetary_total") if "monetary_total" in rules.columns else -1
    centroids = centroids[np.argsort(centroids[:, monetary_axis], kind="stable")]
    return ClusterModel(list(rules.columns), mean, scale, centroids, float(score))
