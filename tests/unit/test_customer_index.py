"""The composite customer index on populations with a known structure."""

import numpy as np
import pandas as pd
import pytest

from features.customer_index import CustomerIndex, entropy_weights, fit_index
from features.errors import PropensityError
from features.segments import load_segment_rules

RULES = load_segment_rules().index


def _three_groups(n: int = 100, seed: int = 0) -> pd.DataFrame:
    """Good, middling and poor customers: each group better than the next on every indicator."""
    rng = np.random.default_rng(seed)
    groups = [(5, 30, 5000, 700, 0.0), (60, 6, 600, 300, 0.05), (300, 1, 40, 100, 0.4)]
    rows = [
        {
            "customer_id": f"{g}-{i}",
            "recency_days": r * rng.uniform(0.8, 1.2),
            "frequency_invoices": max(1, round(f * rng.uniform(0.8, 1.2))),
            "monetary_total": m * rng.uniform(0.8, 1.2),
            "tenure_days": t * rng.uniform(0.9, 1.1),
            "return_share_value": s,
        }
        for g, (r, f, m, t, s) in enumerate(groups)
        for i in range(n)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("standardise", ["minmax", "percentile"])
@pytest.mark.parametrize("weights", ["entropy", "equal"])
def test_the_index_ranks_planted_groups_in_order_and_travels_as_a_dict(standardise, weights):
    pop = _three_groups()
    index = fit_index(pop, RULES.model_copy(update={"standardise": standardise, "weights": weights}))
    values = index.score(pop)
    assert ((values >= 0) & (values <= 100)).all()
    good, middling, poor = values[:100], values[100:200], values[200:]
    assert good.min() > middling.max() and middling.min() > poor.max()
    assert index.weights.sum() == pytest.approx(1.0, abs=1e-12)
    again = CustomerIndex.from_dict(index.to_dict())
    np.testing.assert_allclose(again.score(pop), values, rtol=0, atol=1e-12)
    # percentiles: the population's own ranking, the same one customer at a time as in the batch
    pct = index.percentile(values)
    assert pct.min() >= 0 and pct.max() <= 100
    assert np.all(np.diff(pct[np.argsort(values)]) >= -1e-9)
    one = np.array([again.percentile(again.score(pop.iloc[[i]]))[0] for i in range(0, 300, 37)])
    np.testing.assert_allclose(one, pct[::37], rtol=0, atol=1e-9)


def test_directions_turn_the_index():
    pop = _three_groups()
    flipped = RULES.model_copy(update={"indicators": {c: -d for c, d in RULES.indicators.items()}})
    values = fit_index(pop, flipped).score(pop)
    assert values[200:].min() > values[:100].max()  # "less is better" everywhere: the poor group now leads


def test_entropy_weights_follow_dispersion():
    rng = np.random.default_rng(1)
    s = np.column_stack([np.full(500, 0.5), rng.uniform(0.4, 0.6, 500), rng.exponential(0.1, 500).clip(0, 1)])
    w = entropy_weights(s)
    assert w[0] == pytest.approx(0.0, abs=1e-12)  # a constant indicator tells customers apart not at all
    assert w[2] > w[1] > 0  # the most concentrated indicator weighs most
    assert w.sum() == pytest.approx(1.0)


def test_configured_weights_and_an_event_log_without_money():
    pop = _three_groups().drop(columns=["monetary_total", "return_share_value"])
    index = fit_index(pop, RULES.model_copy(update={"weights": {"recency_days": 3.0, "frequency_invoices": 1.0}}))
    assert list(index.indicators) == ["recency_days", "frequency_invoices", "tenure_days"]
    assert index.weight_by_indicator == pytest.approx(
        {"recency_days": 0.75, "frequency_invoices": 0.25, "tenure_days": 0}
    )
    with pytest.raises(PropensityError, match="none of"):
        fit_index(pop[["customer_id"]], RULES)


def test_a_missing_indicator_counts_as_middling():
    pop = _three_groups()
    index = fit_index(pop, RULES.model_copy(update={"weights": "equal"}))
    row = pop.iloc[[0]].assign(return_share_value=np.nan)
    full = index.score(pop.iloc[[0]])[0]
    # return share 0 is the best (1 after turning); missing counts 0.5: the index drops by half its weight x 100
    assert index.score(row)[0] == pytest.approx(full - 100 * 0.2 * 0.5, abs=1e-9)
