"""Batch scoring: the ``scores`` table in the store (keyed by as_of) and Parquet/CSV exports.

Idempotent: rerunning an as_of replaces its rows in one transaction. Atomic: exports are written
to a temporary file and renamed, so a crash leaves the previous output intact.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from features.store import write_frame


def save_scores(con: duckdb.DuckDBPyConnection, scores: pd.DataFrame) -> None:
    con.register("new_scores", scores)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("CREATE TABLE IF NOT EXISTS scores AS SELECT * FROM new_scores WHERE false")
        con.execute("DELETE FROM scores WHERE as_of IN (SELECT DISTINCT as_of FROM new_scores)")
        con.execute("INSERT INTO scores BY NAME SELECT * FROM new_scores")
        con.execute("COMMIT")
    except duckdb.Error:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("new_scores")


def export_scores(scores: pd.DataFrame, folder: Path) -> list[Path]:
    stamp = pd.Timestamp(scores["as_of"].iloc[0]).date().isoformat()
    return [write_frame(scores, Path(folder) / f"scores_{stamp}.{ext}") for ext in ("parquet", "csv")]
