"""An open transaction log (a DuckDB connection and the Ibis table over it): open, load, and build feature tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import pandas as pd

from features.build import build_features, build_training_table
from features.contract import ColumnMapping
from features.cutoffs import Horizons
from features.errors import PropensityError
from features.folded import Folded, stored_folds, write_folds
from features.segments import SegmentRules, assign_segments
from features.sources import Source
from features.store import connect_store, require_table
from features.validate import ValidationReport, ingest


@dataclass
class TransactionLog:
    """An open transaction log: the DuckDB connection and the Ibis table over it."""

    con: duckdb.DuckDBPyConnection
    table: ir.Table
    report: ValidationReport | None = None
    folded: Folded | None = None

    @classmethod
    def on(cls, con: duckdb.DuckDBPyConnection, report: ValidationReport | None = None) -> TransactionLog:
        """The ``transactions`` table of an open connection, with the store's folds of it when it has them."""
        return cls(con, ibis.duckdb.from_connection(con).table("transactions"), report, stored_folds(con))

    @property
    def source(self) -> Folded | ir.Table:
        """What feature and label builds read: the stored folds, or else the lines (folded by each build)."""
        return self.folded or self.table

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> TransactionLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_store_log(path: Path) -> TransactionLog:
    """The validated log in the embedded store (read-only)."""
    con = connect_store(path, read_only=True)
    require_table(con, "transactions")
    return TransactionLog.on(con)


def open_source_log(source: Source, mapping: ColumnMapping) -> TransactionLog:
    """Validate a source into an in-memory DuckDB and open it (nothing is written to disk).

    Under the store's settings (memory limit), so that what validates also ingests."""
    from features.store import duckdb_config

    con = duckdb.connect(config=duckdb_config())
    report = ingest(con, source, mapping)
    return TransactionLog.on(con, report)


def ingest_into_store(
    path: Path, source: Source, mapping: ColumnMapping, min_accepted_share: float = 0.5
) -> ValidationReport:
    """Validate a source and atomically replace the store's ``transactions`` and ``quarantine`` tables, and the
    folds every feature build starts from (``features.folded``).

    A load with fewer than ``min_accepted_share`` valid rows replaces nothing (a changed upstream format
    must not empty a good store): it is refused with one sentence naming the likely fix."""
    con = connect_store(path)
    try:
        return ingest(con, source, mapping, min_accepted_share=min_accepted_share, also=write_folds)
    finally:
        con.close()


def feature_table(
    log: TransactionLog,
    cutoffs: list[date],
    horizons: Horizons | None = None,
    with_labels: bool = True,
    rules: SegmentRules | None = None,
) -> pd.DataFrame:
    """Features (and labels, and rule-based segments) for each cutoff, stacked with ``as_of``."""
    horizons = horizons or Horizons()
    if with_labels:
        frame = build_training_table(log.source, cutoffs, horizons)
    else:
        frame = build_features(log.source, cutoffs, horizons.lookback_days)
    if rules is not None and len(frame):
        segments = assign_segments(frame, rules).drop(columns=["customer_id", "as_of"])
        frame = pd.concat([frame, segments], axis=1)
    return frame


def load_demo_log(
    data_dir: Path | None = None,
    lines: int = 200_000,
    seed: int = 42,
    dirty_share: float = 0.001,
    out: Path | None = None,
) -> tuple[Path, ValidationReport | None]:
    """Generate the seeded synthetic log; write it to ``out``, or load it into the data dir's store."""
    import pyarrow.parquet as pq

    from features.contract import load_mapping
    from features.store import atomic_path, store_path
    from features.store import data_dir as resolve_data_dir
    from features.synthetic import generate_lines

    target = out or resolve_data_dir(data_dir) / "raw" / "synthetic.parquet"
    with atomic_path(target) as tmp:
        pq.write_table(generate_lines(lines, seed=seed, dirty_share=dirty_share), tmp)
    if out is not None:
        return target, None
    return target, ingest_into_store(store_path(data_dir), Source(target), load_mapping("canonical"))


def export_store_log(data_dir: Path | None, target: Path) -> Path:
    """Write the store's validated log as Parquet (what the Spark engine reads)."""
    from features.store import export_table, store_connection

    with store_connection(data_dir) as con:
        return export_table(con, "SELECT * FROM transactions", target)


def write_feature_table(
    data_dir: Path | None,
    cutoffs: list[date],
    out: Path,
    horizons: Horizons,
    with_labels: bool = True,
    with_segments: bool = True,
    segment_rules: Path | None = None,
) -> pd.DataFrame:
    """The store's feature table (with labels and segments) for these cutoffs, written to ``out``."""
    from features.segments import load_segment_rules
    from features.store import store_path, write_frame

    rules = load_segment_rules(segment_rules) if with_segments else None
    with open_store_log(store_path(data_dir)) as log:
        frame = feature_table(log, cutoffs, horizons, with_labels=with_labels, rules=rules)
        if frame.empty:  # a 0-row file would look like success to whatever reads it next
            lines = log.table.count().execute()
            raise PropensityError(
                f"No customer bought in the {horizons.lookback_days} days before {', '.join(map(str, cutoffs))}"
                f" (the store's log holds {lines:,} valid lines): nothing was written."
            )
    write_frame(frame, out)
    return frame
