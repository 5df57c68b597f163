"""The packaged model: an MLflow pyfunc that takes feature rows and returns probabilities.

It carries the fitted (calibrated) estimator, the feature spec it expects and its task, so that
serving needs nothing but the registry. It returns probabilities, never labels.
"""

from __future__ import annotations

import warnings

import mlflow.pyfunc
import numpy as np
import pandas as pd
import sklearn

from features.errors import PropensityError
from models.spec import FeatureSpec

DIRECT_PROBE_ROWS = 1_000


class PropensityModel(mlflow.pyfunc.PythonModel):
    def __init__(
        self,
        estimator,
        spec: FeatureSpec,
        task: str,
        family: str,
        horizon_days: int,
        reference: dict | None = None,
        clusters: dict | None = None,
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
        X = features[[*self.feature_spec.columns, *extra]]
        # The estimator's parameters were validated when it was fitted; re-checking them costs every call ~0.5 ms.
        with sklearn.config_context(skip_parameter_validation=True):
            direct = self.__dict__.get("_direct")
            if (
                direct is None
            ):  # first call: take the direct path from now on only if it gives the library's answer to the bit
                found = _direct_path(self.estimator)
                want = self.estimator.predict_proba(X)[:, 1]
                probe = slice(
                    0, DIRECT_PROBE_ROWS
                )  # rows are scored independently: a sample checks it at no cost for a large batch
                self.__dict__["_direct"] = found if found and _same(found, X.iloc[probe], want[probe]) else False
                return want
            return direct(X) if direct else self.estimator.predict_proba(X)[:, 1]

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_direct"}  # found again after loading

    def limit_threads(self, n: int = 1) -> PropensityModel:
        """Run every fitted step on at most ``n`` threads (the REST service scores a few rows at a time).

        Spreading one row over threads only adds hand-offs, and OpenMP's spinning workers (XGBoost,
        LightGBM) take the core the web server needs. Batch scoring keeps the trained setting.
        """
        from sklearn.frozen import FrozenEstimator

        seen, todo = set(), [self.estimator]
        while todo:
            step = todo.pop()
            if step is None or id(step) in seen:
                continue
            seen.add(id(step))
            todo += [
                getattr(step, "estimator", None),
                *getattr(step, "calibrated_classifiers_", ()),
                *(s for _, s in getattr(step, "steps", ())),
                *(t for _, t, _ in getattr(step, "transformers_", ())),
            ]
            if getattr(step, "n_jobs", None) not in (None, n) and not isinstance(
                step, FrozenEstimator
            ):  # it refuses set_params
                step.set_params(n_jobs=n)  # XGBoost passes it on to its fitted booster
        return self

    @staticmethod
    def reference_row(X: pd.DataFrame, spec: FeatureSpec) -> dict:
        """Medians of numeric inputs and modes of categorical ones."""
        out = {c: float(X[c].median()) for c in spec.numeric}
        out.update({c: (X[c].mode().iloc[0] if X[c].notna().any() else None) for c in spec.categorical})
        return out

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return pd.DataFrame({f"p_{self.task}": self.predict_proba(model_input)}, index=model_input.index)


def _same(predict, X, want: np.ndarray) -> bool:
    try:
        return np.array_equal(predict(X), want, equal_nan=True)
    except Exception:  # noqa: BLE001 - a shape the direct path does not cover: keep the library path
        return False


def _direct_path(estimator):
    """A calibrated champion's probability computed straight from its fitted parts, or None.

    ``CalibratedClassifierCV(FrozenEstimator(pipeline))`` holds one fitted pipeline and one fitted
    calibrator. Scoring through the wrappers re-checks fitting and tags at every layer (about
    1 ms a call, which the REST service pays per request); this applies the same fitted steps and
    calibrator in the same order, as the wrappers do. Other shapes (the SVM's 3-fold ensemble, an
    uncalibrated estimator) return None and keep the library path.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, CalibratedClassifierCV) or estimator.method not in ("sigmoid", "isotonic"):
        return None
    if len(estimator.calibrated_classifiers_) != 1 or len(estimator.classes_) != 2:
        return None
    fitted = estimator.calibrated_classifiers_[0]
    inner = fitted.estimator.estimator if isinstance(fitted.estimator, FrozenEstimator) else fitted.estimator
    if len(fitted.calibrators) != 1 or list(inner.classes_) != list(estimator.classes_):
        return None
    steps, final = (
        ([_transform(s) for _, s in inner.steps[:-1] if s not in (None, "passthrough")], inner.steps[-1][1])
        if isinstance(inner, Pipeline)
        else ([], inner)
    )
    decision = hasattr(inner, "decision_function")  # the calibrator was fitted on what the wrapper prefers
    calibrator = fitted.calibrators[0]

    def predict(X):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
            for step in steps:
                X = step(X)
            p = calibrator.predict(final.decision_function(X) if decision else final.predict_proba(X)[:, 1])
        return np.where((p > 1.0) & (p <= 1.0 + 1e-5), 1.0, p)  # as the wrapper rounds a hair above 1

    return predict


def _transform(step):
    """A fitted step's transform. A column transformer of dense parts over named columns becomes its
    parts applied to NumPy blocks of their columns, side by side (the order it stacks them in);
    its pipelines become their steps in order. Validating a wide data frame at every layer costs the
    REST service milliseconds per request; the columns were chosen by name before anything runs.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(step, Pipeline):
        parts = [_transform(s) for _, s in step.steps if s not in (None, "passthrough")]

        def run(X):
            for part in parts:
                X = part(X)
            return X

        return run
    if (
        isinstance(step, ColumnTransformer)
        and not step.sparse_output_
        and getattr(step, "_sklearn_output_config", {}).get("transform") in (None, "default")
    ):
        parts = [(list(c), t) for _, t, c in step.transformers_ if not (isinstance(t, str) and t == "drop") and len(c)]
        if all(not isinstance(t, str) and all(isinstance(name, str) for name in c) for c, t in parts):  # no passthrough
            parts = [(c, _transform(t)) for c, t in parts]
            return lambda X: np.hstack([part(X[c].to_numpy()) for c, part in parts])
    return step.transform
