"""One entry of the feature catalogue (features.definitions): a name, its meaning, and its expression over the
per-customer, per-cutoff aggregates of ``features.folds``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ibis.expr.types as ir


@dataclass(frozen=True)
class Feature:
    name: str
    definition: str
    window: str
    unit: str
    expr: Callable[[ir.Table], ir.Value]
    requires: tuple[str, ...] = ()
    categorical: bool = False
    model_input: bool = True  # False: computed for scoring's flags (deviation detection), never a model input


ALL = "all history before as_of"


def col(name: str):
    return lambda h: h[name]


def per_invoice(name: str):
    return lambda h: h[name] / h.frequency_invoices
