"""Budgeted targeting: whom to contact so that the expected value saved is as large as possible.

A contact retains a would-be churner with probability ``success_rate`` (the campaign's uplift on
churners, which the retention team knows from past campaigns; 0.2 by default). Contacting customer
i is then worth ``p_churn_i x success_rate x value_i - cost_per_contact``, where ``value_i`` is the
customer's CLV (``expected_value``) or a flat ``value_per_save``. The gains are independent, so the best list
under a budget of N contacts is the N largest positive gains, and with no cap it is every customer
whose gain is positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.errors import PropensityError

PLAN_COLUMNS = ["expected_save", "expected_value_saved", "expected_gain", "cumulative_net"]


@dataclass(frozen=True)
class Plan:
    contacts: int
    cost: float
    expected_saves: float
    expected_value_saved: float
    expected_net: float
    success_rate: float
    expected_churners: float = 0.0  # sum of P(churn) over the contacts: would-be churners the list reaches


def plan_contacts(
    scores: pd.DataFrame,
    budget: int | None = None,
    cost_per_contact: float = 0.0,
    value_per_save: float | None = None,
    success_rate: float = 0.2,
    uplift: pd.Series | None = None,
) -> tuple[pd.DataFrame, Plan]:
    """The contact list (best first, with each customer's expected gain and the running totals) and its figures.

    ``uplift``: per customer, the retention a contact adds (an uplift model's prediction, aligned with ``scores``);
    it replaces P(churn) x success rate, and a customer whom contacting is expected to lose (gain <= 0) is never
    chosen."""
    if budget is None and cost_per_contact <= 0:
        raise PropensityError(
            "Give a contact budget (--budget N), or a cost per contact so that only contacts worth their cost "
            "are chosen."
        )
    if budget is not None and budget < 1:
        raise PropensityError(f"The contact budget must be at least 1 customer, not {budget}.")
    if not 0 < success_rate <= 1:
        raise PropensityError(
            f"The success rate is a share of churners a contact retains, in (0, 1]; got {success_rate}."
        )
    if cost_per_contact < 0 or (value_per_save is not None and value_per_save <= 0):
        raise PropensityError("The cost per contact cannot be negative and the value per save must be positive.")
    if scores["p_churn"].isna().all():
        raise PropensityError("A contact plan needs churn scores: train a churn model, then score again.")
    if value_per_save is None and scores["expected_value"].isna().all():
        raise PropensityError(
            "The log has no amounts, so customers have no CLV to weigh: give the value of one retained customer "
            "(--value-per-save)."
        )
    value = scores["expected_value"] if value_per_save is None else pd.Series(value_per_save, index=scores.index)
    saves = scores["p_churn"] * success_rate if uplift is None else uplift
    gain = saves * value - cost_per_contact
    chosen = scores.assign(expected_save=saves, expected_value_saved=saves * value, expected_gain=gain)
    chosen = chosen[gain > 0] if cost_per_contact > 0 or uplift is not None else chosen
    chosen = chosen.sort_values(["expected_gain", "customer_id"], ascending=[False, True], kind="stable")
    if budget is not None:
        chosen = chosen.head(budget)
    chosen = chosen.reset_index(drop=True)
    chosen["cumulative_net"] = chosen["expected_gain"].cumsum()
    plan = Plan(
        contacts=len(chosen),
        cost=float(len(chosen) * cost_per_contact),
        expected_saves=float(chosen["expected_save"].sum()),
        expected_value_saved=float(chosen["expected_value_saved"].sum()),
        expected_net=float(np.sum(chosen["expected_gain"])),
        success_rate=success_rate,
        expected_churners=float(chosen["p_churn"].sum()),
    )
    return chosen, plan
