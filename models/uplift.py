"""Uplift models: who is retained *because* they were contacted, learnt from campaigns with a control group.

Two learners from scikit-uplift, each over gradient-boosted trees on the campaign's feature rows at its as_of:
the two-model approach (T-learner: one model of retention for the treated, one for the control; the uplift is
their difference) and the class-transformation approach (a transformed-outcome model: one classifier of
Z = 1 when treated-and-retained or control-and-churned, whose 2 P(Z) - 1 is the uplift under a balanced
holdout; Jaskowski & Jaroszewicz 2012). They are compared on held-out members by the Qini coefficient (area
between the Qini curve and the random line, normalised by the perfect one: scikit-uplift's ``qini_auc_score``),
against the churn-risk ranking the campaign used.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from models.spec import FeatureSpec

LEARNERS = ("two_models", "class_transformation")


def _trees(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15, random_state=seed)


def fit_uplift(X: pd.DataFrame, treated: np.ndarray, retained: np.ndarray, learner: str, seed: int = 0):
    """A fitted scikit-uplift model of retention's uplift from contact (``predict`` gives it per row)."""
    from sklift.models import ClassTransformation, TwoModels

    if learner == "two_models":
        model = TwoModels(estimator_trmnt=_trees(seed), estimator_ctrl=_trees(seed), method="vanilla")
    elif learner == "class_transformation":
        model = ClassTransformation(estimator=_trees(seed))
    else:
        raise ValueError(f"unknown uplift learner {learner!r}; one of {LEARNERS}")
    return model.fit(X, retained.astype(int), treated.astype(int))


@contextmanager
def _quiet():
    """scikit-uplift 0.5.1 calls a scikit-learn helper deprecated in 1.8 (stable_cumsum): not our users' concern."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*stable_cumsum.*", category=FutureWarning)
        yield


def qini(retained: np.ndarray, score: np.ndarray, treated: np.ndarray) -> float:
    """The Qini coefficient of a ranking by ``score`` (highest first), normalised: 0 random, 1 perfect."""
    from sklift.metrics import qini_auc_score

    with _quiet():
        return float(qini_auc_score(retained.astype(int), np.asarray(score, dtype=float), treated.astype(int)))


@dataclass(frozen=True)
class UpliftResult:
    qini: dict[str, float]  # learner (and "churn risk") -> Qini coefficient on the held-out members
    best: str
    train_members: int
    test_members: int
    model: object  # the best learner, refit on all members
    spec: FeatureSpec
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # ranking -> Qini curve on the held-out members (x, y)


def split_members(treated: np.ndarray, seed: int, test_share: float = 0.5) -> np.ndarray:
    """A test mask drawn within each group (treated, control), so both halves keep the holdout's balance."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(treated), dtype=bool)
    for flag in (True, False):
        rows = np.flatnonzero(treated == flag)
        test[rng.permutation(rows)[: int(round(test_share * len(rows)))]] = True
    return test


def compare_uplift(
    X: pd.DataFrame, treated: np.ndarray, retained: np.ndarray, p_churn: np.ndarray, spec: FeatureSpec, seed: int = 0
) -> UpliftResult:
    """Fit each learner on half of the members, score the other half by Qini against the churn-risk ranking, and
    refit the best on every member."""
    from sklift.metrics import qini_curve

    test = split_members(treated, seed)
    ranked = {"churn risk": np.asarray(p_churn[test], dtype=float)}
    for learner in LEARNERS:
        fitted = fit_uplift(X[~test], treated[~test], retained[~test], learner, seed)
        ranked[learner] = fitted.predict(X[test])
    scores = {k: qini(retained[test], v, treated[test]) for k, v in ranked.items()}
    best = max(LEARNERS, key=lambda k: scores[k])
    with _quiet():
        curves = {
            k: qini_curve(retained[test].astype(int), ranked[k], treated[test].astype(int))
            for k in ("churn risk", best)
        }
    model = fit_uplift(X, treated, retained, best, seed)
    return UpliftResult(scores, best, int((~test).sum()), int(test.sum()), model, spec, curves)


UPLIFT_MODEL = "propensity-uplift"
TRUSTED = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklift.models.models.TwoModels",
    "sklift.models.models.ClassTransformation",
]


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


FEATURES_TAG = "uplift_features"


def register_uplift(result: UpliftResult, campaigns: list[str]) -> int:
    """Log the refit best learner in the active MLflow run, register it and point the champion alias at it."""
    import json

    import mlflow
    from mlflow import MlflowClient

    from models.registry import ALIAS

    info = mlflow.sklearn.log_model(
        result.model,
        name="model",
        registered_model_name=UPLIFT_MODEL,
        skops_trusted_types=TRUSTED,  # the types this process built (skops refuses unknown types on load)
        pip_requirements=[f"scikit-uplift=={_version('scikit-uplift')}", f"scikit-learn=={_version('scikit-learn')}"],
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(UPLIFT_MODEL, version, FEATURES_TAG, json.dumps(list(result.spec.numeric)))
    client.update_model_version(
        UPLIFT_MODEL,
        version,
        description=f"{result.best} uplift on retention from campaigns {', '.join(campaigns)}; Qini on held-out "
        f"members {result.qini[result.best]:+.4f} (churn-risk ranking {result.qini['churn risk']:+.4f}).",
    )
    client.set_registered_model_alias(UPLIFT_MODEL, ALIAS, version)
    return int(version)


def load_uplift():
    """The champion uplift model, the feature columns it takes and its version (None when none is registered)."""
    import json

    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from models.registry import ALIAS

    try:
        mv = MlflowClient().get_model_version_by_alias(UPLIFT_MODEL, ALIAS)
    except MlflowException:
        return None
    model = mlflow.sklearn.load_model(f"models:/{UPLIFT_MODEL}@{ALIAS}")
    return model, json.loads(mv.tags[FEATURES_TAG]), int(mv.version)
