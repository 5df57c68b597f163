"""Library entry points the CLI fronts: load a log, build feature tables, attach segments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import pandas as pd

from features.build import Horizons, build_features, build_training_table
from features.contract import ColumnMapping
from features.segments import SegmentRules, assign_segments
from features.sources import Source
from features.store import connect_store, require_table
from features.validate import ValidationReport, ingest


@dataclass
class Log:
    """An open transaction log: the DuckDB connection and the Ibis table over it."""

    con: duckdb.DuckDBPyConnection
    table: ir.Table
    report: ValidationReport | None = None

    def close(self) -> None:
        self.con.close()


def open_store_log(path: Path) -> Log:
    """The validated log in the embedded store (read-only)."""
    con = connect_store(path, read_only=True)
    require_table(con, "transactions")
    return Log(con, ibis.duckdb.from_connection(con).table("transactions"))


def open_source_log(source: Source, mapping: ColumnMapping) -> Log:
    """Validate a source into an in-memory DuckDB and open it (nothing is written to disk)."""
    con = duckdb.connect()
    report = ingest(con, source, mapping)
    return Log(con, ibis.duckdb.from_connection(con).table("transactions"), report)


def ingest_into_store(path: Path, source: Source, mapping: ColumnMapping) -> ValidationReport:
    """Validate a source and atomically replace the store's ``transactions`` and ``quarantine`` tables."""
    con = connect_store(path)
    try:
        return ingest(con, source, mapping)
    finally:
        con.close()


def feature_table(
    log: Log,
    cutoffs: list[date],
    horizons: Horizons = Horizons(),
    with_labels: bool = True,
    rules: SegmentRules | None = None,
) -> pd.DataFrame:
    """Features (and labels, and rule-based segments) for each cutoff, stacked with ``as_of``."""
    if with_labels:
        frame = build_training_table(log.table, cutoffs, horizons)
    else:
        frame = build_features(log.table, cutoffs, horizons.lookback_days)
    if rules is not None and len(frame):
        segments = assign_segments(frame, rules).drop(columns=["customer_id", "as_of"])
        frame = pd.concat([frame, segments], axis=1)
    return frame
