"""Cutoffs: the dates features are computed as of, the label horizons, and the cutoff table every build joins.

A cutoff (``as_of``) is a calendar date; features use everything strictly before its midnight, labels
the ``horizon`` days from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.errors import PropensityError

DAY = 86400  # seconds; an integer divisor on purpose (a float literal becomes DECIMAL on Spark)
KEYS = ["customer_id", "as_of"]


@dataclass(frozen=True)
class Horizons:
    """Label windows and the activity lookback that defines who is in the population."""

    churn_horizon_days: int = 90
    purchase_horizon_days: int = 30
    lookback_days: int = 365

    @property
    def longest(self) -> int:
        return max(self.churn_horizon_days, self.purchase_horizon_days)


def as_cutoff(value: date | datetime | str) -> date:
    """A cutoff is a calendar date (features use everything strictly before its midnight)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise PropensityError(f"The cutoff {value!r} is not a date like 2011-09-01.") from None
    if isinstance(value, datetime):
        if value.time() != datetime.min.time():
            raise PropensityError(f"The cutoff {value} must be a date (midnight), not a time of day.")
        value = value.date()
    return value


def monthly_cutoffs(start: date | str, end: date | str) -> list[date]:
    """First days of each month from ``start`` to ``end`` inclusive."""
    start, end = as_cutoff(start), as_cutoff(end)
    current = (
        date(start.year, start.month, 1)
        if start.day == 1
        else date(start.year + start.month // 12, start.month % 12 + 1, 1)
    )
    out = []
    while current <= end:
        out.append(current)
        current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
    return out


CUTOFF_SCHEMA = {"as_of": "timestamp", "as_of_day": "int64", "as_of_s": "int64"}
DUCKDB_TYPES = {"timestamp": "TIMESTAMP", "int64": "BIGINT"}


def create_cutoff_table(con, name: str, temp: bool = True) -> None:
    """An empty DuckDB table ``name`` (temporary unless ``temp`` is false) with the cutoff table's columns, refilled
    per build or request."""
    columns = ", ".join(f"{column} {DUCKDB_TYPES[dtype]}" for column, dtype in CUTOFF_SCHEMA.items())
    con.execute(f"CREATE OR REPLACE {'TEMP ' if temp else ''}TABLE {name} ({columns})")


def cutoff_rows(cutoffs: list[date]) -> dict[str, list]:
    """The cutoff table's columns: midnight, epoch day and epoch second of each distinct cutoff."""
    days = sorted({as_cutoff(c) for c in cutoffs})
    if not days:
        raise PropensityError("No cutoff was given.")
    epoch = date(1970, 1, 1)
    return {
        "as_of": [datetime.combine(d, datetime.min.time()) for d in days],
        "as_of_day": [(d - epoch).days for d in days],
        "as_of_s": [(d - epoch).days * DAY for d in days],
    }


def cutoff_table(cutoffs: list[date]) -> ir.Table:
    return ibis.memtable(cutoff_rows(cutoffs), schema=CUTOFF_SCHEMA)


def data_window(tx: ir.Table) -> tuple[datetime, datetime]:
    """First and last transaction time of the log."""
    row = tx.aggregate(first=tx.ts.min(), last=tx.ts.max()).to_pandas().iloc[0]
    if pd.isna(row["first"]):
        raise PropensityError("The transaction log is empty.")
    return row["first"].to_pydatetime(), row["last"].to_pydatetime()


def check_label_cutoffs(
    cutoffs: list[date], last_ts: datetime, horizons: Horizons, first_ts: datetime | None = None
) -> None:
    """Refuse cutoffs whose label horizon runs past the data (their labels would be false)."""
    end = last_ts.date() + timedelta(days=1)  # the log is taken as complete through its last day
    latest = end - timedelta(days=horizons.longest)
    late = [c for c in map(as_cutoff, cutoffs) if c > latest]
    if late and first_ts is not None and latest <= first_ts.date():
        raise PropensityError(
            f"Cutoff {late[0]} needs {horizons.longest} days of data after it, but the whole log ({first_ts.date()} "
            f"to {last_ts.date()}) is shorter than that: no cutoff can have labels yet."
        )
    if late:
        raise PropensityError(
            f"Cutoff {late[0]} needs {horizons.longest} days of data after it, but the log ends on "
            f"{last_ts.date()}; the latest cutoff with a full horizon is {latest}."
        )
