"""The pipeline head every learner shares: BG/NBD features, then preprocessing (imputation, scaling, encoding).

Preprocessing travels with the model: numeric features are median-imputed (with missing-value
indicators; undefined gaps and trends are informative) and, for the linear and kernel models,
standardised; categoricals are one-hot encoded with unknown and rare levels ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from models.baselines import BTYD_FEATURES, BGNBDFeatures
from models.spec import FeatureSpec


def _signed_log(x):
    return np.sign(x) * np.log1p(np.abs(x))


def _as_text(X):
    """Categoricals as fixed-width text, missing as "(missing)": scikit-learn's encoders then take numpy's
    vectorised paths (on object arrays they visit every value in Python, the largest cost of a fit on 250k rows)."""
    frame = X if hasattr(X, "fillna") else pd.DataFrame(X)
    return frame.astype(object).fillna("(missing)").astype(str).to_numpy(dtype=str)


def preprocessor(spec: FeatureSpec, scale: bool, btyd: bool = True) -> ColumnTransformer:
    numeric = [SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)]
    if scale:  # heavy-tailed money and counts: signed log before standardising
        numeric = [FunctionTransformer(_signed_log, feature_names_out="one-to-one"), *numeric, StandardScaler()]
    parts = [("num", make_pipeline(*numeric), [*spec.numeric, *(BTYD_FEATURES if btyd else ())])]
    if spec.categorical:
        cat = make_pipeline(
            FunctionTransformer(_as_text, feature_names_out="one-to-one"),
            OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20, sparse_output=False),
        )
        parts.append(("cat", cat, list(spec.categorical)))
    return ColumnTransformer(parts, verbose_feature_names_out=False)


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[FeatureSpec, dict, int], object]  # (spec, params, seed) -> unfitted estimator
    space: Callable[[optuna.Trial], dict]  # noqa: F821
    baseline: bool = False
    tuned: bool = True
    kind: str = "binary"  # binary: a probability (churn, purchase); value: an amount (net spend)


def set_threads(estimator, n: int) -> None:
    """Every part of ``estimator`` that sets ``n_jobs`` (the boosted trees, a forest) runs on ``n`` threads (parts
    left at None run on one already)."""
    params = estimator.get_params(deep=True)
    threaded = [k for k, v in params.items() if (k == "n_jobs" or k.endswith("__n_jobs")) and v is not None]
    estimator.set_params(**dict.fromkeys(threaded, n))


def _with_btyd(spec, scale: bool) -> list:
    """Pipeline head shared by the learners: BG/NBD features (fitted on training rows), then preprocessing."""
    return [("btyd", BGNBDFeatures()), ("prep", preprocessor(spec, scale))]
