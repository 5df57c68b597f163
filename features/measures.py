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
