"""One task's training table over the backtest grid, sliced by origin (features and labels computed once)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from features.build import build_training_table
from features.cutoffs import Horizons, data_window
from features.errors import PropensityError
from features.segments import assign_segments, load_segment_rules
from features.transactions import TransactionLog
from models.spec import FeatureSpec, model_input, spec_for_columns
from training.backtest import BacktestPlan, plan_backtest
from training.config import TrainingConfig

LABELS = {"churn": "churn", "purchase": "purchase", "value": "spend"}  # the label column of each task


def task_horizons(task: str, cfg: TrainingConfig) -> Horizons:
    """Horizons for one task's training table (only that task's label is used)."""
    h = cfg.horizons[task]
    return Horizons(churn_horizon_days=h, purchase_horizon_days=h, lookback_days=cfg.lookback_days)


@dataclass
class TaskData:
    task: str
    plan: BacktestPlan
    spec: FeatureSpec
    table: pd.DataFrame  # every grid cutoff's rows, with the label and the RFM segment
    window: tuple  # first and last transaction time of the log

    @property
    def label(self) -> str:
        return LABELS[self.task]

    def rows(self, cutoffs) -> pd.DataFrame:
        wanted = pd.to_datetime([cutoffs] if isinstance(cutoffs, date) else list(cutoffs))
        return self.table[self.table["as_of"].isin(wanted)].reset_index(drop=True)

    def xy(self, cutoffs) -> tuple[pd.DataFrame, np.ndarray]:
        frame = self.rows(cutoffs)
        return model_input(frame, self.spec), frame[self.label].to_numpy()

    def fingerprint(self) -> dict:
        out = {
            "task": self.task,
            "horizon_days": self.plan.horizon_days,
            "data_first_ts": str(self.window[0]),
            "data_last_ts": str(self.window[1]),
            "cutoffs": [str(c) for c in self.plan.grid],
            "origins": [str(o.as_of) for o in self.plan.origins],
            "rows": len(self.table),
            "rate": round(float(self.table[self.label].mean()), 4),
        }
        digest = pd.util.hash_pandas_object(self.table[["customer_id", "as_of", self.label]], index=False).to_numpy()
        out["content_sha1"] = hashlib.sha1(digest.tobytes()).hexdigest()[:16]
        return out


def prepare_task(log: TransactionLog, task: str, cfg: TrainingConfig) -> TaskData:
    """Plan the backtest for the task's horizon and build its table over the grid (refusing a log too short)."""
    first_ts, last_ts = data_window(log.table)
    plan = plan_backtest(
        first_ts, last_ts, cfg.horizons[task], cfg.origins, cfg.min_history_days, cfg.grid, cfg.train_window_cutoffs
    )
    used = sorted({c for o in plan.origins for c in (*o.train, o.as_of)} | set(plan.refit))
    table = build_training_table(log.source, used, task_horizons(task, cfg))
    table = pd.concat([table, assign_segments(table, load_segment_rules())[["rfm_segment"]]], axis=1)
    data = TaskData(task, plan, spec_for_columns(table.columns), table, (first_ts, last_ts))
    if task == "value" and "net_spend_total" not in data.spec.numeric:
        raise PropensityError(
            "The value task predicts net spend, and these lines have no amounts: map a price (or amount) column."
        )
    for origin in plan.origins:
        for name, frame in (("training", data.rows(origin.train)), ("test", data.rows(origin.as_of))):
            if frame.empty or frame[data.label].nunique() < 2:
                raise PropensityError(
                    f"The {name} rows of the {task} origin {origin.as_of} hold {len(frame)} customers and a single "
                    "label value: there is nothing to learn."
                )
    return data
