"""Customer value: the spend baselines (the historic rate, BG/NBD x Gamma-Gamma) and the CLV formula.

The value task predicts net spend (purchases minus returns) in the next ``horizon_days``. Its two
baselines, as scikit-learn regressors on feature frames:

- ``HistoricRate``: the customer's historic net spend rate (net spend / tenure, tenure at least 30
  days) times the horizon, the heuristic value at risk used before there was a value model.
- ``BGNBDGammaGamma``: BG/NBD expected purchase days in the horizon (Fader, Hardie & Lee 2005, eq. 10)
  times the Gamma-Gamma expected spend per purchase day (Fader, Hardie & Lee 2005, "RFM and CLV";
  Colombo & Jiang 1999), both fitted by maximum likelihood with scipy on the training cutoffs.
  Gamma-Gamma takes the customers with a repeat purchase day and a positive mean spend per
  purchase day (``net_spend_total / frequency_days``: the log holds no per-transaction spend of
  repeat purchases alone, so the first purchase day is in the mean).

``clv`` turns a predicted spend over the horizon into a customer lifetime value: the margin on that
spend rate held for ``duration_months``, discounted monthly, minus the cost of serving and retaining.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1
from sklearn.base import BaseEstimator, RegressorMixin

from models.baselines import BGNBDBaseline, _latest_per_customer, bgnbd_p_alive, fit_bgnbd

DAYS_PER_MONTH = 365.25 / 12


def historic_rate(features: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Historic net spend rate over the customer's tenure (at least 30 days), projected over the horizon."""
    spend, tenure = (features[c].to_numpy(dtype=float) for c in ("net_spend_total", "tenure_days"))
    return np.maximum(spend, 0) / np.maximum(tenure, 30) * horizon_days


def gamma_gamma_log_likelihood(params, x, m) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of the mean spend ``m`` over ``x`` transactions (up to a constant
    in the data), as in Fader, Hardie & Lee's note on the Gamma-Gamma spend model."""
    p, q, gamma = params
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(gamma)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(x * m + gamma)
    )


def fit_gamma_gamma(x, m, init=(1.0, 1.0, 1.0)) -> tuple[float, float, float]:
    """Maximum-likelihood (p, q, gamma) on log-parameters, from customers with x > 0 transactions of mean m > 0."""
    x, m = np.asarray(x, float), np.asarray(m, float)
    keep = (x > 0) & (m > 0) & np.isfinite(m)
    x, m = x[keep], m[keep]
    if len(x) < 10:
        raise ValueError("Gamma-Gamma needs at least 10 customers with a repeat purchase and a positive spend")
    scale = float(np.median(m))  # fitted on m / scale (better conditioned), gamma scaled back

    def negll(logp):
        return -gamma_gamma_log_likelihood(np.exp(logp), x, m / scale).sum()

    best = minimize(negll, np.log(init), method="L-BFGS-B")
    if not (best.success and np.isfinite(best.fun)):
        best = minimize(negll, np.log(init), method="Nelder-Mead", options={"maxiter": 4000})
    p, q, gamma = np.exp(best.x)
    return float(p), float(q), float(gamma * scale)


def gamma_gamma_expected_spend(params, x, m) -> np.ndarray:
    """E[spend per transaction | x, m]: a weighted mean of the population mean and the customer's own mean."""
    p, q, gamma = params
    x, m = np.asarray(x, float), np.nan_to_num(np.asarray(m, float))
    m = np.where(x > 0, np.maximum(m, 0), 0.0)
    return p * (gamma + x * m) / np.maximum(p * x + q - 1, 1e-9)


def bgnbd_expected_purchases(params, x, t_x, T, horizon) -> np.ndarray:
    """BG/NBD expected number of purchase days in the next ``horizon`` days (Fader, Hardie & Lee 2005, eq. 10)."""
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    z = horizon / (alpha + T + horizon)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        head = (a + b + x - 1) / (a - 1)
        tail = 1 - ((alpha + T) / (alpha + T + horizon)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        out = head * tail * bgnbd_p_alive(params, x, t_x, T)
    return np.clip(np.nan_to_num(out, nan=0.0, posinf=0.0), 0, None)


def _mean_spend(X: pd.DataFrame) -> np.ndarray:
    return X["net_spend_total"].to_numpy(float) / np.maximum(X["frequency_days"].to_numpy(float), 1)


class HistoricRate(RegressorMixin, BaseEstimator):
    """Net spend in the horizon = historic net spend rate x the horizon (nothing to fit)."""

    def __init__(self, horizon_days: int = 90):
        self.horizon_days = horizon_days

    def fit(self, X: pd.DataFrame, y=None):
        self.fitted_ = True
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return historic_rate(X, self.horizon_days)


class BGNBDGammaGamma(RegressorMixin, BaseEstimator):
    """Net spend in the horizon = BG/NBD expected purchase days x Gamma-Gamma expected spend per purchase day."""

    def __init__(self, horizon_days: int = 90):
        self.horizon_days = horizon_days

    def fit(self, X: pd.DataFrame, y=None):
        latest = _latest_per_customer(X)
        self.bgnbd_ = fit_bgnbd(*BGNBDBaseline._summary(latest))
        self.gamma_gamma_ = fit_gamma_gamma(latest["btyd_frequency"], _mean_spend(latest))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        x, t_x, T = BGNBDBaseline._summary(X)
        purchases = bgnbd_expected_purchases(self.bgnbd_, x, t_x, T, self.horizon_days)
        return purchases * gamma_gamma_expected_spend(self.gamma_gamma_, x, _mean_spend(X))


class ValueSettings(BaseModel):
    """How a predicted spend becomes a customer lifetime value (serving/config/value.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gross_margin: float = Field(0.3, gt=0, le=1)  # share of net spend that is margin
    discount_rate_annual: float = Field(0.1, ge=0, lt=1)
    duration_months: int = Field(12, ge=1, le=120)  # how long the predicted spend rate is held
    contact_cost: float = Field(0.0, ge=0)  # expected cost to serve and retain the customer over the duration
    currency: str = Field("", max_length=5)  # the sign the report puts before amounts, e.g. "£" (lists stay numbers)


def clv(predicted_spend, horizon_days: int, settings: ValueSettings) -> np.ndarray:
    """CLV = gross_margin x (predicted_spend / horizon_days x DAYS_PER_MONTH) x sum_{k=1..D} (1 + d)^(-k/12) - cost.

    ``predicted_spend`` is net spend over ``horizon_days`` (returns already reduce it), D is
    ``duration_months`` and d ``discount_rate_annual``: the monthly spend rate, held for D months, each month
    discounted to today, as margin, less the expected cost to serve and retain over the duration.
    """
    monthly = np.asarray(predicted_spend, float) / horizon_days * DAYS_PER_MONTH
    months = np.arange(1, settings.duration_months + 1)
    annuity = float(np.sum((1 + settings.discount_rate_annual) ** (-months / 12)))
    return settings.gross_margin * monthly * annuity - settings.contact_cost
