"""What the lead model carries besides its scores: the behavioural clusters and the composite customer index, fitted
on its training population and rebuilt from their saved form once per loaded model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.clusters import ClusterModel
from features.customer_index import CustomerIndex


def fitted(model, name: str, kind):
    """The model's clusters or customer index, rebuilt from their saved form once per loaded model (None: the model
    carries none; models registered before the index existed have no attribute)."""
    saved = getattr(model, name, None)
    if not saved:
        return None
    cached = model.__dict__.get(f"_{name}_fitted")
    if cached is None or cached[0] is not saved:
        cached = model.__dict__[f"_{name}_fitted"] = (saved, kind.from_dict(saved))
    return cached[1]


def index_columns(features: pd.DataFrame, model) -> dict[str, np.ndarray]:
    index = fitted(model, "index", CustomerIndex)
    if index is None:
        return {"customer_index": np.full(len(features), np.nan), "index_percentile": np.full(len(features), np.nan)}
    values = index.score(features)
    return {"customer_index": values, "index_percentile": index.percentile(values)}


def cluster_labels(features: pd.DataFrame, model) -> np.ndarray:
    """Each row's cluster (-1 when the model carries none)."""
    clusters = fitted(model, "clusters", ClusterModel)
    return clusters.assign(features) if clusters else np.full(len(features), -1)
