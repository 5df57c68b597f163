"""Fit a family at an origin, score it, and tune it with Optuna on the pooled backtest origins.

A seeded TPE sampler and a trial count bound each search (a wall-clock timeout is optional and off
by default), so a rerun gives the same parameters whatever the machine's load. Trials fit on at most
``tuning.max_rows`` training rows (a seeded stratified subsample), so the cost of a search stops growing
with the log; the chosen parameters are then fitted at every origin on at most ``tuning.backtest_max_rows``
rows (the leaderboard), and the champion's refit takes every row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import optuna
from sklearn.model_selection import train_test_split

from models.families import Family
from models.pipeline import set_threads
from training.backtest import Origin
from training.config import TrainingConfig
from training.dataset import TaskData
from training.metrics import task_metrics


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict
    score: float  # the tuning metric on the pooled backtest origins


@dataclass
class OriginScores:
    origin: Origin
    y: np.ndarray
    p: np.ndarray
    model: object  # fitted on the cutoffs closed at the origin


def fixed_params(family: Family, task: str, cfg: TrainingConfig) -> dict:
    """The parameters of an untuned family (the BG/NBD baseline needs the horizon and the target)."""
    if family.name == "bgnbd":
        return {"horizon_days": cfg.horizons[task], "target": task}
    return {"horizon_days": cfg.horizons[task]} if family.kind == "value" and not family.tuned else {}


def fit_family(
    family: Family,
    params: dict,
    data: TaskData,
    cutoffs,
    cfg: TrainingConfig,
    max_rows: int | None = None,
    threads: int | None = 1,
):
    """The family with these parameters, fitted on the rows of these cutoffs (a seeded stratified subsample of
    at most ``max_rows`` of them when given; the SVM's kernel approximation never takes more than ``svm_max_rows``).

    ``threads``: the learner's own threads (1 for every backtest fit, so that families can run side by side and
    a result never depends on how many ran at once; None keeps the family's setting, as the champion's refit does)."""
    X, y = data.xy(cutoffs)
    if family.name == "svm":
        max_rows = min(max_rows or cfg.svm_max_rows, cfg.svm_max_rows)
    binary = family.kind == "binary"
    if max_rows and len(y) > max_rows:
        strata = y if binary else y > 0  # value: as many buyers in the subsample as in the rows
        X, _, y, _ = train_test_split(X, y, train_size=max_rows, stratify=strata, random_state=cfg.seed)
    if not binary:  # net spend below zero (more returned than bought in the window) is learned as zero
        y = np.maximum(y, 0.0)
    model = family.build(data.spec, params, cfg.seed)
    if threads is not None:
        set_threads(model, threads)
    return model.fit(X, y)


def predict(model, X) -> np.ndarray:
    """A fitted family's score: the probability of the positive class, or the predicted amount."""
    return model.predict_proba(X)[:, 1] if hasattr(model, "predict_proba") else model.predict(X)


def score_origins(
    family: Family, params: dict, data: TaskData, origins, cfg: TrainingConfig, max_rows: int | None = None
) -> list[OriginScores]:
    """At each origin: fit on the cutoffs closed there (at most ``max_rows`` of their rows), score the origin's rows."""
    out = []
    for origin in origins:
        model = fit_family(family, params, data, origin.train, cfg, max_rows)
        X, y = data.xy(origin.as_of)
        out.append(OriginScores(origin, y, predict(model, X), model))
    return out


def calibration_scores(family: Family, params: dict, scores: list[OriginScores], data: TaskData, cfg: TrainingConfig):
    """For each origin's scores, the out-of-time scores that calibrate them as deployed (``calibration_origin``):
    reused when that cutoff is an origin already, else one more fit of the family; None where the log has none."""
    by_cutoff = {s.origin: s for s in scores}
    out = []
    for s in scores:
        origin = data.plan.calibration_origin(s.origin)
        if origin is not None and origin not in by_cutoff:
            by_cutoff[origin] = score_origins(family, params, data, [origin], cfg, cfg.tuning.backtest_max_rows)[0]
        out.append(by_cutoff.get(origin))
    return out


def pooled(scores: list[OriginScores]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([s.y for s in scores]), np.concatenate([s.p for s in scores])


def tune_family(family: Family, data: TaskData, origins, cfg: TrainingConfig) -> tuple[dict, list[Trial]]:
    """Best parameters by ``cfg.metric`` on the pooled scores of ``origins`` (fixed ones for untuned families),
    and every trial (the caller logs them: a search may run in a worker process with no MLflow run)."""
    if not family.tuned:
        return fixed_params(family, data.task, cfg), []
    optuna.logging.set_verbosity(logging.WARNING)
    trials: list[Trial] = []

    def objective(trial: optuna.Trial) -> float:
        params = family.space(trial)
        scores = score_origins(family, params, data, origins, cfg, cfg.tuning.max_rows)  # trials: bounded rows
        score = task_metrics(data.task)(*pooled(scores))[cfg.metric_for(data.task)]
        trials.append(Trial(trial.number, params, float(score)))
        return -np.inf if np.isnan(score) else score

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed), study_name=family.name
    )
    study.optimize(objective, n_trials=cfg.tuning.n_trials, timeout=cfg.tuning.timeout_s)
    return family.space(optuna.trial.FixedTrial(study.best_params)), trials  # with the space's constants
