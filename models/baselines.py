"""Honest baselines: a recency rule and the BG/NBD model, as scikit-learn estimators on feature frames.

BG/NBD (Fader, Hardie & Lee 2005) is fitted by maximum likelihood with scipy on the BTYD summary
(``btyd_frequency``, ``btyd_recency``, ``btyd_T`` in days) of the training cutoffs only. Its
probability of at least one purchase in the next ``t`` days is exact under the model: a customer
can only drop out right after a purchase, so the first purchase in the window happens while alive:
``P = P(alive) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x))``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.isotonic import IsotonicRegression


class RecencyRule(ClassifierMixin, BaseEstimator):
    """Rank by days since the last purchase (longer silence = more churn, less purchase).

    The monotone map from recency to probability is fitted by isotonic regression on the training
    labels, so log loss and Brier are meaningful; the ranking is the rule itself.
    """

    def __init__(self, column: str = "recency_days"):
        self.column = column

    @property
    def reads(self) -> tuple[str, ...]:
        """The one input the rule uses (scoring asks for nothing else)."""
        return (self.column,)

    def fit(self, X: pd.DataFrame, y):
        y = np.asarray(y)
        self.classes_ = np.array([0, 1])
        corr = np.corrcoef(X[self.column].to_numpy(float), y)[0, 1] if y.std() > 0 else 1.0
        self.increasing_ = bool(np.nan_to_num(corr, nan=1.0) >= 0)
        self.iso_ = IsotonicRegression(increasing=self.increasing_, out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4)
        self.iso_.fit(X[self.column].to_numpy(float), y)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.iso_.predict(X[self.column].to_numpy(float))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def bgnbd_log_likelihood(params, x, t_x, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6)."""
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    first = betaln(a, b + x) - betaln(a, b) + common - (r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        second = np.where(
            x > 0,
            betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - betaln(a, b) + common - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return np.logaddexp(first, second)


_FIT_CACHE: dict[bytes, tuple] = {}


def fit_bgnbd(x, t_x, T, init=(1.0, 1.0, 1.0, 1.0)) -> tuple[float, float, float, float]:
    """Maximum-likelihood (r, alpha, a, b), optimised on log-parameters (memoised per data)."""
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    key = hashlib.sha1(np.concatenate([x, t_x, T, np.asarray(init, float)]).tobytes()).digest()
    if key not in _FIT_CACHE:
        if len(_FIT_CACHE) > 64:
            _FIT_CACHE.clear()
        _FIT_CACHE[key] = _fit_bgnbd(x, t_x, T, init)
    return _FIT_CACHE[key]


def _fit_bgnbd(x, t_x, T, init):
    """The likelihood depends on a customer only through (x, t_x, T), whole days: it is summed over the distinct
    triples, weighted by how many customers share each. L-BFGS-B on the log-parameters converges in under a hundred
    evaluations; Nelder-Mead, then L-BFGS-B again, is the fallback when it does not."""
    triples, weight = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    ux, ut, uT = triples.T

    def negll(logp):
        with np.errstate(all="ignore"):  # the optimiser's trial steps may overflow; a non-finite value is rejected
            return -(weight * bgnbd_log_likelihood(np.exp(logp), ux, ut, uT)).sum()

    best = minimize(negll, np.log(init), method="L-BFGS-B")
    if not (best.success and np.isfinite(best.fun)):
        best = minimize(
            negll, np.log(init), method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-6}
        )
        best = minimize(negll, best.x, method="L-BFGS-B")
    return tuple(float(v) for v in np.exp(best.x))


def bgnbd_p_alive(params, x, t_x, T) -> np.ndarray:
    r, alpha, a, b = params
    x = np.asarray(x, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return 1.0 / (1.0 + ratio)


def bgnbd_p_purchase(params, x, t_x, T, horizon) -> np.ndarray:
    r, alpha, _, _ = params
    return bgnbd_p_alive(params, x, t_x, T) * (
        1.0 - ((alpha + T) / (alpha + T + horizon)) ** (r + np.asarray(x, float))
    )


class BGNBDBaseline(ClassifierMixin, BaseEstimator):
    """BG/NBD probability of a purchase in the horizon (purchase task) or of none (churn task)."""

    reads = ("btyd_frequency", "btyd_recency", "btyd_T")  # the BTYD summary is all it uses (scoring asks for no more)

    def __init__(self, horizon_days: int = 90, target: str = "churn"):
        self.horizon_days = horizon_days
        self.target = target

    @staticmethod
    def _summary(X: pd.DataFrame):
        return (X["btyd_frequency"].to_numpy(float), X["btyd_recency"].to_numpy(float), X["btyd_T"].to_numpy(float))

    def fit(self, X: pd.DataFrame, y=None):
        self.classes_ = np.array([0, 1])
        self.params_ = fit_bgnbd(*self._summary(_latest_per_customer(X)))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p_buy = np.clip(bgnbd_p_purchase(self.params_, *self._summary(X), self.horizon_days), 1e-6, 1 - 1e-6)
        p = 1 - p_buy if self.target == "churn" else p_buy
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


BTYD_FEATURES = ("bgnbd_p_alive", "bgnbd_p_purchase_30d", "bgnbd_p_purchase_90d")


def _latest_per_customer(X: pd.DataFrame) -> pd.DataFrame:
    """Each customer once, at its latest cutoff: repeated snapshots are not independent draws."""
    if "customer_id" not in X:
        return X
    return X.sort_values("btyd_T", kind="stable").groupby(X["customer_id"], sort=False).tail(1)


class BGNBDFeatures(TransformerMixin, BaseEstimator):
    """Adds BG/NBD P(alive) and P(purchase in 30/90 days), fitted on the training rows only.

    Inside a model pipeline, it gives every learner the BTYD model's signal, with no leakage: the
    parameters are learned in ``fit`` and travel with the fitted pipeline.
    """

    def fit(self, X: pd.DataFrame, y=None):
        self.params_ = fit_bgnbd(*BGNBDBaseline._summary(_latest_per_customer(X)))
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        summary = BGNBDBaseline._summary(X)
        added = {"bgnbd_p_alive": bgnbd_p_alive(self.params_, *summary)}
        for h in (30, 90):
            added[f"bgnbd_p_purchase_{h}d"] = bgnbd_p_purchase(self.params_, *summary, h)
        return pd.concat(
            [X, pd.DataFrame(added, index=X.index)], axis=1
        )  # one concat: per-column inserts cost each call

    def get_feature_names_out(self, input_features=None):
        return np.array([*(input_features or []), *BTYD_FEATURES], dtype=object)
