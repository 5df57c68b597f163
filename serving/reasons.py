"""Reasons in a marketer's words: the top drivers of a customer's score, written from ``config/reasons.yaml``."""

from __future__ import annotations

import math
import string
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from serving.schema import REASON_COLUMNS


@cache
def load_reason_texts() -> dict:
    return yaml.safe_load(resources.files("serving").joinpath("config/reasons.yaml").read_text())


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def _empty(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def reason_text(feature: str, values: dict) -> str:
    """One driver as a phrase, e.g. 'no purchase for 120 days; usual gap 30 days'."""
    entry = load_reason_texts().get(feature)
    if not entry:
        return feature.replace("_", " ")
    for template in (entry["text"], entry.get("missing")):
        if template and not any(_empty(values.get(name)) for name in _fields(template)):
            return template.format(**values)
    return feature.replace("_", " ")


def top_reasons(contrib: pd.DataFrame, values: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The ``k`` strongest drivers of each row's score, as phrases.

    For a score above the model's average the drivers are the inputs that push it up; below, the
    ones that hold it down, so each list explains why the customer sits where they sit.
    """
    if contrib.empty:
        return pd.DataFrame(index=contrib.index, columns=list(REASON_COLUMNS[:k]), dtype=object)
    phi = contrib.to_numpy(dtype=float)
    phi = phi * np.where(phi.sum(axis=1, keepdims=True) < 0, -1.0, 1.0)
    order = np.argsort(-phi, axis=1, kind="stable")[:, :k]
    names = np.asarray(contrib.columns)
    drivers = {names[col] for col in np.unique(order[np.take_along_axis(phi, order, axis=1) > 0])}
    texts = load_reason_texts()
    fields = {
        f
        for name in drivers
        for key in ("text", "missing")
        if (texts.get(name) or {}).get(key)
        for f in _fields(texts[name][key])
    }
    columns = {f: values[f].to_numpy(dtype=object) for f in fields if f in values.columns}  # only what the texts read
    phrases = np.full(order.shape, np.nan, dtype=object)  # no phrase: missing, as pandas marks it
    for i, chosen in enumerate(order):
        row = {f: column[i] for f, column in columns.items()}
        for j, col in enumerate(chosen):
            if phi[i, col] > 0:
                phrases[i, j] = reason_text(names[col], row)
    return pd.DataFrame(
        {name: pd.Series(phrases[:, j], index=contrib.index, dtype=object) for j, name in enumerate(REASON_COLUMNS[:k])}
    )
