"""The packaged model: an MLflow pyfunc that takes feature rows and returns probabilities.

It carries the fitted (calibrated) estimator, the feature spec it expects and its task, so that
serving needs nothing but the registry. It returns probabilities, never labels.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import sklearn

from features.errors import PropensityError
from models.spec import FeatureSpec


class PropensityModel(mlflow.pyfunc.PythonModel):
    def __init__(
        self, estimator, spec: FeatureSpec, task: str, family: str, horizon_days: int,
        reference: dict | None = None, clusters: dict | None = None,
    ):
        self.estimator = estimator
        self.spec = spec.to_dict()
        self.task = task
        self.family = family
        self.horizon_days = horizon_days
        self.reference = reference or {}  # training medians (modes for categories): the explanation fallback's baseline
        self.clusters = clusters  # the behavioural clusters fitted on the training population (ClusterModel.to_dict)

    @property
    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.spec)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.feature_spec.columns if c not in features.columns]
        if missing:
            raise PropensityError(f"The feature rows lack {missing}, which the {self.task} model needs.")
        extra = [c for c in ("customer_id",) if c in features.columns]  # BG/NBD dedups by customer when fitting only
        # The estimator's parameters were validated when it was fitted; re-checking them costs every call ~0.5 ms.
        with sklearn.config_context(skip_parameter_validation=True):
            return self.estimator.predict_proba(features[[*self.feature_spec.columns, *extra]])[:, 1]

    @staticmethod
    def reference_row(X: pd.DataFrame, spec: FeatureSpec) -> dict:
        """Medians of numeric inputs and modes of categorical ones."""
        out = {c: float(X[c].median()) for c in spec.numeric}
        out.update({c: (X[c].mode().iloc[0] if X[c].notna().any() else None) for c in spec.categorical})
        return out

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({f"p_{self.task}": self.predict_proba(model_input)}, index=model_input.index)
