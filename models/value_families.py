"""The value task's learners: net spend in the horizon by Tweedie gradient boosting (many zeros, a long tail),
on the same pipeline head as every learner; its baselines are in ``models.value``."""

from __future__ import annotations

from sklearn.pipeline import Pipeline

from models.pipeline import Family, _with_btyd
from models.value import BGNBDGammaGamma, HistoricRate


def _lgbm_value(spec, p, seed):
    from lightgbm import LGBMRegressor

    model = LGBMRegressor(
        objective="tweedie", random_state=seed, n_jobs=2, verbose=-1, deterministic=True, force_row_wise=True, **p
    )
    return Pipeline([*_with_btyd(spec, False), ("model", model)])


def _xgb_value(spec, p, seed):
    from xgboost import XGBRegressor

    model = XGBRegressor(objective="reg:tweedie", random_state=seed, n_jobs=2, tree_method="hist", **p)
    return Pipeline([*_with_btyd(spec, False), ("model", model)])


def _boosting_space(t, leaves: bool) -> dict:
    out = {
        "n_estimators": t.suggest_int("n_estimators", 100, 600, step=50),
        "learning_rate": t.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "subsample": t.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": t.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": t.suggest_float("reg_lambda", 1e-2, 10, log=True),
        "tweedie_variance_power": t.suggest_float("tweedie_variance_power", 1.1, 1.9),  # many zeros, a long tail
    }
    if leaves:
        out.update(num_leaves=t.suggest_int("num_leaves", 7, 63), subsample_freq=1)
        out["min_child_samples"] = t.suggest_int("min_child_samples", 10, 200, log=True)
    else:
        out.update(max_depth=t.suggest_int("max_depth", 2, 8))
        out["min_child_weight"] = t.suggest_float("min_child_weight", 1, 50, log=True)
    return out


VALUE_FAMILIES: dict[str, Family] = {
    "lightgbm_tweedie": Family("lightgbm_tweedie", _lgbm_value, lambda t: _boosting_space(t, True), kind="value"),
    "xgboost_tweedie": Family("xgboost_tweedie", _xgb_value, lambda t: _boosting_space(t, False), kind="value"),
    **{
        name: Family(name, lambda spec, p, seed, e=estimator: e(p["horizon_days"]), lambda t: {}, True, False, "value")
        for name, estimator in (("historic_rate", HistoricRate), ("bgnbd_gamma_gamma", BGNBDGammaGamma))
    },
}
