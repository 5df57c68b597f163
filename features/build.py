"""Point-in-time features and labels, written once as Ibis expressions.

The cutoff rule: features use ``ts < as_of``; labels use ``as_of <= ts < as_of + horizon``.
``as_of`` is a date (midnight), so "before as_of" is also "on an earlier day".

Durations come from epoch seconds and whole epoch days with integer divisors, and timestamps are
naive UTC, so DuckDB (the default) and Spark compile the same definitions to the same numbers.

Speed: the log is reduced once to invoice facts (one row per customer invoice), purchase days and
first-seen products; every cutoff is then a conditional aggregate over those small tables in one
grouped pass (cutoffs x invoices), so many cutoffs do not rescan or regroup the line-level log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis import _

from features.definitions import TREND_DAYS, WINDOWS_DAYS, available_features
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


def _with_epoch(tx: ir.Table) -> ir.Table:
    return tx.mutate(ts_s=tx.ts.epoch_seconds().cast("int64"))


# Money and units are summed in integer micro-units: floating-point sums depend on the order in which a parallel
# engine adds the rows (DuckDB and Spark both vary run to run), integer sums do not. Amounts and
# quantities keep 6 decimals; the exact total is turned back into a float once, after the last sum.
MICROS = 1_000_000


def _to_micros(x: ir.NumericValue) -> ir.IntegerValue:
    return (x * MICROS).round().cast("int64")


def _from_micros(micros: ir.IntegerValue) -> ir.FloatingValue:
    return micros.cast("float64") / MICROS


def invoice_facts(tx: ir.Table) -> ir.Table:
    """One row per invoice event (customer, invoice, timestamp): purchase and return value (micro-units), lines, units.

    Lines are folded per timestamp, not per invoice, so that an invoice id with lines on both sides
    of a cutoff cannot carry later lines into features. ``first_purchase`` marks the event that
    counts the invoice as a purchase invoice (its first purchase line), so invoices count once.
    """
    t = tx
    sale = ~t.is_return
    aggs = {
        "sale_value": ibis.ifelse(sale, _to_micros(t.amount), 0).sum(),
        "return_value": ibis.ifelse(sale, 0, _to_micros(-t.amount)).sum(),
        "sale_lines": sale.cast("int64").sum(),
        "return_lines": t.is_return.cast("int64").sum(),
    }
    if "quantity" in t.columns:
        aggs["sale_units"] = ibis.ifelse(sale, _to_micros(t.quantity), 0).sum()
    for cat in ("country", "channel"):
        if cat in t.columns:
            aggs[cat] = t[cat].min()
    inv = _with_epoch(t.group_by(["customer_id", "invoice_id", "ts"]).aggregate(**aggs)).drop("ts")
    inv = inv.mutate(day=inv.ts_s // DAY, is_purchase=inv.sale_lines > 0)
    rank = ibis.row_number().over(group_by=["customer_id", "invoice_id", "is_purchase"], order_by="ts_s")
    return inv.mutate(first_purchase=inv.is_purchase & (rank == 0))


def _per_cutoff_aggregates(inv: ir.Table, cut: ir.Table) -> ir.Table:
    j = inv.join(cut, inv.ts_s < cut.as_of_s)
    age = j.as_of_s - j.ts_s
    p = j.is_purchase
    first = j.first_purchase
    count = lambda cond: cond.cast("int64").sum()  # noqa: E731
    aggs = {
        "last_s": ibis.ifelse(p, j.ts_s, ibis.null("int64")).max(),
        "first_s": ibis.ifelse(p, j.ts_s, ibis.null("int64")).min(),
        "frequency_invoices": count(first),
        "monetary_total": _from_micros(j.sale_value.sum()),
        "return_value": _from_micros(j.return_value.sum()),
        "sale_lines": j.sale_lines.sum(),
        "return_lines": j.return_lines.sum(),
        "weekend_invoices": count(first & ((j.day + 3) % 7 >= 5)),  # epoch day 0 was a Thursday
        "spend_prev": _from_micros(
            ibis.ifelse((age > TREND_DAYS * DAY) & (age <= 2 * TREND_DAYS * DAY), j.sale_value, 0).sum()
        ),
    }
    if "sale_units" in inv.columns:
        aggs["sale_units"] = _from_micros(j.sale_units.sum())
    for w in WINDOWS_DAYS:
        aggs[f"invoices_{w}d"] = count(first & (age <= w * DAY))
        aggs[f"spend_{w}d"] = _from_micros(ibis.ifelse(age <= w * DAY, j.sale_value, 0).sum())
    return j.group_by(["customer_id", "as_of", "as_of_s", "as_of_day"]).aggregate(**aggs)


def _purchase_day_aggregates(inv: ir.Table, cut: ir.Table) -> ir.Table:
    days = inv.filter(inv.is_purchase).select("customer_id", "day").distinct()
    days = days.mutate(gap=days.day - days.day.lag().over(group_by="customer_id", order_by="day"))
    j = days.join(cut, days.day < cut.as_of_day)
    return j.group_by(KEYS).aggregate(
        frequency_days=j.count(),
        first_day=j.day.min(),
        last_day=j.day.max(),
        gap_n=j.gap.count(),
        gap_sum=j.gap.sum(),
        gap_sumsq=(j.gap * j.gap).sum(),
    )


def _product_aggregates(tx: ir.Table, cut: ir.Table) -> ir.Table:
    first = (
        tx.filter(~tx.is_return & tx.product_id.notnull())
        .group_by(["customer_id", "product_id"])
        .aggregate(first_ts=tx.ts.min())
    )
    first = first.mutate(first_s=first.first_ts.epoch_seconds().cast("int64"))
    j = first.join(cut, first.first_s < cut.as_of_s)
    return j.group_by(KEYS).aggregate(distinct_products=j.count())


def _main_category(inv: ir.Table, cut: ir.Table, column: str) -> ir.Table:
    j = inv.join(cut, inv.ts_s < cut.as_of_s)
    counts = j.filter(j.first_purchase & j[column].notnull()).group_by([*KEYS, column]).aggregate(n=_.count())
    ranked = counts.mutate(rn=ibis.row_number().over(group_by=KEYS, order_by=[ibis.desc("n"), column]))
    return ranked.filter(ranked.rn == 0).select(*KEYS, **{f"main_{column}": ranked[column]})


def _ratio(num, den):
    return ibis.ifelse(den > 0, num / den, ibis.null("float64"))


def features_expr(tx: ir.Table, cutoffs: list[date] | ir.Table, lookback_days: int = 365) -> ir.Table:
    """Features for every customer with a purchase in ``[as_of - lookback_days, as_of)``, per cutoff.

    ``cutoffs`` is a list of dates, or a table with the columns of ``cutoff_rows``.
    """
    cut = cutoffs if isinstance(cutoffs, ir.Table) else cutoff_table(cutoffs)
    inv = invoice_facts(tx)
    g = _per_cutoff_aggregates(inv, cut)
    g = g.filter(g.last_s.notnull() & (g.as_of_s - g.last_s <= lookback_days * DAY))
    d = _purchase_day_aggregates(inv, cut)
    t = g.left_join(d, KEYS).drop("customer_id_right", "as_of_right")
    if "product_id" in tx.columns:
        t = t.left_join(_product_aggregates(tx, cut), KEYS).drop("customer_id_right", "as_of_right")
    for cat in ("country", "channel"):
        if cat in tx.columns:
            t = t.left_join(_main_category(inv, cut, cat), KEYS).drop("customer_id_right", "as_of_right")

    recency = (t.as_of_s - t.last_s) / DAY
    gap_mean = _ratio(t.gap_sum, t.gap_n)
    # Sample variance from integer sums: (n*sumsq - sum^2) / (n*(n-1)); exact until the one division.
    gap_var = _ratio(t.gap_n * t.gap_sumsq - t.gap_sum * t.gap_sum, t.gap_n * (t.gap_n - 1))
    values = {
        "recency_days": recency,
        "frequency_invoices": t.frequency_invoices,
        "frequency_days": t.frequency_days,
        "monetary_total": t.monetary_total,
        "monetary_mean": t.monetary_total / t.frequency_invoices,
        "net_spend_total": t.monetary_total - t.return_value,
        "tenure_days": (t.as_of_s - t.first_s) / DAY,
        "btyd_frequency": t.frequency_days - 1,
        "btyd_recency": t.last_day - t.first_day,
        "btyd_T": t.as_of_day - t.first_day,
        **{f"invoices_{w}d": t[f"invoices_{w}d"] for w in WINDOWS_DAYS},
        **{f"spend_{w}d": t[f"spend_{w}d"] for w in WINDOWS_DAYS},
        "gap_mean_days": gap_mean,
        "gap_std_days": ibis.ifelse(t.gap_n >= 2, gap_var.sqrt(), ibis.null("float64")),
        "overdue_ratio": _ratio(recency, gap_mean),
        "spend_trend": _ratio(t[f"spend_{TREND_DAYS}d"] - t.spend_prev, t[f"spend_{TREND_DAYS}d"] + t.spend_prev),
        "distinct_products": t.distinct_products if "distinct_products" in t.columns else None,
        "basket_lines_mean": t.sale_lines / t.frequency_invoices,
        "basket_units_mean": t.sale_units / t.frequency_invoices if "sale_units" in t.columns else None,
        "return_share_lines": t.return_lines / (t.sale_lines + t.return_lines),
        "return_share_value": _ratio(t.return_value, t.monetary_total + t.return_value),
        "weekend_share": t.weekend_invoices / t.frequency_invoices,
        "main_country": t.main_country if "main_country" in t.columns else None,
        "main_channel": t.main_channel if "main_channel" in t.columns else None,
    }
    names = [f.name for f in available_features(tx.columns)]
    return t.select("customer_id", "as_of", **{n: values[n] for n in names})


def labels_expr(tx: ir.Table, cutoffs: list[date], horizons: Horizons) -> ir.Table:
    """Per (customer, as_of) with any invoice in the horizon: purchases in each horizon and net spend."""
    cut = cutoff_table(cutoffs)
    inv = invoice_facts(tx)
    j = inv.join(cut, (inv.ts_s >= cut.as_of_s) & (inv.ts_s < cut.as_of_s + horizons.longest * DAY))
    ahead = j.ts_s - j.as_of_s
    in_churn = ahead < horizons.churn_horizon_days * DAY
    return j.group_by(KEYS).aggregate(
        n_purchase_h=(j.is_purchase & (ahead < horizons.purchase_horizon_days * DAY)).cast("int64").sum(),
        n_churn_h=(j.is_purchase & in_churn).cast("int64").sum(),
        spend=_from_micros(ibis.ifelse(in_churn, j.sale_value - j.return_value, 0).sum()),
    )


def data_window(tx: ir.Table) -> tuple[datetime, datetime]:
    """First and last transaction time of the log."""
    row = tx.aggregate(first=tx.ts.min(), last=tx.ts.max()).to_pandas().iloc[0]
    if pd.isna(row["first"]):
        raise PropensityError("The transaction log is empty.")
    return row["first"].to_pydatetime(), row["last"].to_pydatetime()


def check_label_cutoffs(cutoffs: list[date], last_ts: datetime, horizons: Horizons) -> None:
    """Refuse cutoffs whose label horizon runs past the data (their labels would be false)."""
    end = last_ts.date() + timedelta(days=1)  # the log is taken as complete through its last day
    latest = end - timedelta(days=horizons.longest)
    late = [c for c in map(as_cutoff, cutoffs) if c > latest]
    if late:
        raise PropensityError(
            f"Cutoff {late[0]} needs {horizons.longest} days of data after it, but the log ends on "
            f"{last_ts.date()}; the latest cutoff with a full horizon is {latest}."
        )


def _to_frame(expr: ir.Table) -> pd.DataFrame:
    return feature_frame(expr.order_by(KEYS).to_pandas())


def feature_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A fetched feature table in the hand-off dtypes (text as string, ``as_of`` as datetime64[ns]), any engine."""
    for column in ("customer_id", "main_country", "main_channel"):  # one text dtype, even when empty
        if column in frame.columns:
            frame[column] = frame[column].astype(pd.StringDtype(na_value=float("nan")))
    frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[ns]")
    return frame.reset_index(drop=True)


def build_features(tx: ir.Table, cutoffs: list[date] | date, lookback_days: int = 365) -> pd.DataFrame:
    """Feature table (customer x cutoff) as pandas, the hand-off format to scikit-learn."""
    cutoffs = [cutoffs] if isinstance(cutoffs, (date, str)) else list(cutoffs)
    return _to_frame(features_expr(tx, cutoffs, lookback_days))


class CompiledFeatures:
    """``features_expr`` compiled once to a DuckDB prepared statement over two tables it owns.

    For many small requests (the REST service): Ibis compiles in about 0.25 s and DuckDB parses and
    binds the 12 KB of SQL in about 5 ms, so both are done once. Each request then refills the
    lines table (``load``, same columns as ``like``) and the cutoff table (``set_cutoffs``) in place:
    replacing either table would invalidate the prepared statement. It is the expression
    ``build_features`` runs, so results are identical.
    """

    def __init__(self, con, like: str, name: str, lookback_days: int = 365):
        self.table, self.cutoffs, self.statement = f"{name}_lines", f"{name}_cutoffs", f"{name}_features"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {self.table} AS SELECT * FROM {like} LIMIT 0")
        columns = ", ".join(f"{column} {DUCKDB_TYPES[dtype]}" for column, dtype in CUTOFF_SCHEMA.items())
        con.execute(f"CREATE OR REPLACE TEMP TABLE {self.cutoffs} ({columns})")
        backend = ibis.duckdb.from_connection(con)
        expr = features_expr(backend.table(self.table), backend.table(self.cutoffs), lookback_days).order_by(KEYS)
        self.sql = str(backend.compile(expr))
        self.schema = (
            expr.schema()
        )  # DuckDB's own result types can be wider (an integer sum is HUGEINT); Ibis narrows them
        con.execute(f"PREPARE {self.statement} AS {self.sql}")
        self.current: list[date] | None = []  # the cutoffs in the table

    def load(self, con, select: str) -> None:
        """Replace the lines with the rows of ``select`` (the same columns, in order)."""
        con.execute(f"DELETE FROM {self.table}")
        con.execute(f"INSERT INTO {self.table} {select}")

    def set_cutoffs(self, con, cutoffs: list[date]) -> None:
        """Replace the cutoffs (nothing to do when they are the ones already there)."""
        if list(cutoffs) == self.current:
            return
        self.current = None  # unknown until the refill below has committed
        rows = pd.DataFrame(cutoff_rows(cutoffs)).astype({"as_of": "datetime64[us]"})
        con.register("cutoff_rows_frame", rows)
        try:
            con.execute(f"DELETE FROM {self.cutoffs}")
            con.execute(f"INSERT INTO {self.cutoffs} SELECT * FROM cutoff_rows_frame")
        finally:
            con.unregister("cutoff_rows_frame")
        self.current = list(cutoffs)

    def run(self, con) -> pd.DataFrame:
        from ibis.backends.duckdb.converter import DuckDBPandasData

        return feature_frame(DuckDBPandasData.convert_table(con.execute(f"EXECUTE {self.statement}").df(), self.schema))

    def close(self, con) -> None:
        con.execute(f"DEALLOCATE {self.statement}")
        con.execute(f"DROP TABLE IF EXISTS {self.table}")
        con.execute(f"DROP TABLE IF EXISTS {self.cutoffs}")


def training_expr(tx: ir.Table, cutoffs: list[date], horizons: Horizons) -> ir.Table:
    feats = features_expr(tx, cutoffs, horizons.lookback_days)
    labels = labels_expr(tx, cutoffs, horizons)
    t = feats.left_join(labels, KEYS).drop("customer_id_right", "as_of_right")
    return t.mutate(
        churn=ibis.ifelse(t.n_churn_h.fill_null(0) > 0, 0, 1).cast("int8"),
        purchase=ibis.ifelse(t.n_purchase_h.fill_null(0) > 0, 1, 0).cast("int8"),
        spend=t.spend.fill_null(0.0),
    ).drop("n_churn_h", "n_purchase_h")


def build_training_table(tx: ir.Table, cutoffs: list[date], horizons: Horizons = Horizons()) -> pd.DataFrame:
    """Features plus labels for each cutoff, stacked with an ``as_of`` column.

    Refuses any cutoff whose label horizon is not fully inside the data.
    """
    cutoffs = [as_cutoff(c) for c in ([cutoffs] if isinstance(cutoffs, (date, str)) else cutoffs)]
    _, last_ts = data_window(tx)
    check_label_cutoffs(cutoffs, last_ts, horizons)
    return _to_frame(training_expr(tx, cutoffs, horizons))
