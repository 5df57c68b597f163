"""Validation at the boundary: map a raw source onto the contract, quarantine what is invalid.

Every input row ends in exactly one of two tables: ``transactions`` (canonical, typed) or
``quarantine`` (the row as it came, as text, with the first reason it failed). The counts always
add up: input rows = accepted + quarantined. Returns and cancellations are valid rows (flagged
``is_return``), not errors. The checks are DuckDB SQL, so 10M-line logs validate in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from features.contract import CATEGORICALS, ColumnMapping
from features.errors import PropensityError
from features.failed_load import refuse_a_failed_load
from features.parsing import number_expr, text_expr, ts_expr
from features.sources import Source, _sql_str, duckdb_identifier, register_source

# Reasons in the order they are checked; a row is quarantined for the first that applies.
MAX_LINE_MAGNITUDE = 1e9  # features sum money and units exactly in int64 micro-units: a line must stay far below 9.2e12
REASONS = {
    "missing_customer_id": "the customer id is empty",
    "invalid_timestamp": "the timestamp is missing or cannot be parsed",
    "future_timestamp": "the timestamp is later than the time of validation",
    "invalid_quantity": "the quantity is missing, not a number, or not finite",
    "zero_quantity": "the quantity is zero",
    "invalid_price": "the unit price is missing, not a number, or not finite",
    "nonpositive_price": "the unit price is zero or negative",
    "invalid_amount": "the amount is missing, not a number, or not finite",
    "zero_amount": "the amount is zero",
    "implausible_amount": "the line's value or quantity is 1e9 or more in size (a typo: sums could not stay exact)",
    "duplicate_line": "the line is an exact duplicate of an earlier line",
    "malformed_row": "the record does not split into the header's columns (too few or too many fields)",
}


@dataclass
class ValidationReport:
    input_rows: int
    accepted_rows: int
    quarantined_rows: int
    by_reason: dict[str, int]
    columns: dict[str, str]
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    returns: int = 0
    identical_lines_kept: int = 0  # without invoice ids: lines identical to an earlier one, kept as purchases
    event_log: bool = False  # no amount (nor quantity and unit price): one line per purchase, value unknown


def _classify_sql(columns: dict[str, str], types: dict[str, str], mapping: ColumnMapping, now: datetime, keep) -> str:
    """SQL that types every raw row and gives it a reason (NULL when valid)."""
    c = columns
    cust = f"NULLIF(regexp_replace({text_expr(c['customer_id'])}, '\\.0+$', ''), '')"
    typed = [f"{cust} AS __customer_id", f"{ts_expr(c['ts'], types[c['ts']], mapping.ts_format)} AS __ts"]
    for num in ("quantity", "unit_price", "amount"):
        if num in c:
            typed.append(f"{number_expr(c[num], mapping.decimal)} AS __{num}")
    typed.append(f"{text_expr(c['invoice_id'])} AS __invoice" if "invoice_id" in c else "NULL::VARCHAR AS __invoice")
    for opt in ("product_id",) + CATEGORICALS:
        if opt in c:
            typed.append(f"{text_expr(c[opt])} AS __{opt}")

    checks = [
        ("missing_customer_id", "__customer_id IS NULL"),
        ("invalid_timestamp", "__ts IS NULL"),
        ("future_timestamp", f"__ts > TIMESTAMP {_sql_str(now.strftime('%Y-%m-%d %H:%M:%S'))}"),
    ]
    if "amount" in c:
        checks += [("invalid_amount", "__amount IS NULL OR NOT isfinite(__amount)"), ("zero_amount", "__amount = 0")]
    else:
        if "quantity" in c:
            checks += [
                ("invalid_quantity", "__quantity IS NULL OR NOT isfinite(__quantity)"),
                ("zero_quantity", "__quantity = 0"),
            ]
        if "unit_price" in c:
            checks += [
                ("invalid_price", "__unit_price IS NULL OR NOT isfinite(__unit_price)"),
                ("nonpositive_price", "__unit_price <= 0"),
            ]
    value = _line_value(c)
    too_big = [f"NOT isfinite({value})", f"abs({value}) >= {MAX_LINE_MAGNITUDE:.0f}"] if value else []
    if "quantity" in c:
        too_big.append(f"abs(__quantity) >= {MAX_LINE_MAGNITUDE:.0f}")
    if too_big:
        checks.append(("implausible_amount", " OR ".join(too_big)))
    if "invoice_id" in c or mapping.duplicates_without_invoice == "quarantine":
        checks.append(("duplicate_line", "__dup > 1"))
    reason = "CASE " + " ".join(f"WHEN {cond} THEN '{name}'" for name, cond in checks) + " END"
    # A duplicate is the same in every column. Classification carries only the contract's columns (and the
    # kept ones) plus one 64-bit hash of all the others: a file with thousands of columns costs no memory.
    raw_cols = ", ".join(duckdb_identifier(col) for col in dict.fromkeys([*c.values(), *keep]))
    others = [duckdb_identifier(col) for col in types if col not in c.values() and col not in keep]
    rest = f"hash({', '.join(others)})" if others else "0"
    return f"""
        WITH hashed AS (SELECT {raw_cols}, {rest} AS __rest FROM raw_source),  -- hashed before the window stores rows
        numbered AS (SELECT row_number() OVER () AS __row, * FROM hashed),
        typed AS (
            SELECT numbered.*, {", ".join(typed)},
                   row_number() OVER (PARTITION BY {raw_cols}, __rest ORDER BY __row) AS __dup
            FROM numbered
        )
        SELECT *, {reason} AS __reason FROM typed
    """


def _line_value(c: dict[str, str]) -> str | None:
    """The line's money: the amount, or quantity x unit price; None for an event log (no money at all)."""
    if "amount" in c:
        return "__amount"
    return "__quantity * __unit_price" if {"quantity", "unit_price"} <= c.keys() else None


def _canonical_select(columns: dict[str, str], mapping: ColumnMapping) -> str:
    c = columns
    signed = _line_value(c)
    prefix = mapping.cancellation_prefix
    ret = [f"{signed} < 0"] if signed else []
    if "quantity" in c:
        ret.append("__quantity < 0")
    if prefix and "invoice_id" in c:
        ret.append(f"starts_with(coalesce(__invoice, ''), {_sql_str(prefix)})")
    is_return = "(" + " OR ".join(ret) + ")" if ret else "FALSE"
    cols = [
        "__customer_id AS customer_id",
        "coalesce(__invoice, __customer_id || '@' || strftime(__ts, '%Y-%m-%dT%H:%M:%S')) AS invoice_id",
        "__ts AS ts",
    ]
    if "quantity" in c:
        cols.append(f"CASE WHEN {is_return} THEN -abs(__quantity) ELSE abs(__quantity) END AS quantity")
    if "unit_price" in c:
        cols.append("__unit_price AS unit_price")
    if signed:
        cols.append(f"CASE WHEN {is_return} THEN -abs({signed}) ELSE abs({signed}) END AS amount")
    cols.append(f"{is_return} AS is_return")
    for opt in ("product_id",) + CATEGORICALS:
        if opt in c:
            cols.append(f"__{opt} AS {opt}")
    return ", ".join(cols)


def ingest(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    mapping: ColumnMapping,
    *,
    now: datetime | None = None,
    table: str = "transactions",
    quarantine_table: str = "quarantine",
    keep: tuple[str, ...] = (),
    min_accepted_share: float = 0.0,
    also: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> ValidationReport:
    """Validate ``source`` and (re)write ``table`` and ``quarantine_table`` on ``con`` in one transaction.

    ``keep`` names source columns copied as they are into ``table`` (the REST service tags each
    line with its request this way). They are part of the line, so duplicates are found within a tag.
    ``also`` runs inside the same transaction once both tables are written (the store folds the log there).
    """
    now = now or datetime.now(UTC).replace(tzinfo=None)
    source_columns = register_source(con, source)
    columns = mapping.resolve(source_columns)
    types = {row[0]: row[1] for row in con.execute("DESCRIBE raw_source").fetchall()}
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE classified AS {_classify_sql(columns, types, mapping, now, keep)}")
    except duckdb.OutOfMemoryException:
        raise PropensityError(
            "Validation ran out of DuckDB's memory limit; raise it with PROPENSITY_DUCKDB_MEMORY_LIMIT (e.g. 2GB)."
        ) from None
    except duckdb.Error as exc:
        raise PropensityError(f"Could not validate the source: {str(exc).strip().splitlines()[0]}") from None
    malformed = con.execute("SELECT count(*) FROM raw_source_malformed").fetchone()[0]
    rows, identical_kept = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE __dup > 1 AND __reason IS NULL) FROM classified"
    ).fetchone()
    try:
        refuse_a_failed_load(con, columns, min_accepted_share, malformed)
    except PropensityError:
        con.execute("DROP TABLE IF EXISTS classified")
        raise
    raw_text = ", ".join(f"CAST(r.{duckdb_identifier(col)} AS VARCHAR) AS {duckdb_identifier(col)}" for col in types)
    con.execute("BEGIN TRANSACTION")
    try:
        kept = "".join(f", {duckdb_identifier(col)}" for col in keep)
        con.execute(
            f"CREATE OR REPLACE TABLE {table} AS SELECT {_canonical_select(columns, mapping)}{kept} "
            "FROM classified WHERE __reason IS NULL ORDER BY __ts, __customer_id, __invoice"
        )
        # Only the contract's columns were classified; a quarantined row gets all of its own back by number.
        con.execute(
            f"CREATE OR REPLACE TABLE {quarantine_table} AS "
            f"SELECT q.__row AS source_row, q.__reason AS reason, {raw_text} "
            "FROM (SELECT row_number() OVER () AS __row, * FROM raw_source) AS r "
            "JOIN (SELECT __row, __reason FROM classified WHERE __reason IS NOT NULL) AS q ON r.__row = q.__row "
            "ORDER BY q.__row"
        )
        if malformed:  # kept with their line number and text, since they have no columns
            con.execute(f"ALTER TABLE {quarantine_table} ADD COLUMN source_line BIGINT")
            con.execute(f"ALTER TABLE {quarantine_table} ADD COLUMN raw_line VARCHAR")
            con.execute(
                f"INSERT INTO {quarantine_table} (reason, source_line, raw_line) "
                "SELECT 'malformed_row', line, raw_line FROM raw_source_malformed ORDER BY line"
            )
        if also is not None:
            also(con)
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise PropensityError(f"Could not write the validated log: {str(exc).splitlines()[0]}") from None
    finally:
        con.execute("DROP TABLE IF EXISTS classified")
    report = _report(con, columns, table, quarantine_table, rows + malformed)
    report.identical_lines_kept = identical_kept
    report.event_log = _line_value(columns) is None
    return report


def _report(con, columns, table, quarantine_table, input_rows: int) -> ValidationReport:
    accepted, returns, first_ts, last_ts = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE is_return), min(ts), max(ts) FROM {table}"
    ).fetchall()[0]
    by_reason = dict(
        con.execute(f"SELECT reason, count(*) FROM {quarantine_table} GROUP BY reason ORDER BY 2 DESC").fetchall()
    )
    quarantined = sum(by_reason.values())
    if input_rows != accepted + quarantined:  # an invariant, so a bug if it fails
        raise AssertionError(f"row accounting broken: {input_rows} != {accepted} + {quarantined}")
    return ValidationReport(
        input_rows=input_rows,
        accepted_rows=accepted,
        quarantined_rows=quarantined,
        by_reason=by_reason,
        columns=columns,
        first_ts=first_ts,
        last_ts=last_ts,
        returns=returns,
    )
