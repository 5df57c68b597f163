"""Optuna search per family: a seeded TPE sampler, a trial and a time budget, trials as nested MLflow runs."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import optuna

from models.families import Family
from models.spec import FeatureSpec
from training.config import TrainingConfig
from training.metrics import score_metrics


def tune_family(
    family: Family, spec: FeatureSpec, X_train, y_train, X_valid, y_valid, cfg: TrainingConfig, log_trials: bool = True
) -> dict:
    """Best parameters on the validation cutoff by ``cfg.metric`` (empty for untuned families)."""
    if not family.tuned:
        return {}
    optuna.logging.set_verbosity(logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        params = family.space(trial)
        model = family.build(spec, params, cfg.seed).fit(X_train, y_train)
        score = score_metrics(y_valid, model.predict_proba(X_valid)[:, 1])[cfg.metric]
        if log_trials:
            with mlflow.start_run(run_name=f"{family.name}-trial-{trial.number}", nested=True):
                mlflow.log_params(params)
                mlflow.log_metric(f"valid_{cfg.metric}", score)
        return -np.inf if np.isnan(score) else score

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        study_name=family.name,
    )
    study.optimize(objective, n_trials=cfg.tuning.n_trials, timeout=cfg.tuning.timeout_s)
    best = dict(study.best_params)
    # Constants of the search space (suggested values only are recorded by Optuna).
    fixed = family.space(optuna.trial.FixedTrial(best))
    return fixed
