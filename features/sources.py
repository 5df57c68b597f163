"""Reading a transaction source (CSV, Parquet, Excel, DuckDB table or query) as a raw DuckDB relation.

Every source column is read as it is (CSV: as text), so that nothing is lost before validation;
parsing happens in `features.validate`, which quarantines what does not parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from features.errors import PropensityError
from features.sqltext import duckdb_identifier
from features.sqltext import sql_string as _sql_str

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
    sheet: str | None = None
    encoding: str | None = None
    frame: object = None


def register_source(con: duckdb.DuckDBPyConnection, source: Source, name: str = "raw_source") -> list[str]:
    """Create a view ``name`` over the source on ``con``; return its column names.

    The table ``<name>_malformed`` (line, raw_line) holds the records of a text file that did not
    split into its columns (empty for other sources)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name}_malformed (line BIGINT, raw_line VARCHAR)")
    if source.frame is not None:
        con.register(f"{name}_frame", source.frame)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {name}_frame")
        return list(source.frame.columns)
    path = Path(source.path)
    if not path.exists():
        raise PropensityError(f"The source file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".gz" and Path(path.stem).suffix.lower() in CSV_SUFFIXES:
        suffix = Path(path.stem).suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            from features.text_source import register_text

            return register_text(con, path, source.delimiter, source.encoding, name)
        elif suffix == ".parquet" or path.is_dir():
            glob = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
            try:
                con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM read_parquet({_sql_str(glob)})")
            except duckdb.Error as exc:  # a footer or magic-bytes error: not (all of) a Parquet file
                first = str(exc).strip().splitlines()[0].removeprefix("Invalid Input Error: ")
                raise PropensityError(
                    f"Cannot read {path}: it is not a complete Parquet file (cut off, or another format): {first}"
                ) from None
        elif suffix in EXCEL_SUFFIXES:
            frame = read_workbook(path, source.sheet)
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
        if "not utf-8 encoded" in str(exc) or "Invalid unicode" in str(exc):
            raise PropensityError(
                f"Cannot read {path}: it is not UTF-8 text; give its encoding, e.g. --encoding latin-1."
            ) from None
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PropensityError(f"Cannot read {path}: {first_line}") from None


def read_workbook(path: Path, sheet: str | None):
    """An Excel sheet as text, or, without ``sheet``, every sheet with data when they share one header.

    A workbook whose data sheets have different headers is refused, naming them, so that no sheet is
    silently left out; the same column name twice in a header is refused too."""
    import zipfile

    import pandas as pd

    try:
        sheets = pd.read_excel(path, sheet_name=None, header=None, dtype=str)
    except ImportError as exc:  # .xls needs xlrd, which is not a dependency
        raise PropensityError(f"Cannot read {path}: {exc}. Or save it as .xlsx.") from None
    except (zipfile.BadZipFile, KeyError) as exc:
        raise PropensityError(f"Cannot read {path}: it is not a readable Excel workbook ({exc}).") from None
    if sheet is not None:
        if sheet not in sheets:
            raise PropensityError(f"{path} has no sheet {sheet!r}; its sheets are {list(sheets)}.")
        sheets = {sheet: sheets[sheet]}
    with_data = {k: v.dropna(how="all").dropna(axis=1, how="all") for k, v in sheets.items()}
    with_data = {k: v for k, v in with_data.items() if not v.empty}
    if not with_data:
        raise PropensityError(f"{path} holds no data on {'sheet ' + repr(sheet) if sheet else 'any sheet'}.")
    headers = {k: [str(x).strip() for x in v.iloc[0]] for k, v in with_data.items()}
    first = next(iter(headers))
    others = [k for k, h in headers.items() if h != headers[first]]
    if others:
        raise PropensityError(
            f"{path} has data on sheets with different headers ({', '.join(map(repr, with_data))}); "
            "say which one to read with --sheet NAME (sheets that share the first one's header are read together)."
        )
    from features.text_source import refuse_repeated_names

    refuse_repeated_names(path, headers[first])
    frames = [v.iloc[1:].set_axis(headers[first], axis=1) for v in with_data.values()]
    return pd.concat(frames, ignore_index=True)
