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


@cache
def _fields(template: str) -> tuple[str, ...]:  # parsed once per template, not once per phrase (100k rows: 300k)
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _empty(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


TEMPLATE_KEYS = ("text", "short", "missing")  # tried in this order: the first whose values are all present


def reason_text(feature: str, values: dict, typical=None) -> str:
    """One driver as a phrase, e.g. 'no purchase for 120 days; usually buys every 30' (``typical``: the input's
    median among the training customers, for the texts that compare with it)."""
    columns = {name: np.array([value], dtype=object) for name, value in values.items()}
    return _phrases(feature, np.zeros(1, dtype=np.intp), columns, typical)[0]


def _phrases(feature: str, rows: np.ndarray, columns: dict[str, np.ndarray], typical=None) -> np.ndarray:
    """``reason_text`` of ``feature`` for each of ``rows`` (positions in ``columns``): each template is checked and
    filled for all the rows it serves at once (a batch explains ~100k rows x 3 drivers)."""
    entry = load_reason_texts().get(feature)
    out = np.full(len(rows), feature.replace("_", " "), dtype=object)
    if not entry:
        return out
    left = np.ones(len(rows), dtype=bool)  # no template chosen yet
    for key in TEMPLATE_KEYS:
        template = entry.get(key)
        if not template:
            continue
        names = _fields(template)
        given = {name: columns[name][rows] for name in names if name in columns and name != "typical"}
        usable = left.copy()
        for name in names:  # a template serves the rows where every value it names is present
            if name == "typical":
                usable &= not _empty(typical)
            elif name in given:
                usable &= ~np.fromiter(map(_empty, given[name]), dtype=bool, count=len(rows))
            else:
                usable[:] = False
        for i in np.flatnonzero(usable):
            out[i] = template.format(**{name: column[i] for name, column in given.items()}, typical=typical)
        left &= ~usable
    return out


def top_reasons(
    contrib: pd.DataFrame, values: pd.DataFrame, k: int = 3, typical: dict | None = None, risk_sign: float = 1.0
) -> pd.DataFrame:
    """The ``k`` strongest drivers of each row's churn risk, as phrases that say which way each pushes it.

    Inputs of one ``group`` (reasons.yaml) are one driver: their contributions are added up and the phrase is the
    member's that pushes hardest the same way. The drivers that raise the risk come first, strongest first (the
    answer to "why is this customer at risk?"); when fewer than ``k`` raise it, the strongest that lower it follow.
    ``risk_sign`` is -1 when the model explained scores a purchase: what raises P(purchase) lowers the risk.
    """
    if contrib.empty:
        return pd.DataFrame(index=contrib.index, columns=list(REASON_COLUMNS[:k]), dtype=object)
    texts = load_reason_texts()
    raw = contrib.to_numpy(dtype=float) * risk_sign  # toward churn risk
    names = np.asarray(contrib.columns)
    group_of = [(texts.get(name) or {}).get("group", name) for name in names]
    groups = list(dict.fromkeys(group_of))
    total = np.zeros((len(raw), len(groups)))
    member = np.zeros((len(raw), len(groups)), dtype=int)
    for g, group in enumerate(groups):
        columns = np.flatnonzero(np.asarray(group_of) == group)
        block = raw[:, columns]
        total[:, g] = block.sum(axis=1)
        member[:, g] = columns[np.argmax(block * np.sign(total[:, [g]]), axis=1)]
    order = np.lexsort((-np.abs(total), total <= 0), axis=-1)[:, :k]  # raising first, each side strongest first
    chosen = np.take_along_axis(member, order, axis=1)
    pushes = np.take_along_axis(total, order, axis=1)
    drivers = set(names[chosen[pushes != 0]])
    fields = {
        f
        for name in drivers
        for key in TEMPLATE_KEYS
        if (texts.get(name) or {}).get(key)
        for f in _fields(texts[name][key])
    }
    columns = {f: values[f].to_numpy(dtype=object) for f in fields if f in values.columns}  # only what the texts read
    typical = typical or {}
    direction = {True: texts["directions"]["up"], False: texts["directions"]["down"]}
    phrases = np.full((len(raw), k), np.nan, dtype=object)  # no phrase: missing, as pandas marks it
    for feature in sorted(drivers):
        rows, ranks = np.nonzero((names[chosen] == feature) & (pushes != 0))
        texts_of = _phrases(feature, rows, columns, typical.get(feature))
        ways = [direction[bool(up)] for up in pushes[rows, ranks] > 0]
        phrases[rows, ranks] = [f"{text} — {way}" for text, way in zip(texts_of, ways, strict=True)]
    return pd.DataFrame(
        {name: pd.Series(phrases[:, j], index=contrib.index, dtype=object) for j, name in enumerate(REASON_COLUMNS[:k])}
    )
