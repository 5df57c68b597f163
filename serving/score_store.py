"""The stored scores: the store's ``scores`` table (one run per as_of, replaced in one transaction) and exports."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from features.cutoffs import as_cutoff
from features.store import as_arrow, has_table, transaction, write_frame


def save_scores(con: duckdb.DuckDBPyConnection, scores: pd.DataFrame) -> None:
    rows = as_arrow(scores)  # 1M scored rows: read in 2 s instead of 4, the same column types
    with transaction(con, new_scores=scores if rows is None else rows):
        con.execute("CREATE TABLE IF NOT EXISTS scores AS SELECT * FROM new_scores WHERE false")
        have = {row[0] for row in con.execute("DESCRIBE scores").fetchall()}
        for name, kind, *_ in con.execute("DESCRIBE new_scores").fetchall():  # a newer version's columns
            if name not in have:
                con.execute(f'ALTER TABLE scores ADD COLUMN "{name}" {kind}')
        con.execute("DELETE FROM scores WHERE as_of IN (SELECT DISTINCT as_of FROM new_scores)")
        con.execute("INSERT INTO scores BY NAME SELECT * FROM new_scores")


def export_scores(scores: pd.DataFrame, folder: Path) -> list[Path]:
    stamp = pd.Timestamp(scores["as_of"].iloc[0]).date().isoformat()
    return [write_frame(scores, Path(folder) / f"scores_{stamp}.{ext}") for ext in ("parquet", "csv")]


def scores_as_of(
    con: duckdb.DuckDBPyConnection, as_of: date | None = None, before: bool = False
) -> pd.DataFrame | None:
    """The stored scores of one run: ``as_of`` itself, the latest before it (``before``), or the latest of all."""
    if not has_table(con, "scores"):
        return None
    if as_of is None:
        pick = "SELECT max(as_of) FROM scores"
        args = []
    else:
        pick = f"SELECT max(as_of) FROM scores WHERE as_of {'<' if before else '='} ?"
        args = [pd.Timestamp(as_cutoff(as_of))]
    chosen = con.execute(pick, args).fetchall()[0][0]
    if chosen is None:
        return None
    return con.execute("SELECT * FROM scores WHERE as_of = ? ORDER BY rank", [chosen]).df()
