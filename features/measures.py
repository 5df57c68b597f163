"""The windows and the expressions over the per-cutoff aggregates (``features.folds``) that features share."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.cutoffs import DAY

WINDOWS_DAYS = (30, 90, 180, 365)
ACTIVITY_DAYS = (7, 14)  # short windows: counts only
TREND_DAYS = 90
SEASON_DAYS = 365


def ratio(num, den):
    return ibis.ifelse(den > 0, num / den, ibis.null("float64"))


def recency(h: ir.Table):
    return (h.as_of_s - h.last_s) / DAY


def gap_mean(h: ir.Table):
    return ratio(h.gap_sum, h.gap_n)


def gap_std(h: ir.Table):
    # Sample variance from integer sums: (n*sumsq - sum^2) / (n*(n-1)); exact until the one division.
    var = ratio(h.gap_n * h.gap_sumsq - h.gap_sum * h.gap_sum, h.gap_n * (h.gap_n - 1))
    return ibis.ifelse(h.gap_n >= 2, var.sqrt(), ibis.null("float64"))


def trend(recent, previous):
    return ratio(recent - previous, recent + previous)


def year_ago(h: ir.Table):
    seen = h.first_s <= h.as_of_s - SEASON_DAYS * DAY
    return ibis.ifelse(seen, h.invoices_year_ago.cast("float64"), ibis.null("float64"))  # float: null-able, any engine


ROBUST_SD = 1.349  # the interquartile range of a normal distribution, in standard deviations
DEVIATION_MIN_DAYS = 3  # purchase days (gaps, for the gap) a customer needs before their habit is measured


def robust_z(x, q1, q2, q3, floor):
    """(x - median) / (IQR / 1.349): a z-score a customer's few odd values do not move; the spread is at least
    ``floor`` (a customer who always buys every 30 days is not 20 standard deviations late at day 31)."""
    scale = ibis.greatest((q3 - q1) / ROBUST_SD, floor)
    return ibis.ifelse(scale > 0, (x - q2) / scale, ibis.null("float64"))


def gap_deviation(h: ir.Table):
    open_gap = (h.as_of_day - h.last_day).cast("float64")
    z = robust_z(open_gap, h.gap_q1, h.gap_q2, h.gap_q3, ibis.greatest(0.1 * h.gap_q2, 1.0))
    return ibis.ifelse(h.gap_n >= DEVIATION_MIN_DAYS, z, ibis.null("float64"))


def spend_deviation(h: ir.Table):
    q1, q2, q3 = h.day_spend_q1, h.day_spend_q2, h.day_spend_q3
    z = robust_z(h.day_spend_last, q1, q2, q3, 0.1 * q2.abs())
    return ibis.ifelse(h.frequency_days >= DEVIATION_MIN_DAYS, z, ibis.null("float64"))
