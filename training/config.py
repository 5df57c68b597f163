"""Training configuration: YAML data validated into typed objects (with a quick profile)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.errors import PropensityError, validated
from models.families import FAMILIES

METRICS = ("pr_auc", "roc_auc", "neg_log_loss")
VALUE_METRICS = ("gini", "spearman", "neg_mae")
TASKS = ("churn", "purchase", "value")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tuning(_Strict):
    n_trials: int = 12
    timeout_s: float | None = None  # None: the trial count alone bounds a search, so results do not depend on load
    max_rows: int | None = Field(20_000, ge=1000)  # a trial fits on at most this many training rows (None: all)
    # each family's fit at each backtest origin (the leaderboard, calibration) takes at most this many (None: all);
    # the champion's refit always takes every row
    backtest_max_rows: int | None = Field(100_000, ge=1000)


class TrainingConfig(_Strict):
    seed: int = 42
    metric: str = "pr_auc"
    calibration: Literal["auto", "none", "sigmoid", "isotonic"] = "auto"
    models: list[str]
    baselines: list[str]
    value_metric: str = "gini"  # the value task's tuning and champion metric: gini | spearman | neg_mae
    value_models: list[str] = ["lightgbm_tweedie", "xgboost_tweedie"]
    value_baselines: list[str] = ["historic_rate", "bgnbd_gamma_gamma"]
    horizons: dict[str, int]
    lookback_days: int = 365
    min_history_days: int = 30
    origins: int = Field(3, ge=1)
    grid: Literal["monthly", "weekly"] = "monthly"
    train_window_cutoffs: int | None = Field(None, ge=1)  # None: every closed cutoff trains (an expanding window)
    tuning: Tuning = Tuning()
    workers: int = Field(2, ge=1)  # families compared at once, each in its own process on one thread
    svm_max_rows: int = 20_000
    champion_rule: Literal["one_se", "best"] = "one_se"
    bootstrap_resamples: int = 200

    @field_validator("models", "baselines", "value_models", "value_baselines")
    @classmethod
    def _known(cls, names, info):
        kind = "value" if info.field_name.startswith("value") else "binary"
        known = [n for n, f in FAMILIES.items() if f.kind == kind]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown model family {unknown[0]!r}; known: {', '.join(known)}")
        return names

    @field_validator("metric", "value_metric")
    @classmethod
    def _metric(cls, value, info):
        allowed = VALUE_METRICS if info.field_name == "value_metric" else METRICS
        if value not in allowed:
            raise ValueError(f"must be one of {allowed}")
        return value

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, value):
        if not {"churn", "purchase"} <= set(value) <= set(TASKS) or min(value.values()) < 1:
            raise ValueError("needs positive churn and purchase horizons in days (and optionally value)")
        return {"value": 90, **value}

    def families(self, task: str) -> list[str]:
        """The learners, then the baselines not already among them, that a task compares."""
        models, baselines = (
            (self.value_models, self.value_baselines) if task == "value" else (self.models, self.baselines)
        )
        return [*models, *[b for b in baselines if b not in models]]

    def metric_for(self, task: str) -> str:
        return self.value_metric if task == "value" else self.metric


def _deep_update(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _deep_update(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _read_yaml(path: Path | None) -> dict:
    try:
        text = (
            Path(path).read_text() if path else resources.files("training").joinpath("config/training.yaml").read_text()
        )
    except OSError as exc:
        raise PropensityError(f"Cannot read the training config {path}: {exc.strerror}.") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PropensityError(f"The training config {path} is not valid YAML: {exc}.") from None
    if not isinstance(data, dict):
        raise PropensityError(f"The training config {path} must be a mapping of settings (key: value).")
    return data


def load_config(path: Path | None = None, profile: str | None = None, **overrides) -> TrainingConfig:
    """The shipped configuration, then the user's file ``path`` over it key by key (a nested mapping merges, a
    list or a value replaces: a file with just ``horizons: {churn: 60}`` changes only the churn horizon), then
    the ``profile`` (the file may add or change profiles), then ``overrides``."""
    data = _read_yaml(None)
    if path is not None:
        data = _deep_update(data, _read_yaml(path))
    profiles = data.pop("profiles", None) or {}
    if profile:
        if profile not in profiles:
            raise PropensityError(f"Unknown training profile {profile!r}; known profiles: {sorted(profiles)}.")
        data = _deep_update(data, profiles[profile])
    data = _deep_update(data, {k: v for k, v in overrides.items() if v is not None})
    return validated(TrainingConfig, data, "training config is")
