"""The packaged model: an MLflow pyfunc that takes feature rows and returns probabilities.

It owns its structure as two named, fitted parts: ``pipeline`` (preprocessing and the learner, a
scikit-learn estimator with ``predict_proba``) and ``calibrator`` (one-dimensional), so that
``p = calibrator(pipeline(X))``. Explanations and thread limits read those parts. It also carries
its ``record`` (task, horizon, population, feature spec, cutoffs), so serving needs nothing but
the registry. It returns probabilities, never labels.
"""

from __future__ import annotations

import os

import mlflow.pyfunc
import numpy as np
import pandas as pd
import sklearn
from sklearn.pipeline import Pipeline

from features.errors import PropensityError
from models.calibration import Calibrator
from models.record import ModelRecord
from models.spec import FeatureSpec


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


ROW_WISE = ("lightgbm", "xgboost", "lightgbm_tweedie", "xgboost_tweedie")  # a row's prediction: one thread


class PropensityModel(mlflow.pyfunc.PythonModel):
    def __init__(
        self,
        pipeline,
        calibrator: Calibrator | None,
        record: ModelRecord,
        reference: dict | None = None,
        clusters: dict | None = None,
        index: dict | None = None,
    ):
        self.pipeline = pipeline
        self.calibrator = calibrator  # None: the pipeline's score is the probability
        self.record = record
        self.reference = reference or {}  # training medians (modes for categories): the explanation fallback's baseline
        self.clusters = clusters  # the behavioural clusters fitted on the training population (ClusterModel.to_dict)
        self.index = index  # the composite customer index fitted on it (CustomerIndex.to_dict)

    @property
    def feature_spec(self) -> FeatureSpec:
        return self.record.feature_spec

    @property
    def reads(self) -> tuple[str, ...]:
        """The inputs the fitted model uses: the BTYD summary for BG/NBD, recency for the recency rule, all for a
        learner. Scoring asks only for these; the others of the spec may be absent."""
        return tuple(getattr(self.pipeline, "reads", self.feature_spec.columns))

    @property
    def task(self) -> str:
        return self.record.task

    @property
    def family(self) -> str:
        return self.record.family

    @property
    def horizon_days(self) -> int:
        return self.record.horizon_days

    @property
    def lookback_days(self) -> int:
        return self.record.lookback_days

    def score(self, features: pd.DataFrame) -> np.ndarray:
        """The pipeline's uncalibrated score (probability of the positive class; the amount for the value task)."""
        missing = [c for c in self.reads if c not in features.columns]
        if missing:
            raise PropensityError(f"The feature rows lack {missing}, which the {self.task} model needs.")
        if unread := [c for c in self.feature_spec.columns if c not in features.columns]:
            features = features.assign(**dict.fromkeys(unread, np.nan))  # inputs the model does not use
        extra = [c for c in ("customer_id",) if c in features.columns]  # BG/NBD dedups by customer when fitting only
        # The parts' parameters were validated when they were fitted; re-checking them costs every call ~0.5 ms.
        with sklearn.config_context(skip_parameter_validation=True):
            X = features[[*self.feature_spec.columns, *extra]]
            return self.pipeline.predict(X) if self.task == "value" else self.pipeline.predict_proba(X)[:, 1]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        score = self.score(features)
        return score if self.calibrator is None else self.calibrator.predict(score)

    def limit_threads(self, n: int = 1) -> PropensityModel:
        """Run the learner on at most ``n`` threads (the REST service scores a few rows at a time).

        Spreading one row over threads only adds hand-offs, and OpenMP's spinning workers (XGBoost,
        LightGBM) take the core the web server needs. Batch scoring keeps the trained setting.
        """
        steps = self.pipeline.steps if isinstance(self.pipeline, Pipeline) else [("model", self.pipeline)]
        for _, step in steps:
            if getattr(step, "n_jobs", None) not in (None, n):
                step.set_params(n_jobs=n)  # XGBoost passes it on to its fitted booster
        return self

    def use_cores(self) -> PropensityModel:
        """Run a boosted-tree learner on every core (a batch of many rows). Each row's score and TreeSHAP values are
        computed by one thread, tree by tree in a fixed order, so the bits do not depend on the thread count; other
        families keep their trained setting (a forest adds its trees' votes in the order its threads finish)."""
        if self.family in ROW_WISE:
            self.limit_threads(cores())
        return self

    @staticmethod
    def reference_row(X: pd.DataFrame, spec: FeatureSpec) -> dict:
        """Medians of numeric inputs and modes of categorical ones."""
        out = {c: float(X[c].median()) for c in spec.numeric}
        out.update({c: (X[c].mode().iloc[0] if X[c].notna().any() else None) for c in spec.categorical})
        return out

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        name = "predicted_value" if self.task == "value" else f"p_{self.task}"
        return pd.DataFrame({name: self.predict_proba(model_input)}, index=model_input.index)
