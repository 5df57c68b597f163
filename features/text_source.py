"""Reading a delimited text log (CSV, TSV, whitespace-separated; plain or gzip) as a raw DuckDB view.

What a user's file can get wrong is found before DuckDB's sniffer guesses around it, and said in
one sentence: an empty file, a ZIP archive or a workbook named ``.csv``, text that is not in the
given encoding, the same column name twice. The delimiter is read off the header line (the
candidate that splits it most) unless given; ``whitespace`` (or ``' '``) means runs of spaces or
tabs, as classic BTYD data sets ship. Records that do not split into the header's columns (a
ragged row, a cut-off last line) are not skipped: they are kept, with their line number and text,
in the view ``<name>_malformed`` and quarantined as ``malformed_row`` by validation.
"""

from __future__ import annotations

import atexit
import codecs
import csv
import gzip
import tempfile
from pathlib import Path

import duckdb

from features.errors import PropensityError
from features.sqltext import duckdb_identifier as _quoted
from features.sqltext import sql_string as _sql_str

WHITESPACE = "whitespace"
CANDIDATES = (",", ";", "\t", "|")
DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "utf-16": "utf-16", "utf16": "utf-16", "latin-1": "latin-1"}
HEAD_BYTES = 1 << 16


def _head(path: Path) -> tuple[bytes, bool]:
    """The first bytes of the file (decompressed when it is gzip) and whether it is gzip."""
    with open(path, "rb") as raw:
        head = raw.read(HEAD_BYTES)
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as unzipped:
                return unzipped.read(HEAD_BYTES), True
        except (OSError, EOFError) as exc:
            raise PropensityError(f"Cannot read {path}: it is a damaged gzip file ({exc}).") from None
    return head, False


def _decode(path: Path, head: bytes, encoding: str) -> str:
    """The first bytes as text; a character cut by the end of ``head`` is not an error (incremental decoding)."""
    try:
        return codecs.getincrementaldecoder(encoding)().decode(head, final=len(head) < HEAD_BYTES)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise PropensityError(
            f"Cannot read {path}: it is not {encoding} text (byte 0x{head[exc.start]:02X} on line {line}); "
            "give its encoding, e.g. --encoding latin-1."
        ) from None
    except LookupError:
        raise PropensityError(f"Unknown text encoding {encoding!r} (try utf-8, utf-16, latin-1 or cp1252).") from None


def _delimiter(header: str) -> str | None:
    """The candidate that splits the header line into most fields, outside quotes; None if none does."""
    counts = {d: len(next(csv.reader([header], delimiter=d))) for d in CANDIDATES}
    best = max(counts, key=counts.get)
    if counts[best] > 1:
        return best
    return WHITESPACE if len(header.split()) > 1 else None


def _header_names(path: Path, header: str, delimiter: str | None) -> list[str]:
    if delimiter == WHITESPACE:
        names = header.split()
    else:
        names = [n.strip() for n in next(csv.reader([header], delimiter=delimiter or ","))]
    return refuse_repeated_names(path, names)


def refuse_repeated_names(path: Path, names: list[str]) -> list[str]:
    """A header that names a column twice is refused by name (text and Excel headers alike)."""
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PropensityError(
            f"Cannot read {path}: the header names the column {twice[0]!r} twice "
            f"(columns: {names}); rename one so that each column has one meaning."
        )
    return names


def _transcoded(path: Path, encoding: str, gzipped: bool) -> Path:
    """A UTF-8 copy of a file in an encoding DuckDB's reader lacks (cp1252, ...), streamed by Python's codecs."""
    target = Path(tempfile.mkstemp(prefix="propensity-", suffix=".csv")[1])
    atexit.register(target.unlink, missing_ok=True)  # the view reads it until validation is done
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as src, open(target, "wb") as dst:
        decoder, encoder = codecs.getincrementaldecoder(encoding)(), codecs.getincrementalencoder("utf-8")()
        try:
            while chunk := src.read(1 << 20):
                dst.write(encoder.encode(decoder.decode(chunk)))
            dst.write(encoder.encode(decoder.decode(b"", final=True)))
        except UnicodeDecodeError:
            target.unlink(missing_ok=True)
            raise PropensityError(f"Cannot read {path}: it is not {encoding} text; give its encoding.") from None
    return target


def register_text(con: duckdb.DuckDBPyConnection, path: Path, delimiter, encoding, name: str) -> list[str]:
    """Create the view ``name`` (every column as text) and ``<name>_malformed``; return the column names."""
    head, gzipped = _head(path)
    if not head.strip():
        raise PropensityError(f"Cannot read {path}: the file is empty (no header, no rows).")
    if head.startswith(b"PK\x03\x04"):
        raise PropensityError(
            f"Cannot read {path}: it is a ZIP archive (an Excel workbook named .csv?), not text; "
            "give a workbook its .xlsx name, or unzip the archive."
        )
    encoding = (encoding or "utf-8").lower()
    header = _decode(path, head, encoding).lstrip("\ufeff").splitlines()[0]
    delimiter = {" ": WHITESPACE, "\\t": "\t", "tab": "\t"}.get(delimiter, delimiter)  # as typed in a shell
    if delimiter not in (None, WHITESPACE) and len(delimiter) != 1:
        raise PropensityError(f"The delimiter must be one character (or 'whitespace'), not {delimiter!r}.")
    delimiter = delimiter or _delimiter(header)
    names = _header_names(path, header, delimiter)
    if encoding not in DUCKDB_ENCODINGS:
        path, gzipped, encoding = _transcoded(path, encoding, gzipped), False, "utf-8"
    opts = [f"encoding={_sql_str(DUCKDB_ENCODINGS.get(encoding, encoding))}"]
    if gzipped:
        opts.append("compression='gzip'")
    if delimiter == WHITESPACE:
        _register_whitespace(con, path, names, opts, name)
    else:
        opts += ["header=true", "all_varchar=true", "store_rejects=true"]
        opts += [f"rejects_table={_sql_str(name + '_rejects')}", f"rejects_scan={_sql_str(name + '_scans')}"]
        if delimiter:
            opts.append(f"delim={_sql_str(delimiter)}")
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM read_csv({_sql_str(path)}, {', '.join(opts)})"
        )
        con.execute(f"SELECT count(*) FROM {name}").fetchall()  # one whole scan fills the rejects table
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name}_malformed AS SELECT line, any_value(csv_line) AS raw_line "
            f"FROM {name}_rejects GROUP BY line ORDER BY line"
        )
    return [row[0] for row in con.execute(f"DESCRIBE {name}").fetchall()]


def _register_whitespace(con, path: Path, names: list[str], opts: list[str], name: str) -> None:
    lines = (
        "SELECT row_number() OVER () + 1 AS line, text AS raw_line, "
        "regexp_split_to_array(regexp_replace(text, '^\\s+|\\s+$', '', 'g'), '\\s+') AS parts "
        f"FROM read_csv({_sql_str(path)}, header=false, skip=1, columns={{'text': 'VARCHAR'}}, "
        f"delim={_sql_str(chr(31))}, quote='', escape='', auto_detect=false, {', '.join(opts)})"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name}_lines AS {lines}")
    fields = ", ".join(f"parts[{i + 1}] AS {_quoted(n)}" for i, n in enumerate(names))
    blank = "regexp_full_match(raw_line, '\\s*')"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {fields} FROM {name}_lines "
        f"WHERE NOT {blank} AND len(parts) = {len(names)} ORDER BY line"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name}_malformed AS SELECT line, raw_line FROM {name}_lines "
        f"WHERE NOT {blank} AND len(parts) <> {len(names)} ORDER BY line"
    )
