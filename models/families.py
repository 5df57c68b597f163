"""Model families: each a scikit-learn pipeline (the shared head of ``models.pipeline`` inside) plus an Optuna
search space; the value task's families come from ``models.value_families``."""

from __future__ import annotations

from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from features.errors import PropensityError
from models.baselines import BGNBDBaseline, RecencyRule
from models.pipeline import Family, _as_text, _signed_log, _with_btyd, preprocessor  # noqa: F401 (pickled models)
from models.value_families import VALUE_FAMILIES


def _tree(spec, p, seed):
    return Pipeline(
        [*_with_btyd(spec, False), ("model", DecisionTreeClassifier(random_state=seed, class_weight="balanced", **p))]
    )


def _forest(spec, p, seed):
    return Pipeline(
        [
            *_with_btyd(spec, False),
            ("model", RandomForestClassifier(random_state=seed, n_jobs=2, class_weight="balanced_subsample", **p)),
        ]
    )


def _svm(spec, p, seed):
    kernel = Pipeline(
        [
            ("rbf", Nystroem(kernel="rbf", gamma=p["gamma"], n_components=p["n_components"], random_state=seed)),
            ("svm", LinearSVC(C=p["C"], class_weight="balanced", random_state=seed)),
        ]
    )
    # BG/NBD and the preprocessing are fitted once; only the kernel SVM is cross-fitted for its Platt scaling
    return Pipeline([*_with_btyd(spec, True), ("model", CalibratedClassifierCV(kernel, method="sigmoid", cv=3))])


def _xgb(spec, p, seed):
    from xgboost import XGBClassifier

    return Pipeline(
        [
            *_with_btyd(spec, False),
            ("model", XGBClassifier(random_state=seed, n_jobs=2, tree_method="hist", eval_metric="logloss", **p)),
        ]
    )


def _lgbm(spec, p, seed):
    from lightgbm import LGBMClassifier

    return Pipeline(
        [
            *_with_btyd(spec, False),
            (
                "model",
                LGBMClassifier(random_state=seed, n_jobs=2, verbose=-1, deterministic=True, force_row_wise=True, **p),
            ),
        ]
    )


def _mlp(spec, p, seed):
    from sklearn.neural_network import MLPClassifier

    layers = (p["units"],) if p["layers"] == 1 else (p["units"], max(p["units"] // 2, 4))
    net = MLPClassifier(
        hidden_layer_sizes=layers,
        alpha=p["alpha"],
        learning_rate_init=p["learning_rate_init"],
        batch_size=256,
        max_iter=200,
        early_stopping=True,  # a seeded 10% of the training rows decides when to stop
        n_iter_no_change=10,
        random_state=seed,
    )
    return Pipeline([*_with_btyd(spec, True), ("model", net)])


def _logistic(spec, p, seed):
    return Pipeline(
        [
            ("prep", preprocessor(spec, True, btyd=False)),
            ("model", LogisticRegression(C=p.get("C", 1.0), max_iter=2000)),
        ]
    )


FAMILIES: dict[str, Family] = {
    "decision_tree": Family(
        "decision_tree",
        _tree,
        lambda t: {
            "max_depth": t.suggest_int("max_depth", 2, 12),
            "min_samples_leaf": t.suggest_int("min_samples_leaf", 5, 200, log=True),
        },
    ),
    "svm": Family(
        "svm",
        _svm,
        lambda t: {
            "C": t.suggest_float("C", 1e-3, 1.0, log=True),  # above 1 liblinear converges slowly and gains nothing here
            "gamma": t.suggest_float("gamma", 1e-3, 1.0, log=True),
            "n_components": t.suggest_int("n_components", 50, 200, step=50),
        },
    ),
    "random_forest": Family(
        "random_forest",
        _forest,
        lambda t: {
            "n_estimators": t.suggest_int("n_estimators", 100, 200, step=50),
            "max_depth": t.suggest_int("max_depth", 4, 12),
            "min_samples_leaf": t.suggest_int("min_samples_leaf", 5, 100, log=True),
            "max_features": t.suggest_float("max_features", 0.1, 0.5),
            "max_samples": t.suggest_float("max_samples", 0.2, 0.6),  # each tree sees a bootstrap of this share
        },
    ),
    "xgboost": Family(
        "xgboost",
        _xgb,
        lambda t: {
            "n_estimators": t.suggest_int("n_estimators", 100, 600, step=50),
            "learning_rate": t.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "max_depth": t.suggest_int("max_depth", 2, 8),
            "min_child_weight": t.suggest_float("min_child_weight", 1, 50, log=True),
            "subsample": t.suggest_float("subsample", 0.6, 1.0),
            "colsample_bytree": t.suggest_float("colsample_bytree", 0.5, 1.0),
            "reg_lambda": t.suggest_float("reg_lambda", 1e-2, 10, log=True),
        },
    ),
    "lightgbm": Family(
        "lightgbm",
        _lgbm,
        lambda t: {
            "n_estimators": t.suggest_int("n_estimators", 100, 600, step=50),
            "learning_rate": t.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "num_leaves": t.suggest_int("num_leaves", 7, 63),
            "min_child_samples": t.suggest_int("min_child_samples", 10, 200, log=True),
            "subsample": t.suggest_float("subsample", 0.6, 1.0),
            "subsample_freq": 1,
            "colsample_bytree": t.suggest_float("colsample_bytree", 0.5, 1.0),
            "reg_lambda": t.suggest_float("reg_lambda", 1e-2, 10, log=True),
        },
    ),
    "neural_network": Family(
        "neural_network",
        _mlp,
        lambda t: {
            "layers": t.suggest_int("layers", 1, 2),
            "units": t.suggest_int("units", 8, 64, log=True),
            "alpha": t.suggest_float("alpha", 1e-5, 1e-1, log=True),
            "learning_rate_init": t.suggest_float("learning_rate_init", 1e-4, 1e-2, log=True),
        },
    ),
    "logistic": Family("logistic", _logistic, lambda t: {"C": t.suggest_float("C", 1e-3, 10, log=True)}, baseline=True),
    "recency_rule": Family(
        "recency_rule", lambda spec, p, seed: RecencyRule(), lambda t: {}, baseline=True, tuned=False
    ),
    "bgnbd": Family(
        "bgnbd",
        lambda spec, p, seed: BGNBDBaseline(p["horizon_days"], p["target"]),
        lambda t: {},
        baseline=True,
        tuned=False,
    ),
    **VALUE_FAMILIES,
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise PropensityError(f"Unknown model family {name!r}; known families: {', '.join(FAMILIES)}.")
    return FAMILIES[name]
