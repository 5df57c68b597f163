"""The backtest plan: a cutoff grid, rolling origins, and the cutoffs the registered model is refit on.

For a horizon ``h`` a cutoff ``c`` is *closed* at a date ``T`` when its label window has ended by
then: ``c + h <= T``. The grid holds every cutoff (monthly by default, or weekly: more snapshots
are more training rows) whose label window closed inside the log. An origin ``T`` is a grid cutoff
at which the models are scored; they train on the grid cutoffs closed at ``T`` only, so no label a
model learns from reaches past ``T``. The latest origin is the untouched test; the earlier ones are
the backtest that tunes the families and chooses the champion. Then the chosen family is refit on
every closed cutoff, and calibrated on the latest origin's out-of-time scores. Scores at an origin are
judged calibrated the way deployment calibrates them: by a calibrator fitted on a cutoff whose labels
were known at that origin (``calibration_origin``), never on a window that closes after it.

A short log gets fewer origins (and a warning); a log too short for one training cutoff and one
later labelled window is refused with the number of days it would need.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from features.cutoffs import monthly_cutoffs
from features.errors import PropensityError

Grid = Literal["monthly", "weekly"]
ORIGIN_SPACING_DAYS = 28  # origins at least about a month apart, whatever the grid


@dataclass(frozen=True)
class Origin:
    as_of: date  # the models are scored on this cutoff's rows
    train: tuple[date, ...]  # the grid cutoffs closed at as_of: the rows they learn from


@dataclass(frozen=True)
class BacktestPlan:
    horizon_days: int
    grid: tuple[date, ...]  # every cutoff whose label window closed inside the log
    origins: tuple[Origin, ...]  # oldest first; the last is the test
    warnings: tuple[str, ...] = ()
    window: int | None = None  # at most this many of the latest closed cutoffs train a model (None: all)

    @property
    def test(self) -> Origin:
        return self.origins[-1]

    @property
    def backtest(self) -> tuple[Origin, ...]:
        """The origins that tune and choose (all but the test; empty when the log allows only one origin)."""
        return self.origins[:-1]

    @property
    def refit(self) -> tuple[date, ...]:
        """The cutoffs the registered model trains on: every one whose label window closed (the latest
        ``window`` of them when a window is set)."""
        return self.grid[-self.window :] if self.window else self.grid

    def calibration_origin(self, origin: Origin) -> Origin | None:
        """Where the calibrator for the scores at ``origin`` comes from, as deployment would have it: the latest
        grid cutoff closed at ``origin`` (its labels are known by then), scored by a model trained on the cutoffs
        closed at that one. None when the log holds no such cutoff with training cutoffs of its own."""
        h = timedelta(days=self.horizon_days)
        for c in reversed(self.grid):
            train = tuple(x for x in self.grid if x + h <= c)
            if c + h <= origin.as_of and train:
                return Origin(c, train[-self.window :] if self.window else train)
        return None

    def describe(self) -> str:
        origins = ", ".join(f"{o.as_of} ({len(o.train)} training cutoffs)" for o in self.origins)
        refit = "all" if not self.window else f"the latest {len(self.refit)}"
        return f"{len(self.grid)} cutoffs {self.grid[0]}..{self.grid[-1]}; origins {origins}; refit on {refit}"


def cutoff_grid(start: date, end: date, grid: Grid = "monthly") -> list[date]:
    """Cutoffs from ``start`` to ``end`` inclusive: first days of months, or Mondays."""
    if grid == "monthly":
        return monthly_cutoffs(start, end)
    first = start + timedelta(days=(7 - start.weekday()) % 7)
    return [first + timedelta(weeks=i) for i in range((end - first).days // 7 + 1)] if first <= end else []


def plan_backtest(
    first_ts: datetime,
    last_ts: datetime,
    horizon_days: int,
    origins: int = 3,
    min_history_days: int = 30,
    grid: Grid = "monthly",
    window: int | None = None,
) -> BacktestPlan:
    """The grid, up to ``origins`` rolling origins (latest last) and the refit cutoffs for one horizon.

    ``window``: train each model on at most this many of the latest closed cutoffs (a rolling window;
    None, the default, is an expanding one: everything closed)."""
    end = last_ts.date() + timedelta(days=1)  # the log is taken as complete through its last day
    h = timedelta(days=horizon_days)
    cutoffs = cutoff_grid(first_ts.date() + timedelta(days=min_history_days), end - h, grid)
    candidates = [
        Origin(
            t, tuple(c for c in cutoffs if c + h <= t)[-window:] if window else tuple(c for c in cutoffs if c + h <= t)
        )
        for t in reversed(cutoffs)
    ]
    chosen: list[Origin] = []
    for origin in candidates:
        if origin.train and (not chosen or (chosen[-1].as_of - origin.as_of).days >= ORIGIN_SPACING_DAYS):
            chosen.append(origin)
        if len(chosen) == origins:
            break
    if not chosen:
        need = min_history_days + 2 * horizon_days + (31 if grid == "monthly" else 7)
        span = (end - first_ts.date()).days
        raise PropensityError(
            f"The log ({first_ts.date()} to {last_ts.date()}, {span} days) is too short for a {horizon_days}-day "
            f"horizon: one training cutoff and one later labelled window need about {need} days."
        )
    warnings = []
    if len(chosen) < origins:
        warnings.append(f"The log allows {len(chosen)} of the {origins} backtest origins asked for.")
    if len(chosen) == 1:
        warnings.append(
            "With one origin, the champion is chosen and calibrated on the test cutoff itself: its test figures "
            "are optimistic."
        )
    return BacktestPlan(horizon_days, tuple(cutoffs), tuple(reversed(chosen)), tuple(warnings), window)
