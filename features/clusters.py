"""Behavioural clusters on standardised log RFM, k chosen by silhouette: K-Means; two-step clustering (BIRCH
pre-clusters the customers into many small groups, which agglomerative Ward merging then joins for each k); or a
Kohonen self-organising map (MiniSom), whose grid nodes with customers are the clusters.

The fitted scaler and the clusters' centroids are kept (``ClusterModel.to_dict``) so later scoring assigns
each customer to the nearest centroid, as K-Means does and as two-step clustering assigns new cases.
Clusters are numbered by ascending centroid monetary value, so numbering is stable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import AgglomerativeClustering, Birch, KMeans
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
    method: str = "kmeans"

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
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ClusterModel:
        return cls(
            data["columns"],
            np.array(data["mean"]),
            np.array(data["scale"]),
            np.array(data["centroids"]),
            data["silhouette"],
            data.get("method", "kmeans"),  # models registered before two-step clustering existed
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
    sample = z[rng.choice(len(z), min(len(z), rules.silhouette_sample), replace=False)]
    best = None
    for labels, centroids in _partitions(sample, rules):
        if len(set(labels)) < 2:
            continue
        score = silhouette_score(sample, labels)
        if best is None or score > best[0]:
            best = (score, centroids)
    if best is None:
        raise PropensityError("Cannot cluster: every customer looks the same.")
    score, centroids = best
    monetary_axis = rules.columns.index("monetary_total") if "monetary_total" in rules.columns else -1
    centroids = centroids[np.argsort(centroids[:, monetary_axis], kind="stable")]
    return ClusterModel(list(rules.columns), mean, scale, centroids, float(score), rules.method)


def _partitions(z: np.ndarray, rules: ClusterRules):
    """For each k in [k_min, k_max], the configured method's labels of ``z`` and its cluster centroids."""
    ks = range(rules.k_min, min(rules.k_max, len(z) - 1) + 1)
    if rules.method == "kmeans":
        for k in ks:
            km = KMeans(n_clusters=k, n_init=4, random_state=rules.seed).fit(z)
            yield km.labels_, km.cluster_centers_
        return
    if rules.method == "som":
        yield from _som_partitions(z, ks, rules.seed)
        return
    # two-step: BIRCH's leaf sub-clusters (one pass over the customers), then Ward merging of their centres
    birch = Birch(threshold=0.3, n_clusters=None).fit(z)
    centres, members = birch.subcluster_centers_, birch.predict(z)
    for k in ks:
        if k > len(centres):
            break
        labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(centres)[members]
        yield labels, np.array([z[labels == c].mean(axis=0) for c in range(k)])


def _grid(k: int) -> tuple[int, int]:
    """The most nearly square grid of k nodes (a line when k is prime)."""
    rows = max(d for d in range(1, int(k**0.5) + 1) if k % d == 0)
    return rows, k // rows


def _som_partitions(z: np.ndarray, ks, seed: int):
    """A Kohonen map of k nodes for each k: each customer joins their best-matching node; nodes left without
    customers are dropped, so a map can find fewer clusters than it has nodes."""
    from minisom import MiniSom

    for k in ks:
        rows, cols = _grid(k)
        som = MiniSom(rows, cols, z.shape[1], sigma=max(min(rows, cols) / 2, 0.5), learning_rate=0.5, random_seed=seed)
        if rows > 1:
            som.pca_weights_init(z)  # a 2-D map starts on the data's first two principal components
        else:
            som.random_weights_init(z)
        som.train(z, min(20_000, 10 * len(z)), random_order=True)
        nodes = som.get_weights().reshape(-1, z.shape[1])
        used = np.unique(((z[:, None, :] - nodes[None, :, :]) ** 2).sum(axis=2).argmin(axis=1))
        nodes = nodes[used]
        yield ((z[:, None, :] - nodes[None, :, :]) ** 2).sum(axis=2).argmin(axis=1), nodes
