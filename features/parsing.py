"""How a source's text becomes typed values: the whitespace policy for ids, timestamps with offsets, numbers.

Every expression is DuckDB SQL over one raw column; a value that does not parse becomes NULL, which
validation turns into a quarantine reason.
"""

from features.sqltext import duckdb_identifier
from features.sqltext import sql_string as _sql_str

# Whitespace policy, the same for every id and text read (files and REST): leading and trailing Unicode
# whitespace and separators (tabs, no-break and ideographic spaces) and zero-width characters are removed.
_EDGE = r"[\s\p{Z}\x{200B}-\x{200D}\x{2060}\x{FEFF}]+"
# A time of day followed by a UTC offset or Z: converted to UTC. Values without one are taken as UTC already.
_OFFSET = r"\d:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$"


def text_expr(col: str) -> str:
    return f"NULLIF(regexp_replace(CAST({duckdb_identifier(col)} AS VARCHAR), '^{_EDGE}|{_EDGE}$', '', 'g'), '')"


def ts_expr(col: str, col_type: str, ts_format: str | None) -> str:
    q = duckdb_identifier(col)
    upper = col_type.upper()
    if upper.startswith("TIMESTAMP WITH TIME ZONE") or upper == "TIMESTAMPTZ":
        return f"CAST(timezone('UTC', {q}) AS TIMESTAMP)"
    if upper.startswith("TIMESTAMP") or upper == "DATE":
        return f"CAST({q} AS TIMESTAMP)"
    if ts_format:
        return f"CAST(try_strptime({text_expr(col)}, {_sql_str(ts_format)}) AS TIMESTAMP)"
    text = text_expr(col)
    with_offset = f"CAST(timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) AS TIMESTAMP)"
    return f"CASE WHEN regexp_matches({text}, '{_OFFSET}') THEN {with_offset} ELSE TRY_CAST({text} AS TIMESTAMP) END"


def number_expr(col: str, decimal: str) -> str:
    text = text_expr(col)
    if decimal == ",":  # 2,55 and 1.234,50 (a point then groups of three digits separates thousands)
        grouped = r"^[+-]?\d{1,3}(\.\d{3})+(,\d*)?$"
        text = f"CASE WHEN regexp_matches({text}, '{grouped}') THEN replace({text}, '.', '') ELSE {text} END"
        text = f"replace({text}, ',', '.')"
    return f"TRY_CAST({text} AS DOUBLE)"
