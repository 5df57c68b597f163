"""Commands for the models: train, evaluate."""

from pathlib import Path
from typing import Annotated

import typer

from propensity.app import app
from propensity.options import (
    DataDir,
    Task,
    TaskOpt,
)
from propensity.printers import out, print_leaderboard, runs_page, steps


@app.command()
def train(
    task: TaskOpt = Task.all,
    models: Annotated[list[str] | None, typer.Option("--models", help="Families to compare (repeatable).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The quick profile: few trials (tests, demos).")] = False,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML of settings that override the shipped config key by key, e.g. horizons: {churn: 60}."),
    ] = None,
    trials: Annotated[int | None, typer.Option(help="Override the Optuna trial budget per family.")] = None,
    data_dir: DataDir = None,
):
    """Backtest and compare every family and baseline per task; refit, calibrate and register the champion."""
    from training.config import load_config
    from training.jobs import train_store

    cfg = load_config(
        config, "quick" if quick else None, models=models, tuning={"n_trials": trials} if trials else None
    )
    with steps("Training") as progress:
        results, uri = train_store(data_dir, task.names(), cfg, progress=progress)
    for result in results:
        print_leaderboard(result)
    if "value" in task.names() and "value" not in [r.task for r in results]:
        out.print("The value task was skipped: the log has no amounts (an event log), so there is no spend to learn.")
    out.print(f"Runs and models live in {uri} (browse: {runs_page(uri)}).")


@app.command()
def evaluate(
    as_of: Annotated[
        str, typer.Option("--as-of", help="Cutoff to evaluate on (its label window must be in the data).")
    ],
    task: TaskOpt = Task.churn,
    version: Annotated[int | None, typer.Option(help="Registered model version (default: @champion).")] = None,
    data_dir: DataDir = None,
):
    """Re-score a registered model on a chosen cutoff, with its own horizon and population."""
    from training.jobs import evaluate_store

    for name in task.names():
        metrics = evaluate_store(data_dir, name, as_of, version)
        shown = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_at_10", "base_rate")
        if name == "value":
            shown = ("gini", "spearman", "mae", "total_error", "decile_mape", "mean")
        out.print(f"{name} @ {as_of}: " + ", ".join(f"{k} {metrics[k]:.4f}" for k in shown) + f", n {metrics['n']}")
