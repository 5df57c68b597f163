"""Train, compare, calibrate and register: one MLflow parent run per task, a child run per family.

The protocol (``training.backtest``): every family is tuned and compared on the pooled backtest
origins, and scored on the untouched latest origin, the leaderboard's test; the champion (one-SE
rule) is then refit on every cutoff whose label window closed, calibrated on the latest origin's
out-of-time scores, and registered with a record of what trained and calibrated it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from features.build import build_training_table
from features.cutoffs import Horizons
from features.errors import PropensityError
from features.transactions import TransactionLog
from models.calibration import Calibrator
from models.spec import model_input
from training.compare import leaderboard, run_families
from training.config import TrainingConfig
from training.dataset import LABELS, prepare_task
from training.evaluation import evaluation_artifacts, log_dataset, log_family, log_leaderboard, margins_over_baselines
from training.metrics import task_metrics
from training.register import model_record, register_model
from training.select import choose_calibration, choose_champion
from training.tune import calibration_scores, fit_family, pooled


@dataclass
class TaskResult:
    task: str
    leaderboard: pd.DataFrame
    champion: str
    champion_test: dict  # the calibrated champion on the latest origin
    version: int | None
    run_id: str
    margins: dict = field(default_factory=dict)  # champion minus each baseline on the latest origin
    margin_se: dict = field(default_factory=dict)  # paired bootstrap SE of each margin
    mean_margins: dict = field(default_factory=dict)  # the same margins averaged over every origin
    selection: dict = field(default_factory=dict)  # how the champion was chosen (choose_champion)
    calibration: str = "sigmoid"
    origins: pd.DataFrame = field(default_factory=pd.DataFrame)  # family x origin: ROC-AUC and PR-AUC
    warnings: tuple[str, ...] = ()
    plan: str = ""
    test_predictions: pd.DataFrame = field(default_factory=pd.DataFrame)  # y and the calibrated p on the test origin
    metric: str = "pr_auc"  # what chose the champion on the backtest


def train_task(
    log: TransactionLog,
    task: str,
    cfg: TrainingConfig,
    register: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> TaskResult:
    data = prepare_task(log, task, cfg)
    warnings = list(data.plan.warnings)
    for warning in warnings:
        progress(f"{task}: {warning}")
    families = cfg.families(task)
    metric = cfg.metric_for(task)
    with (
        mlflow.start_run(run_name=f"train-{task}", nested=mlflow.active_run() is not None) as parent,
        tempfile.TemporaryDirectory() as tmp,
    ):
        folder = Path(tmp)
        fingerprint = data.fingerprint()
        mlflow.log_dict(cfg.model_dump(), "config.json")
        mlflow.log_dict(fingerprint, "dataset.json")
        log_dataset(data, fingerprint)
        mlflow.log_params({"task": task, "horizon_days": cfg.horizons[task], "plan": data.plan.describe()[:6000]})
        mlflow.log_params({"metric": metric, "seed": cfg.seed, "grid": cfg.grid, "origins": cfg.origins})
        mlflow.log_metrics({"rows": fingerprint["rows"], "rate": fingerprint["rate"]})

        results = run_families(families, data, cfg, progress)
        for result in results:
            log_family(result, cfg.metric_for(task))
        board = leaderboard(results, metric, task)
        y_backtest, _ = pooled(results[0]["scores"][:-1] or results[0]["scores"][-1:])
        champion, selection = choose_champion(results, y_backtest, cfg, metric)
        mlflow.log_dict(selection, "selection.json")
        mlflow.log_metrics({f"selection_paired_se_{k}": v for k, v in selection["paired_se"].items()})

        scores = champion["scores"]
        test = scores[-1]
        if task == "value":  # an amount, not a probability: nothing to calibrate
            method, losses, fit_on = "none", {}, test
        else:
            calibrators = calibration_scores(champion["family"], champion["params"], scores, data, cfg)
            pairs = [(c, s) for c, s in zip(calibrators[:-1], scores[:-1], strict=True) if c is not None]
            method, losses = choose_calibration(pairs, cfg)
            fit_on = calibrators[-1]
        if fit_on is None:  # as deployed is impossible: calibrate on the latest earlier origin, and say so
            fit_on = scores[-2] if len(scores) > 1 else test
            warnings.append(
                f"No cutoff closed by the test origin {test.origin.as_of} can calibrate it out of time: its ECE uses a "
                f"calibrator fitted on {fit_on.origin.as_of}, whose labels end after it (optimistic)."
            )
            progress(f"{task}: {warnings[-1]}")
        p_cal = test.p if task == "value" else Calibrator(method).fit(fit_on.p, fit_on.y).predict(test.p)
        mlflow.log_param("test_calibration_cutoff", str(fit_on.origin.as_of))
        champion_test = task_metrics(task)(test.y, p_cal)
        mlflow.log_metrics({f"champion_test_{k}": v for k, v in champion_test.items() if np.isfinite(v)})
        mlflow.log_metrics({f"calibration_log_loss_{k}": v for k, v in losses.items()})
        mlflow.set_tags({"champion": champion["name"], "best_on_backtest": selection["best_on_backtest"]})
        mlflow.set_tags({"task": task, "calibration": method})
        margins, margin_se, mean_margins = margins_over_baselines(champion, p_cal, test.y, results, cfg, task)
        mlflow.log_metrics({f"margin_vs_{k}": v for k, v in margins.items()})
        mlflow.log_metrics({f"margin_se_vs_{k}": v for k, v in margin_se.items()})
        mlflow.log_metrics({f"mean_margin_vs_{k}": v for k, v in mean_margins.items()})

        origins = pd.DataFrame([row for r in results for row in r["per_origin"]])
        origins.to_csv(folder / "origins.csv", index=False)
        log_leaderboard(board, folder)
        evaluation_artifacts(data, results, champion, p_cal, folder, cfg)
        mlflow.log_artifacts(str(folder), "evaluation")
        if warnings:
            mlflow.set_tag("warnings", " ".join(warnings))

        version = None
        if register:
            progress(f"{task}: refitting {champion['name']} on {len(data.plan.refit)} cutoffs")
            refit = fit_family(champion["family"], champion["params"], data, data.plan.refit, cfg)
            # the latest closed window, scored out of time (an amount is not calibrated)
            calibrator = None if task == "value" else Calibrator(method).fit(test.p, test.y)
            record = model_record(data, champion["name"], method, cfg, champion_test)
            version = register_model(refit, calibrator, record, data)
        return TaskResult(
            task,
            board,
            champion["name"],
            champion_test,
            version,
            parent.info.run_id,
            margins,
            margin_se,
            mean_margins,
            selection,
            method,
            origins,
            tuple(warnings),
            data.plan.describe(),
            pd.DataFrame({"y": test.y, "p": p_cal}),
            metric,
        )


def evaluate_registered(log: TransactionLog, task: str, as_of: date, version: int | None = None) -> dict:
    """Re-score a registered model on a chosen (fully observed) cutoff."""
    from models.registry import load_model

    model = load_model(task, version)  # its own horizon and population, whatever the config says now
    horizons = Horizons(model.horizon_days, model.horizon_days, model.lookback_days)
    table = build_training_table(log.source, [as_of], horizons)
    label = LABELS[task]
    if table.empty or table[label].nunique() < 2:
        raise PropensityError(
            f"The cutoff {as_of} has {len(table)} customers and a single {task} label value: nothing to evaluate."
        )
    p = model.predict_proba(model_input(table, model.feature_spec))
    return task_metrics(task)(table[label].to_numpy(), p)
