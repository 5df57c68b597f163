"""The folded tables every feature build starts from, and the per-cutoff aggregates over them.

The line-level log is folded once into invoice events (one row per customer invoice and timestamp),
purchase days and the products first (and second) bought at each purchase time; each cutoff is then a
conditional aggregate over those small tables in one grouped pass (cutoffs x events), so many cutoffs do not
rescan the log.

Money and units are summed in integer micro-units: floating-point sums depend on the order in which
a parallel engine adds the rows (DuckDB and Spark both vary run to run), integer sums do not.
"""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir
from ibis import _

from features.cutoffs import DAY, KEYS
from features.measures import ACTIVITY_DAYS, SEASON_DAYS, TREND_DAYS, WINDOWS_DAYS


def _with_epoch(tx: ir.Table) -> ir.Table:
    return tx.mutate(ts_s=tx.ts.epoch_seconds().cast("int64"))


QUARTILES = {1: 0.25, 2: 0.5, 3: 0.75}  # interpolated (DuckDB quantile_cont, Spark percentile, pandas linear)

# Amounts and quantities keep 6 decimals; the exact total is turned back into a float once, after the last sum.
MICROS = 1_000_000


def _to_micros(x: ir.NumericValue) -> ir.IntegerValue:
    return (x * MICROS).round().cast("int64")


def from_micros(micros: ir.IntegerValue) -> ir.FloatingValue:
    return micros.cast("float64") / MICROS


def _count(condition: ir.BooleanValue) -> ir.IntegerValue:
    """Rows where ``condition`` holds: a count keeps a 64-bit state per group where an integer sum keeps 128 bits in
    DuckDB, and a 12-cutoff build holds a million groups of about 20 of them within the memory limit."""
    return condition.count(where=condition)


def _sum(x: ir.IntegerValue) -> ir.IntegerValue:
    """A folded sum kept as a 64-bit integer: DuckDB widens integer sums to 128 bits, which every later
    aggregate over the folds then adds more slowly (~20%); one invoice's or day's micro-units fit 64 bits by far
    (an overflow is an error, not a wrong number). Spark's sums are 64-bit already. The cast is built as an
    operation: Ibis types an integer sum as int64 already, so ``.cast("int64")`` would be dropped as a no-op."""
    return ops.Cast(x.sum(), to=dt.int64).to_expr()


def invoice_facts(tx: ir.Table) -> ir.Table:
    """One row per invoice event (customer, invoice, timestamp): purchase and return value (micro-units), lines, units.

    Lines are folded per timestamp, not per invoice, so that an invoice id with lines on both sides
    of a cutoff cannot carry later lines into features. ``first_purchase`` marks the event that
    counts the invoice as a purchase invoice (its first purchase line), so invoices count once.
    """
    sale = ~tx.is_return
    aggs = {"sale_lines": _sum(sale.cast("int64")), "return_lines": _sum(tx.is_return.cast("int64"))}
    if "amount" in tx.columns:  # an event log (no amounts) has no money to sum
        aggs["sale_value"] = _sum(ibis.ifelse(sale, _to_micros(tx.amount), 0))
        aggs["return_value"] = _sum(ibis.ifelse(sale, 0, _to_micros(-tx.amount)))
    if "quantity" in tx.columns:
        aggs["sale_units"] = _sum(ibis.ifelse(sale, _to_micros(tx.quantity), 0))
    for cat in ("country", "channel"):
        if cat in tx.columns:
            aggs[cat] = tx[cat].min()
    events = _with_epoch(tx.group_by(["customer_id", "invoice_id", "ts"]).aggregate(**aggs)).drop("ts")
    events = events.mutate(day=events.ts_s // DAY, is_purchase=events.sale_lines > 0)
    rank = ibis.row_number().over(group_by=["customer_id", "invoice_id", "is_purchase"], order_by="ts_s")
    return events.mutate(first_purchase=events.is_purchase & (rank == 0))


def per_cutoff_aggregates(events: ir.Table, cutoffs: ir.Table) -> ir.Table:
    """Per customer and cutoff: first and last purchase, counts and money over all history and the windows."""
    pairs = events.join(cutoffs, events.ts_s < cutoffs.as_of_s)
    age = pairs.as_of_s - pairs.ts_s
    purchase = pairs.is_purchase
    first = pairs.first_purchase
    previous = (age > TREND_DAYS * DAY) & (age <= 2 * TREND_DAYS * DAY)
    aggs = {
        "last_s": ibis.ifelse(purchase, pairs.ts_s, ibis.null("int64")).max(),
        "first_s": ibis.ifelse(purchase, pairs.ts_s, ibis.null("int64")).min(),
        "frequency_invoices": _count(first),
        "sale_lines": pairs.sale_lines.sum(),
        "return_lines": pairs.return_lines.sum(),
        "weekend_invoices": _count(first & ((pairs.day + 3) % 7 >= 5)),  # epoch day 0 was a Thursday
        "invoices_prev": _count(first & previous),
        # the same season a year ago: the TREND_DAYS that followed this date one year before
        "invoices_year_ago": _count(first & (age > (SEASON_DAYS - TREND_DAYS) * DAY) & (age <= SEASON_DAYS * DAY)),
    }
    for w in ACTIVITY_DAYS:
        aggs[f"invoices_{w}d"] = _count(first & (age <= w * DAY))
    if "sale_units" in events.columns:
        aggs["sale_units"] = from_micros(pairs.sale_units.sum())
    for w in WINDOWS_DAYS:
        aggs[f"invoices_{w}d"] = _count(first & (age <= w * DAY))
    if "sale_value" in events.columns:
        aggs["monetary_total"] = from_micros(pairs.sale_value.sum())
        aggs["return_value"] = from_micros(pairs.return_value.sum())
        aggs["spend_prev"] = from_micros(ibis.ifelse(previous, pairs.sale_value, 0).sum())
        for w in WINDOWS_DAYS:
            aggs[f"spend_{w}d"] = from_micros(ibis.ifelse(age <= w * DAY, pairs.sale_value, 0).sum())
    return pairs.group_by(["customer_id", "as_of", "as_of_s", "as_of_day"]).aggregate(**aggs)


def purchase_days(events: ir.Table) -> ir.Table:
    """One row per customer and purchase day: the gap since their previous purchase day (null for the first) and,
    when the log has amounts, the day's spend (micro-units). Gaps look back only, so any cutoff after a day sees
    that day's gap as it is here: the fold does not depend on the cutoff."""
    purchases = events.filter(events.is_purchase)
    if "sale_value" in events.columns:
        days = purchases.group_by(["customer_id", "day"]).aggregate(day_spend=_sum(purchases.sale_value))
    else:
        days = purchases.select("customer_id", "day").distinct()
    return days.mutate(gap=days.day - days.day.lag().over(group_by="customer_id", order_by="day"))


def purchase_day_aggregates(days: ir.Table, cutoffs: ir.Table, quartiles: bool = True) -> ir.Table:
    """Per customer and cutoff, from ``purchase_days``: purchase days, their gaps (count, sums, the last) and, with
    ``quartiles``, the gaps' quartiles and, when the log has amounts, the quartiles of their spend per purchase day
    and the spend of the last one (for deviation detection)."""
    if not quartiles:
        days = days.drop("day_spend") if "day_spend" in days.columns else days
    pairs = days.join(cutoffs, days.day < cutoffs.as_of_day).drop("as_of_s", "as_of_day")  # not sorted along
    if quartiles:
        pairs = _ranked(_ranked(pairs, "gap"), "day_spend") if "day_spend" in days.columns else _ranked(pairs, "gap")
    aggs = {
        "frequency_days": pairs.count(),
        "first_day": pairs.day.min(),
        "last_day": pairs.day.max(),
        "last_gap": pairs.gap.argmax(pairs.day),  # the gap that ended at the last purchase day (null with one day)
        "gap_n": pairs.gap.count(),
        "gap_sum": pairs.gap.sum(),
        "gap_sumsq": (pairs.gap * pairs.gap).sum(),
    }
    if quartiles:
        aggs |= {f"gap_q{i}": _quantile(pairs, "gap", q) for i, q in QUARTILES.items()}
    if "day_spend" in days.columns:
        aggs["day_spend_last"] = from_micros(pairs.day_spend.argmax(pairs.day))
        aggs |= {f"day_spend_q{i}": _quantile(pairs, "day_spend", q) / MICROS for i, q in QUARTILES.items()}
    return pairs.group_by(KEYS).aggregate(**aggs)


def _ranked(pairs: ir.Table, column: str) -> ir.Table:
    """Each row's place among its customer and cutoff's non-null ``column`` values (0-based; nulls last), and
    their count. A sort, which spills to disk past the memory limit; an exact quantile aggregate holds every
    group's values in memory at once, and 1M customers' purchase days do not fit in 500 MB."""
    order = ibis.row_number().over(group_by=KEYS, order_by=ibis.asc(pairs[column], nulls_first=False))
    return pairs.mutate(**{f"{column}_i": order, f"{column}_n": pairs[column].count().over(group_by=KEYS)})


def _quantile(pairs: ir.Table, column: str, q: float) -> ir.FloatingValue:
    """The ``q`` quantile of ``column`` per group of a ``_ranked`` table, interpolated between the two values
    around position q * (n - 1) (DuckDB quantile_cont, Spark percentile, pandas "linear")."""
    position = (pairs[f"{column}_n"] - 1).cast("float64") * q  # exact (q is a quarter); not DuckDB's slow DECIMAL
    low = position.floor()
    value, i = pairs[column].cast("float64"), pairs[f"{column}_i"]
    below = ibis.ifelse(i == low, value, ibis.null("float64")).max()
    above = ibis.ifelse(i == low + 1, value, ibis.null("float64")).max()
    fraction = ibis.ifelse(i == low, position - low, ibis.null("float64")).max()
    return below + (above.fill_null(below) - below) * fraction


def product_firsts(tx: ir.Table) -> ir.Table:
    """Per customer x product bought: the first purchase time and the second distinct one (null if none).

    A dense rank of each customer x product's purchase times (ties share a rank) gives the first and the
    second distinct time without first making the lines distinct (one pass less over the log)."""
    bought = tx.filter(~tx.is_return & tx.product_id.notnull())
    bought = bought.select("customer_id", "product_id", ts_s=bought.ts.epoch_seconds().cast("int64"))
    bought = bought.mutate(n=ibis.dense_rank().over(group_by=["customer_id", "product_id"], order_by="ts_s"))
    return (
        bought.filter(bought.n <= 1)
        .group_by(["customer_id", "product_id"])
        .aggregate(first_s=bought.ts_s.min(), again_s=ibis.ifelse(bought.n == 1, bought.ts_s, ibis.null("int64")).max())
    )


def band(ts: ir.IntegerValue, bounds: list[int]) -> ir.IntegerValue:
    """The first of the cutoffs ``bounds`` (epoch seconds, ascending) strictly after ``ts`` (null: none is), so that
    ``ts < as_of_s`` exactly when ``band(ts) <= as_of_s``: counts over all history before each cutoff then fold
    per customer and band once, and each cutoff sums the few bands up to it instead of joining every row."""
    return ibis.cases(*((ts < b, b) for b in bounds), else_=ibis.null("int64"))


def _up_to_each_cutoff(banded: ir.Table, cutoffs: ir.Table) -> ir.Table:
    return banded.join(cutoffs, banded.band <= cutoffs.as_of_s)


def product_times(firsts: ir.Table) -> ir.Table:
    """Per customer and purchase time, from ``product_firsts``: how many products were bought for the first time
    then (``new``) and how many for the second distinct time (``again``). Counts before a cutoff are sums over
    these rows, at most one per invoice event, instead of a count over every customer x product pair (at 10M
    synthetic lines: 564k rows against 6.25M pairs)."""
    new = firsts.select("customer_id", ts_s="first_s", new=ibis.literal(1, "int64"), again=ibis.literal(0, "int64"))
    again = firsts.filter(firsts.again_s.notnull())
    again = again.select("customer_id", ts_s="again_s", new=ibis.literal(0, "int64"), again=ibis.literal(1, "int64"))
    both = new.union(again)
    return both.group_by(["customer_id", "ts_s"]).aggregate(new=_sum(both.new), again=_sum(both.again))


def product_aggregates(times: ir.Table, cutoffs: ir.Table, bounds: list[int] | None = None) -> ir.Table:
    """Per customer and cutoff, from ``product_times``: distinct products bought, and those bought again (at a later
    timestamp).

    With the cutoffs' ``bounds`` (a list of cutoffs, not a table), by bands (``band``)."""
    if bounds is not None:
        times = times.group_by(["customer_id", band(times.ts_s, bounds).name("band")]).aggregate(
            new=_sum(times.new), again=_sum(times.again)
        )
        pairs = _up_to_each_cutoff(times.filter(times.band.notnull()), cutoffs)
    else:
        pairs = times.join(cutoffs, times.ts_s < cutoffs.as_of_s)
    return pairs.group_by(KEYS).aggregate(distinct_products=_sum(pairs.new), repeat_products=_sum(pairs.again))


def main_category(events: ir.Table, cutoffs: ir.Table, column: str, bounds: list[int] | None = None) -> ir.Table:
    """Per customer and cutoff: the value of ``column`` on most purchase invoices before it (ties: the first in
    order). With the cutoffs' ``bounds``, the invoices are counted by band (``band``) first."""
    bought = events.filter(events.first_purchase & events[column].notnull())
    if bounds is None:
        pairs = bought.join(cutoffs, bought.ts_s < cutoffs.as_of_s)
        counts = pairs.group_by([*KEYS, column]).aggregate(n=_.count())
    else:
        banded = bought.group_by(["customer_id", column, band(bought.ts_s, bounds).name("band")]).aggregate(n=_.count())
        pairs = _up_to_each_cutoff(banded.filter(banded.band.notnull()), cutoffs)
        counts = pairs.group_by([*KEYS, column]).aggregate(n=pairs.n.sum())
    ranked = counts.mutate(rn=ibis.row_number().over(group_by=KEYS, order_by=[ibis.desc("n"), column]))
    return ranked.filter(ranked.rn == 0).select(*KEYS, **{f"main_{column}": ranked[column]})
