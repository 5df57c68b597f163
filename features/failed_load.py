"""A load that mostly fails is refused before anything is written: what failed, an example, what to try."""

from __future__ import annotations

from features.errors import PropensityError
from features.sources import duckdb_identifier

# What to try when most rows fail for this reason (a failed load names it), and the source column to quote.
HINTS = {
    "invalid_timestamp": (
        "ts",
        "if the dates are written another way, give their format (--ts-format '%d/%m/%Y %H:%M')",
    ),
    "future_timestamp": ("ts", "day and month may be swapped: give the date format (--ts-format)"),
    "invalid_quantity": ("quantity", "check the delimiter (--delimiter) and the decimal separator"),
    "invalid_price": ("unit_price", "check the delimiter (--delimiter) and the decimal separator"),
    "invalid_amount": ("amount", "check the delimiter (--delimiter) and the decimal separator"),
    "missing_customer_id": ("customer_id", "check which column holds the customer id (--preset or --mapping)"),
}


def refuse_a_failed_load(con, columns: dict[str, str], share: float, malformed: int = 0) -> None:
    total, accepted = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE __reason IS NULL) FROM classified"
    ).fetchone()
    total += malformed
    if total and accepted >= share * total:
        return
    if not total:
        raise PropensityError("The source holds no rows: nothing was loaded.")
    if malformed * 2 >= total - accepted:
        line, text = con.execute("SELECT line, raw_line FROM raw_source_malformed ORDER BY line LIMIT 1").fetchone()
        raise PropensityError(
            f"Only {accepted:,} of {total:,} records are valid; {malformed:,} do not split into the header's "
            f"columns, the first on line {line} ({text[:80]!r}). Nothing was loaded: check the delimiter "
            "(--delimiter) and the quoting."
        )
    reason, n = con.execute(
        "SELECT __reason, count(*) FROM classified WHERE __reason IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
    ).fetchone()
    column, hint = HINTS.get(reason, (None, "see the quarantine for each row's reason (propensity validate)"))
    example = ""
    if column in columns:
        value = con.execute(
            f"SELECT CAST({duckdb_identifier(columns[column])} AS VARCHAR) FROM classified WHERE __reason = ? "
            "ORDER BY __row LIMIT 1",
            [reason],
        ).fetchone()[0]
        example = f", e.g. {value!r} in column {columns[column]!r}"
    raise PropensityError(
        f"Only {accepted:,} of {total:,} rows are valid (below the {share:.0%} a load needs); the most common "
        f"reason is {reason} ({n:,} rows{example}). Nothing was loaded: {hint}."
    )
