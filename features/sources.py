"""Reading a transaction source (CSV, Parquet, Excel, DuckDB table or query) as a raw DuckDB relation.

Every source column is read as it is (CSV: as text), so that nothing is lost before validation;
parsing happens in `features.validate`, which quarantines what does not parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from features.errors import PropensityError

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls"}
DUCKDB_SUFFIXES = {".duckdb", ".db", ".ddb"}


@dataclass(frozen=True)
class Source:
    """Where a log comes from. For a DuckDB file give ``table`` or ``query``; ``delimiter`` is for CSV.

    ``frame`` (a pandas DataFrame, e.g. a REST request's lines) is read instead of a file when given.
    """

    path: Path | None = None
    table: str | None = None
    query: str | None = None
    delimiter: str | None = None
    sheet: str | int | None = None
    frame: object = None


def _sql_str(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def register_source(con: duckdb.DuckDBPyConnection, source: Source, name: str = "raw_source") -> list[str]:
    """Create a view ``name`` over the source on ``con``; return its column names."""
    if source.frame is not None:
        con.register(f"{name}_frame", source.frame)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {name}_frame")
        return list(source.frame.columns)
    path = Path(source.path)
    if not path.exists():
        raise PropensityError(f"The source file {path} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            opts = ["header=true", "all_varchar=true"]
            if source.delimiter:
                opts.append(f"delim={_sql_str(source.delimiter)}")
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM read_csv({_sql_str(path)}, {', '.join(opts)})"
            )
        elif suffix == ".parquet" or path.is_dir():
            glob = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM read_parquet({_sql_str(glob)})")
        elif suffix in EXCEL_SUFFIXES:
            import pandas as pd

            frame = pd.read_excel(path, sheet_name=source.sheet or 0, dtype=str)
            con.register(f"{name}_frame", frame)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {name}_frame")
        elif suffix in DUCKDB_SUFFIXES:
            if not (source.table or source.query):
                raise PropensityError(f"{path} is a DuckDB database: say which --table or --query to read.")
            con.execute(f"ATTACH {_sql_str(path)} AS src (READ_ONLY)")
            if source.query:
                con.execute("USE src")
                try:
                    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {source.query.rstrip().rstrip(';')}")
                finally:
                    con.execute("USE memory")
            else:
                con.execute(
                    f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM src.{duckdb_identifier(source.table)}"
                )
        else:
            raise PropensityError(
                f"Cannot read {path}: the file type {suffix or '(none)'} is not one of CSV, Parquet, Excel or DuckDB."
            )
        return [row[0] for row in con.execute(f"DESCRIBE {name}").fetchall()]
    except PropensityError:
        raise
    except (duckdb.Error, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PropensityError(f"Cannot read {path}: {first_line}") from None


def duckdb_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
