"""The main job the README's first command runs: data -> store -> features -> train (quick) -> score -> report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from features.cutoffs import Horizons, data_window, monthly_cutoffs
from features.store import data_dir as resolve_data_dir
from features.store import store_path
from features.transactions import load_demo_log, open_store_log, write_feature_table


@dataclass
class MainJobResult:
    store: Path
    features: Path
    rows: int
    cutoffs: int
    generated: bool
    training: list = field(default_factory=list)
    tracking_uri: str = ""
    scoring: object = None
    report: Path | None = None
    risk_list: Path | None = None


def training_cutoffs(first_ts, last_ts, horizons: Horizons) -> list:
    """Monthly cutoffs from one lookback (at most 180 days) after the first transaction to the last with full labels."""
    latest = last_ts.date() + timedelta(days=1) - timedelta(days=horizons.longest)
    earliest = first_ts.date() + timedelta(days=min(horizons.lookback_days, 180))
    return monthly_cutoffs(earliest, latest)


def run_main_job(
    data_dir: Path | None = None,
    lines: int = 200_000,
    seed: int = 42,
    regenerate: bool = False,
    train: bool = True,
    progress=lambda _: None,
) -> MainJobResult:
    from training.config import load_config

    root, store = resolve_data_dir(data_dir), store_path(data_dir)
    generated = regenerate or not store.exists()
    if generated:
        progress("generating the demo log")
        load_demo_log(data_dir, lines, seed)
    cfg = load_config(profile="quick")
    horizons = Horizons(cfg.horizons["churn"], cfg.horizons["purchase"], cfg.lookback_days)  # what training uses
    progress("features")
    with open_store_log(store) as log:
        cutoffs = training_cutoffs(*data_window(log.table), horizons)
    frame = write_feature_table(data_dir, cutoffs, root / "features.parquet", horizons)
    result = MainJobResult(store, root / "features.parquet", len(frame), len(cutoffs), generated)
    if train:
        from training.jobs import train_store

        result.training, result.tracking_uri = train_store(data_dir, ["churn", "purchase", "value"], cfg, progress)
        score_and_report(result, data_dir, progress)
    return result


def score_and_report(result: MainJobResult, data_dir: Path | None, progress, top: int = 100) -> None:
    """Batch-score with the new champions, write the report and the top of the risk list."""
    from serving.jobs import report_store, score_store, write_risk_list

    result.scoring = score_store(data_dir, progress=lambda step: progress(f"scoring: {step}"))
    progress("report")
    result.report = report_store(data_dir).html
    as_of = result.scoring.manifest["as_of"]
    result.risk_list = resolve_data_dir(data_dir) / "exports" / f"risk_list_{as_of}.csv"
    write_risk_list(result.risk_list, data_dir, as_of, top)
