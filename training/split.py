"""Time-based splits over monthly cutoffs. Random row splits are not offered.

For a horizon h: the test cutoff is the latest monthly cutoff whose label window ends inside the
data; the validation cutoff the latest whose label window ends by the test cutoff; training
cutoffs are those whose label windows end by the validation cutoff. No label window overlaps the
next stage, so nothing the validation or test labels saw was available to an earlier stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from features.build import monthly_cutoffs
from features.errors import PropensityError


@dataclass(frozen=True)
class TimeSplit:
    train: tuple[date, ...]
    valid: date
    test: date
    horizon_days: int

    @property
    def all(self) -> list[date]:
        return [*self.train, self.valid, self.test]

    def describe(self) -> str:
        return (
            f"train {self.train[0]}..{self.train[-1]} ({len(self.train)} cutoffs), valid {self.valid}, test {self.test}"
        )


def plan_split(first_ts: datetime, last_ts: datetime, horizon_days: int, min_history_days: int = 30) -> TimeSplit:
    end = last_ts.date() + timedelta(days=1)
    h = timedelta(days=horizon_days)
    candidates = monthly_cutoffs(first_ts.date() + timedelta(days=min_history_days), end - h)
    if not candidates:
        raise PropensityError(
            f"The log ({first_ts.date()} to {last_ts.date()}) is too short for a {horizon_days}-day horizon."
        )
    test = candidates[-1]
    valid = [c for c in candidates if c + h <= test]
    train = [c for c in candidates if valid and c + h <= valid[-1]]
    if not train:
        need = 3 * horizon_days + min_history_days
        raise PropensityError(
            f"The log ({first_ts.date()} to {last_ts.date()}) is too short for train, validation and test cutoffs "
            f"{horizon_days} days apart: it needs about {need} days."
        )
    return TimeSplit(tuple(train), valid[-1], test, horizon_days)
