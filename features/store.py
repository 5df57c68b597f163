"""The embedded store: one DuckDB file in the data directory, plus atomic file exports.

The data directory is ``$PROPENSITY_DATA_DIR`` or ``./data``; nothing is created at import time.
"""

from __future__ import annotations

import functools
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from features.errors import PropensityError
from features.sqltext import duckdb_identifier, sql_string

STORE_FILE = "propensity.duckdb"
DEFAULT_MEMORY_LIMIT = "500MB"  # DuckDB spills past it; keeps a scoring job small on a shared machine


def duckdb_config() -> dict:
    """Connection settings: ``$PROPENSITY_DUCKDB_MEMORY_LIMIT`` (default 500MB), threads = all cores."""
    return {"memory_limit": _memory_limit(os.environ.get("PROPENSITY_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT))}


@functools.cache
def _memory_limit(value: str) -> str:
    """``value`` if DuckDB reads it as a memory limit (checked once, on an in-memory connection); else one sentence."""
    try:
        duckdb.connect(config={"memory_limit": value}).close()
    except duckdb.Error:
        raise PropensityError(
            f"PROPENSITY_DUCKDB_MEMORY_LIMIT={value!r} is not a memory size DuckDB reads: use e.g. 500MB or 2GB."
        ) from None
    return value


def data_dir(explicit: Path | None = None) -> Path:
    return Path(explicit or os.environ.get("PROPENSITY_DATA_DIR") or "data")


def store_path(explicit_dir: Path | None = None) -> Path:
    return data_dir(explicit_dir) / STORE_FILE


def connect_store(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the store; a read-only open of a store that does not exist is a user error."""
    path = Path(path)
    if read_only and not path.exists():
        raise PropensityError(
            f"No store at {path}: load a log first with `propensity ingest SOURCE` or `propensity generate`."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path), read_only=read_only, config=duckdb_config())
    except duckdb.IOException as exc:
        raise PropensityError(f"Cannot open the store {path}: {str(exc).splitlines()[0]}") from None


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchall()[0][0]
    )


def require_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    if not has_table(con, table):
        raise PropensityError(f"The store has no {table!r} table: load a log first with `propensity ingest SOURCE`.")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, **frames):
    """Register the frames under their names and run the block in one transaction (rolled back on an error)."""
    for name, frame in frames.items():
        con.register(name, frame)
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except duckdb.Error:
        con.execute("ROLLBACK")
        raise
    finally:
        for name in frames:
            con.unregister(name)


@contextmanager
def atomic_path(target: Path):
    """Yield a temporary path beside ``target``; it replaces ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def as_arrow(frame: pd.DataFrame):
    """The frame as an Arrow table (NaN as null), which DuckDB reads about twice as fast as the frame, or None when
    Arrow cannot hold it (a column of mixed Python objects, repeated column names): then use the frame itself."""
    import pyarrow as pa

    if frame.columns.duplicated().any():
        return None
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


def _csv(frame: pd.DataFrame, path: Path) -> None:
    """CSV as pandas writes it (missing values empty, a timestamp column of midnights as dates), by DuckDB's
    parallel writer: pandas formats 1M scored rows for about a minute, DuckDB in a few seconds."""
    zoned = any(isinstance(dtype, pd.DatetimeTZDtype) for dtype in frame.dtypes)  # DuckDB would use its own zone
    table = None if zoned else as_arrow(frame)  # NaN becomes null: an empty field
    if table is None:
        frame.to_csv(path, index=False)
        return
    as_text = {}  # written as pandas writes them: a column of midnights as dates, booleans as True/False
    for c in frame.columns:
        name = duckdb_identifier(str(c))
        if pd.api.types.is_datetime64_any_dtype(frame[c]) and frame[c].dt.normalize().equals(frame[c]):
            as_text[name] = f"CAST({name} AS DATE)"
        elif pd.api.types.is_bool_dtype(frame[c]):
            as_text[name] = f"CASE WHEN {name} THEN 'True' WHEN NOT {name} THEN 'False' END"
    select = f"* REPLACE ({', '.join(f'{v} AS {name}' for name, v in as_text.items())})" if as_text else "*"
    con = duckdb.connect(config=duckdb_config())
    try:
        con.register("frame_rows", table)
        con.execute(f"COPY (SELECT {select} FROM frame_rows) TO {sql_string(path)} (FORMAT CSV, HEADER)")
    finally:
        con.close()


def write_frame(frame: pd.DataFrame, target: Path) -> Path:
    """Write a frame as Parquet, CSV or Excel (by suffix), atomically."""
    target = Path(target)
    suffix = target.suffix.lower()
    with atomic_path(target) as tmp:
        if suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix == ".csv":
            _csv(frame, tmp)
        elif suffix == ".xlsx":
            frame.to_excel(tmp, index=False, engine="openpyxl")
        else:
            raise PropensityError(f"Cannot write {target}: use a .parquet, .csv or .xlsx file name.")
    return target


def export_table(con: duckdb.DuckDBPyConnection, query: str, target: Path) -> Path:
    """Write a query's result to Parquet or CSV with DuckDB, atomically (no pandas round trip)."""
    target = Path(target)
    fmt = {".parquet": "PARQUET", ".csv": "CSV, HEADER"}.get(target.suffix.lower())
    if fmt is None:
        raise PropensityError(f"Cannot write {target}: use a .parquet or .csv file name.")
    with atomic_path(target) as tmp:
        con.execute(f"COPY ({query}) TO {sql_string(tmp)} (FORMAT {fmt})")
    return target


@contextmanager
def store_connection(explicit_dir: Path | None = None, read_only: bool = True):
    """The data dir's store, open for the block and closed after it."""
    con = connect_store(store_path(explicit_dir), read_only=read_only)
    try:
        yield con
    finally:
        con.close()
