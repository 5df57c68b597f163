"""Validation at the boundary: map a raw source onto the contract, quarantine what is invalid.

Every input row ends in exactly one of two tables: ``transactions`` (canonical, typed) or
``quarantine`` (the row as it came, as text, with the first reason it failed). The counts always
add up: input rows = accepted + quarantined. Returns and cancellations are valid rows (flagged
``is_return``), not errors. The checks are DuckDB SQL, so 10M-line logs validate in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from features.contract import CATEGORICALS, ColumnMapping
from features.errors import PropensityError
from features.failed_load import refuse_a_failed_load
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


# Whitespace policy, the same for every id and text read (files and REST): leading and trailing Unicode
# whitespace and separators (tabs, no-break and ideographic spaces) and zero-width characters are removed.
_EDGE = r"[\s\p{Z}\x{200B}-\x{200D}\x{2060}\x{FEFF}]+"
# A time of day followed by a UTC offset or Z: converted to UTC. Values without one are taken as UTC already.
_OFFSET = r"\d:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$"


def _text(col: str) -> str:
    return f"NULLIF(regexp_replace(CAST({duckdb_identifier(col)} AS VARCHAR), '^{_EDGE}|{_EDGE}$', '', 'g'), '')"


def _ts_expr(col: str, col_type: str, ts_format: str | None) -> str:
    q = duckdb_identifier(col)
    upper = col_type.upper()
    if upper.startswith("TIMESTAMP WITH TIME ZONE") or upper == "TIMESTAMPTZ":
        return f"CAST(timezone('UTC', {q}) AS TIMESTAMP)"
    if upper.startswith("TIMESTAMP") or upper == "DATE":
        return f"CAST({q} AS TIMESTAMP)"
    if ts_format:
        return f"CAST(try_strptime({_text(col)}, {_sql_str(ts_format)}) AS TIMESTAMP)"
    text = _text(col)
    with_offset = f"CAST(timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) AS TIMESTAMP)"
    return f"CASE WHEN regexp_matches({text}, '{_OFFSET}') THEN {with_offset} ELSE TRY_CAST({text} AS TIMESTAMP) END"


def _classify_sql(columns: dict[str, str], types: dict[str, str], mapping: ColumnMapping, now: datetime) -> str:
    """SQL that types every raw row and gives it a reason (NULL when valid)."""
    c = columns
    cust = f"NULLIF(regexp_replace({_text(c['customer_id'])}, '\\.0+$', ''), '')"
    typed = [f"{cust} AS __customer_id", f"{_ts_expr(c['ts'], types[c['ts']], mapping.ts_format)} AS __ts"]
    for num in ("quantity", "unit_price", "amount"):
        if num in c:
            typed.append(f"TRY_CAST({_text(c[num])} AS DOUBLE) AS __{num}")
    typed.append(f"{_text(c['invoice_id'])} AS __invoice" if "invoice_id" in c else "NULL::VARCHAR AS __invoice")
    for opt in ("product_id",) + CATEGORICALS:
        if opt in c:
            typed.append(f"{_text(c[opt])} AS __{opt}")

    checks = [
        ("missing_customer_id", "__customer_id IS NULL"),
        ("invalid_timestamp", "__ts IS NULL"),
        ("future_timestamp", f"__ts > TIMESTAMP {_sql_str(now.strftime('%Y-%m-%d %H:%M:%S'))}"),
    ]
    if "amount" in c:
        checks += [("invalid_amount", "__amount IS NULL OR NOT isfinite(__amount)"), ("zero_amount", "__amount = 0")]
    else:
        checks += [
            ("invalid_quantity", "__quantity IS NULL OR NOT isfinite(__quantity)"),
            ("zero_quantity", "__quantity = 0"),
            ("invalid_price", "__unit_price IS NULL OR NOT isfinite(__unit_price)"),
            ("nonpositive_price", "__unit_price <= 0"),
        ]
    value = "__amount" if "amount" in c else "__quantity * __unit_price"
    too_big = [f"NOT isfinite({value})", f"abs({value}) >= {MAX_LINE_MAGNITUDE:.0f}"]
    if "quantity" in c:
        too_big.append(f"abs(__quantity) >= {MAX_LINE_MAGNITUDE:.0f}")
    checks.append(("implausible_amount", " OR ".join(too_big)))
    checks.append(("duplicate_line", "__dup > 1"))
    reason = "CASE " + " ".join(f"WHEN {cond} THEN '{name}'" for name, cond in checks) + " END"
    raw_cols = ", ".join(duckdb_identifier(col) for col in types)
    return f"""
        WITH numbered AS (SELECT row_number() OVER () AS __row, * FROM raw_source),
        typed AS (
            SELECT numbered.*, {", ".join(typed)},
                   row_number() OVER (PARTITION BY {raw_cols} ORDER BY __row) AS __dup
            FROM numbered
        )
        SELECT *, {reason} AS __reason FROM typed
    """


def _canonical_select(columns: dict[str, str], mapping: ColumnMapping) -> str:
    c = columns
    signed = "__amount" if "amount" in c else "__quantity * __unit_price"
    prefix = mapping.cancellation_prefix
    ret = [f"{signed} < 0"]
    if "quantity" in c:
        ret.append("__quantity < 0")
    if prefix and "invoice_id" in c:
        ret.append(f"starts_with(coalesce(__invoice, ''), {_sql_str(prefix)})")
    is_return = "(" + " OR ".join(ret) + ")"
    cols = [
        "__customer_id AS customer_id",
        "coalesce(__invoice, __customer_id || '@' || strftime(__ts, '%Y-%m-%dT%H:%M:%S')) AS invoice_id",
        "__ts AS ts",
    ]
    if "quantity" in c:
        cols.append(f"CASE WHEN {is_return} THEN -abs(__quantity) ELSE abs(__quantity) END AS quantity")
    if "unit_price" in c:
        cols.append("__unit_price AS unit_price")
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
) -> ValidationReport:
    """Validate ``source`` and (re)write ``table`` and ``quarantine_table`` on ``con`` in one transaction.

    ``keep`` names source columns copied as they are into ``table`` (the REST service tags each
    line with its request this way). They are part of the line, so duplicates are found within a tag.
    """
    now = now or datetime.now(UTC).replace(tzinfo=None)
    source_columns = register_source(con, source)
    columns = mapping.resolve(source_columns)
    types = {row[0]: row[1] for row in con.execute("DESCRIBE raw_source").fetchall()}
    con.execute(f"CREATE OR REPLACE TEMP TABLE classified AS {_classify_sql(columns, types, mapping, now)}")
    try:
        refuse_a_failed_load(con, columns, min_accepted_share)
    except PropensityError:
        con.execute("DROP TABLE IF EXISTS classified")
        raise
    raw_text = ", ".join(f"CAST({duckdb_identifier(col)} AS VARCHAR) AS {duckdb_identifier(col)}" for col in types)
    con.execute("BEGIN TRANSACTION")
    try:
        kept = "".join(f", {duckdb_identifier(col)}" for col in keep)
        con.execute(
            f"CREATE OR REPLACE TABLE {table} AS SELECT {_canonical_select(columns, mapping)}{kept} "
            "FROM classified WHERE __reason IS NULL ORDER BY __ts, __customer_id, __invoice"
        )
        con.execute(
            f"CREATE OR REPLACE TABLE {quarantine_table} AS "
            f"SELECT __row AS source_row, __reason AS reason, {raw_text} FROM classified "
            "WHERE __reason IS NOT NULL ORDER BY __row"
        )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise PropensityError(f"Could not write the validated log: {str(exc).splitlines()[0]}") from None
    finally:
        con.execute("DROP TABLE IF EXISTS classified")
    return _report(con, columns, table, quarantine_table)


def _report(con, columns, table, quarantine_table) -> ValidationReport:
    accepted, returns, first_ts, last_ts = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE is_return), min(ts), max(ts) FROM {table}"
    ).fetchall()[0]
    by_reason = dict(
        con.execute(f"SELECT reason, count(*) FROM {quarantine_table} GROUP BY reason ORDER BY 2 DESC").fetchall()
    )
    quarantined = sum(by_reason.values())
    input_rows = con.execute("SELECT count(*) FROM raw_source").fetchall()[0][0]
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
