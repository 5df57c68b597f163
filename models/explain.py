"""Per-customer drivers of a packaged model's score, summed back to the model's input features.

Tree models get exact TreeSHAP: XGBoost's and LightGBM's own ``pred_contribs`` and ``shap``'s
``TreeExplainer`` for scikit-learn trees, on the pipeline's transformed inputs, in log-odds. The
sigmoid calibration on top is monotone, so it changes no ranking of drivers. Every other family
(SVM, logistic, the BG/NBD and recency baselines) gets an occlusion fallback: a feature's
contribution is how much the probability drops when that one feature is set to its training
median (mode for categories). Either way a positive value pushes the score up.

The BG/NBD baseline is occluded in the terms its risk is read in: return visits, the days they spread
over after the first purchase, and the silence since the last one (reported as ``recency_days``). Its
own inputs (visits, last and first purchase as days) would set a customer's first purchase to the
typical one's while keeping their last, so that a frequent buyer silent for half a year read "first
purchase 228 days ago raises risk" and "last purchase 190 days ago lowers risk".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from models.baselines import BTYD_FEATURES

TREE_FAMILIES = ("decision_tree", "random_forest", "xgboost", "lightgbm")


def _pipeline(model) -> Pipeline | None:
    """The packaged model's fitted pipeline, or None when it is not a scikit-learn Pipeline."""
    return model.pipeline if isinstance(model.pipeline, Pipeline) else None


def _input_feature(name: str, inputs: list[str]) -> str:
    """The model input a transformed column comes from (missing-value indicators and one-hot levels fold back)."""
    name = name.removeprefix("missingindicator_")
    if name in inputs:
        return name
    return next((c for c in inputs if name.startswith(f"{c}_")), name)


def _tree_contributions(pipe: Pipeline, X: pd.DataFrame, family: str) -> tuple[np.ndarray, list[str]]:
    head, model = pipe[:-1], pipe[-1]
    Z = head.transform(X)
    names = list(pipe.named_steps["prep"].get_feature_names_out())
    Z = np.asarray(Z, dtype=float)
    if family == "xgboost":
        from xgboost import DMatrix

        phi = model.get_booster().predict(DMatrix(Z), pred_contribs=True)[:, :-1]
    elif family == "lightgbm":
        threads = {"num_threads": model.n_jobs} if model.n_jobs is not None else {}  # the booster keeps its training's
        phi = model.booster_.predict(Z, pred_contrib=True, **threads)[:, :-1]
    else:
        import shap

        values = shap.TreeExplainer(model).shap_values(Z, check_additivity=False)
        phi = values[1] if isinstance(values, list) else (values[:, :, 1] if np.ndim(values) == 3 else values)
    return np.asarray(phi), names


OCCLUSION_CHUNK = 20_000  # rows per batch: each is scored once per input, in one stacked call


def _occluded(chunk: pd.DataFrame, columns: list[str], reference: dict) -> pd.DataFrame:
    """The chunk repeated once per input plus once as it is; block k has input k set to its reference value.

    Built from arrays into one frame: pandas' per-cell assignment costs milliseconds even for one
    row, which the REST service pays on every request.
    """
    n = len(chunk)
    rows = np.tile(np.arange(n), len(columns) + 1)
    block = {column: k for k, column in enumerate(columns, start=1)}
    data = {}
    for column, series in chunk.items():
        if column not in block:
            data[column] = series.array.take(rows)
            continue
        values = series.to_numpy()[rows]  # a copy: fancy indexing
        values[block[column] * n : (block[column] + 1) * n] = reference.get(column, np.nan)
        data[column] = values if values.dtype != object else pd.Series(values, dtype=object)  # keep text as object
    return pd.DataFrame(data)


SILENCE = "recency_days"  # the BG/NBD's silence (days from the last purchase day to the cutoff) is reported as it
BTYD_OCCLUDED = ("btyd_frequency", "btyd_recency", "__silence")


def _btyd_space(model, chunk: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """A BG/NBD chunk with the silence ``btyd_T - btyd_recency`` as a column of its own, and the typical values of
    the inputs occluded (the silence's: the median recency, in whole days as the BG/NBD inputs are)."""
    ref = model.reference or {}
    typical = {
        "btyd_frequency": ref.get("btyd_frequency", np.nan),
        "btyd_recency": ref.get("btyd_recency", np.nan),
        "__silence": float(np.ceil(ref.get(SILENCE, np.nan))),
    }
    silence = chunk["btyd_T"].to_numpy(float) - chunk["btyd_recency"].to_numpy(float)
    return chunk.assign(__silence=silence), typical


def _occlusion(model, X: pd.DataFrame) -> pd.DataFrame:
    columns = model.feature_spec.columns
    btyd = model.family == "bgnbd"
    occluded = list(BTYD_OCCLUDED) if btyd else columns
    parts = []
    for start in range(0, len(X), OCCLUSION_CHUNK):
        chunk = X.iloc[
            start : start + OCCLUSION_CHUNK, [X.columns.get_loc(c) for c in [*columns, "customer_id"] if c in X.columns]
        ]
        n = len(chunk)
        if btyd:  # the first purchase follows the occluded span and silence: T = t_x + silence
            work, typical = _btyd_space(model, chunk)
            rows = _occluded(work, occluded, typical)
            rows["btyd_T"] = rows["btyd_recency"].to_numpy(float) + rows.pop("__silence").to_numpy(float)
        else:
            rows = _occluded(chunk, columns, model.reference)
        p = model.predict_proba(rows).reshape(len(occluded) + 1, n)
        part = pd.DataFrame((p[0] - p[1:]).T, index=chunk.index, columns=occluded)
        if btyd:  # without a return visit there is no span to speak of (a typical one would invent visits' timing)
            part.loc[chunk["btyd_frequency"].to_numpy(float) == 0, "btyd_recency"] = 0.0
            part = part.rename(columns={"__silence": SILENCE}).reindex(columns=columns, fill_value=0.0)
        parts.append(part)
    return parts[0] if len(parts) == 1 else pd.concat(parts)


def contributions(model, X: pd.DataFrame) -> pd.DataFrame:
    """One row per input row, one column per model input (plus the BG/NBD inputs a learner derives)."""
    if X.empty:
        return pd.DataFrame(index=X.index, columns=model.feature_spec.columns, dtype=float)
    pipe = _pipeline(model)
    if model.family in TREE_FAMILIES and pipe is not None and "prep" in pipe.named_steps:
        phi, names = _tree_contributions(pipe, X, model.family)
        inputs = [*model.feature_spec.columns, *BTYD_FEATURES]
        return (
            pd.DataFrame(phi, index=X.index, columns=names)
            .T.groupby(lambda n: _input_feature(n, inputs), sort=False)
            .sum()
            .T
        )
    return _occlusion(model, X)


def btyd_values(model, X: pd.DataFrame) -> pd.DataFrame:
    """The BG/NBD inputs a learner derives for these rows (empty when the model has none)."""
    pipe = _pipeline(model)
    if pipe is None or "btyd" not in pipe.named_steps:
        return pd.DataFrame(index=X.index)
    return pipe.named_steps["btyd"].transform(X)[list(BTYD_FEATURES)]
