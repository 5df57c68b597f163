"""A one-dimensional calibrator: the champion's score in, a probability a marketer can multiply by money out.

``sigmoid`` is Platt scaling in log-odds space: a logistic regression on ``logit(score)``, so an already
calibrated score maps to itself (slope 1, intercept 0). ``isotonic`` is scikit-learn's isotonic
regression, clipped to the range it was fitted on. ``none`` keeps the score as it is (a model trained on
log loss, such as the logistic regression, may already be better calibrated than any recalibration learned
from one recent window, whose own churn rate it would copy). All are monotone, so the ranking is kept.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import expit, logit
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Method = Literal["none", "sigmoid", "isotonic"]
METHODS: tuple[str, ...] = ("none", "sigmoid", "isotonic")
EPS = 1e-6  # scores are clipped to [EPS, 1 - EPS] before the logit


def _log_odds(score) -> np.ndarray:
    return logit(np.clip(np.asarray(score, dtype=float), EPS, 1 - EPS))


class Calibrator(BaseEstimator):
    """Maps a model's score in [0, 1] to a calibrated probability: ``predict(score) -> p``."""

    def __init__(self, method: Method = "sigmoid"):
        self.method = method

    def fit(self, score, y) -> Calibrator:
        y = np.asarray(y)
        if self.method == "sigmoid":
            fitted = LogisticRegression(C=1e6, max_iter=1000).fit(_log_odds(score).reshape(-1, 1), y)
            self.slope_, self.intercept_ = float(fitted.coef_[0, 0]), float(fitted.intercept_[0])
        elif self.method == "none":
            pass
        elif self.method == "isotonic":
            self.isotonic_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, y)
        else:
            raise ValueError(f"unknown calibration method {self.method!r}: use none, sigmoid or isotonic")
        return self

    def predict(self, score) -> np.ndarray:
        if self.method == "sigmoid":
            return expit(self.slope_ * _log_odds(score) + self.intercept_)
        if self.method == "none":
            return np.asarray(score, dtype=float)
        return self.isotonic_.predict(np.asarray(score, dtype=float))
