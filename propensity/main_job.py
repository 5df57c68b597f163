"""The main job the README's first command runs: data -> validated store -> features -> train (quick) -> score -> report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from features.build import Horizons, data_window, monthly_cutoffs
from features.contract import load_mapping
from features.pipeline import feature_table, ingest_into_store, open_store_log
from features.segments import load_segment_rules
from features.sources import Source
from features.store import data_dir as resolve_data_dir
from features.store import store_path, write_frame
from features.synthetic import generate_lines


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
    """Monthly cutoffs from one lookback after the first transaction to the last with a full label horizon."""
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
    import pyarrow.parquet as pq

    from features.store import atomic_path

    root = resolve_data_dir(data_dir)
    store = store_path(data_dir)
    generated = regenerate or not store.exists()
    if generated:
        raw = root / "raw" / "synthetic.parquet"
        with atomic_path(raw) as tmp:
            pq.write_table(generate_lines(lines, seed=seed, dirty_share=0.001), tmp)
        ingest_into_store(store, Source(raw), load_mapping("canonical"))
    horizons = Horizons()
    log = open_store_log(store)
    try:
        progress("features")
        first_ts, last_ts = data_window(log.table)
        cutoffs = training_cutoffs(first_ts, last_ts, horizons)
        frame = feature_table(log, cutoffs, horizons, with_labels=True, rules=load_segment_rules())
        target = write_frame(frame, root / "features.parquet")
        result = MainJobResult(store, target, len(frame), len(cutoffs), generated)
        if train:
            from models.registry import configure_tracking, project_run
            from training.config import load_config
            from training.train import train_task

            result.tracking_uri = configure_tracking(data_dir)
            cfg = load_config(profile="quick")
            with project_run():
                for task in ("churn", "purchase"):
                    result.training.append(train_task(log, task, cfg, progress=progress))
    finally:
        log.close()
    if train:
        score_and_report(result, data_dir, progress)
    return result


def score_and_report(result: MainJobResult, data_dir: Path | None, progress, top: int = 100) -> None:
    """Batch-score with the new champions, write the report and the top of the risk list."""
    from features.store import connect_store
    from serving.batch import score_store, write_report
    from serving.predictor import load_models, risk_list

    root = resolve_data_dir(data_dir)
    result.scoring = score_store(data_dir, load_models(), progress=lambda step: progress(f"scoring: {step}"))
    progress("report")
    con = connect_store(store_path(data_dir), read_only=True)
    try:
        result.report = write_report(con, root / "reports").html
    finally:
        con.close()
    as_of = result.scoring.manifest["as_of"]
    result.risk_list = write_frame(risk_list(result.scoring.scores, top), root / "exports" / f"risk_list_{as_of}.csv")
