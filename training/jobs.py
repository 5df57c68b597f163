"""The training jobs the CLI, the main job and a scheduler call: train on the store's log, re-evaluate a model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from features.cutoffs import as_cutoff
from features.store import store_path
from features.transactions import open_store_log
from training.config import TrainingConfig
from training.train import TaskResult, evaluate_registered, train_task


def train_store(
    data_dir: Path | None, tasks: list[str], cfg: TrainingConfig, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[TaskResult], str]:
    """Backtest, refit and register each task on the store's log; the results and the tracking URI.

    Of several tasks, the value task is skipped on an event log (no amounts); asked for alone, it is refused."""
    from models.registry import configure_tracking, project_run

    uri = configure_tracking(data_dir)
    with open_store_log(store_path(data_dir)) as log, project_run():
        if len(tasks) > 1 and "amount" not in log.table.columns:
            tasks = [t for t in tasks if t != "value"]
        return [train_task(log, task, cfg, progress=progress) for task in tasks], uri


def evaluate_store(data_dir: Path | None, task: str, as_of, version: int | None = None) -> dict:
    """Re-score a registered model (the champion by default) on one fully observed cutoff of the store's log."""
    from models.registry import configure_tracking

    configure_tracking(data_dir)
    with open_store_log(store_path(data_dir)) as log:
        return evaluate_registered(log, task, as_cutoff(as_of), version)
