"""Segment rules and clusters on small, hand-made populations."""

import numpy as np
import pandas as pd
import pytest

from features.clusters import ClusterModel, fit_clusters
from features.errors import PropensityError
from features.segments import abc_tier, assign_segments, lifecycle_stage, load_segment_rules, segment_reference

RULES = load_segment_rules()


def _population(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {
        "customer_id": [str(i) for i in range(n)],
        "as_of": pd.Timestamp("2021-01-01"),
        "recency_days": 10.0,
        "frequency_invoices": 1,
        "frequency_days": 1,
        "monetary_total": 10.0,
        "monetary_mean": 10.0,
        "tenure_days": 400.0,
        "overdue_ratio": np.nan,
    }
    return pd.DataFrame({**base, **columns})


def test_eight_rfm_segments_against_the_population_mean():
    # Means: recency 50, frequency 5.5, monetary 550. One customer per corner of the cube.
    pop = _population(
        recency_days=[10, 10, 90, 90, 10, 10, 90, 90],
        frequency_invoices=[10, 1, 10, 1, 10, 1, 10, 1],
        monetary_total=[1000, 1000, 1000, 1000, 100, 100, 100, 100],
    )
    seg = assign_segments(pop, RULES)
    assert seg["rfm_code"].tolist() == ["HHH", "HLH", "LHH", "LLH", "HHL", "HLL", "LHL", "LLL"]
    assert seg["rfm_segment"].tolist() == [
        "Important Value",
        "Important Development",
        "Important Retention",
        "Important Win-back",
        "General Value",
        "General Development",
        "General Retention",
        "General Win-back",
    ]


def test_rfm_scores_are_quintiles_with_5_best():
    pop = _population(recency_days=np.arange(10.0), frequency_invoices=np.arange(10), monetary_total=np.arange(10.0))
    seg = assign_segments(pop, RULES)
    assert seg["r_score"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert seg["f_score"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_segments_are_relative_to_each_cutoff():
    a = _population(monetary_total=[1.0, 2.0, 3.0, 4.0])
    b = a.assign(as_of=pd.Timestamp("2021-02-01"), monetary_total=[100.0, 200.0, 300.0, 400.0])
    seg = assign_segments(pd.concat([a, b], ignore_index=True), RULES)
    assert seg["m_score"].tolist()[:4] == seg["m_score"].tolist()[4:]


def test_lifecycle_stages():
    pop = _population(
        tenure_days=[30, 400, 400, 400, 400],
        recency_days=[5, 200, 40, 100, 20],
        frequency_days=[1, 3, 4, 1, 4],
        overdue_ratio=[np.nan, 5.0, 2.5, np.nan, 0.5],
    )
    assert lifecycle_stage(pop, RULES.lifecycle).tolist() == ["new", "lapsed", "at risk", "at risk", "active"]


def test_value_matrix_and_abc_tiers():
    pop = _population(
        frequency_invoices=[10, 10, 1, 1] * 5,
        monetary_mean=[100.0, 1.0, 100.0, 1.0] * 5,
        monetary_total=np.arange(20, 0, -1.0),
    )
    seg = assign_segments(pop, RULES)
    assert seg["value_matrix"].tolist()[:4] == ["premium", "frequent", "big-ticket", "uncertain"]
    tiers = abc_tier(pop, RULES.abc, segment_reference(pop, RULES)).tolist()
    assert tiers == ["A"] * 3 + ["B"] * 4 + ["C"] * 13  # top 15% of 20 = 3, next 20% = 4


def test_segment_rules_are_validated(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("rfm: {segments: {HHH: x}}\n")
    with pytest.raises(PropensityError, match="segment rules are invalid"):
        load_segment_rules(bad)


@pytest.mark.parametrize("method", ["kmeans", "two_step", "som"])
def test_clusters_find_planted_groups_and_reassign_identically(method):
    """K-Means, two-step clustering (BIRCH, then Ward merging) and a Kohonen map each recover three planted customer
    groups."""
    rng = np.random.default_rng(0)
    groups = [(5, 1, 20), (40, 8, 400), (200, 30, 5000)]
    rows = [
        (r * rng.uniform(0.9, 1.1), max(1, round(f * rng.uniform(0.9, 1.1))), m * rng.uniform(0.9, 1.1))
        for r, f, m in groups
        for _ in range(60)
    ]
    pop = _population(
        recency_days=[r for r, _, _ in rows],
        frequency_invoices=[f for _, f, _ in rows],
        monetary_total=[m for _, _, m in rows],
    )
    model = fit_clusters(pop, RULES.clusters.model_copy(update={"method": method}))
    labels = model.assign(pop)
    assert model.method == method
    assert len(model.centroids) == 3 and model.silhouette > 0.7
    # numbered by ascending spend: the planted groups in order
    assert labels.tolist() == [0] * 60 + [1] * 60 + [2] * 60
    again = ClusterModel.from_dict(model.to_dict())
    assert (again.assign(pop) == labels).all()


def test_ties_share_an_abc_tier():
    pop = _population(monetary_total=[50.0, 50.0, 50.0] + [1.0] * 17)
    assert abc_tier(pop, RULES.abc, segment_reference(pop, RULES)).tolist()[:3] == ["A"] * 3


def test_a_reference_population_places_single_rows_as_the_batch_does():
    rng = np.random.default_rng(3)
    n = 500
    pop = _population(
        recency_days=rng.integers(0, 365, n).astype(float),  # many ties: the mid-rank must match pandas
        frequency_invoices=rng.integers(1, 12, n),
        monetary_total=rng.gamma(2, 300, n).round(0),
        monetary_mean=rng.gamma(2, 50, n).round(1),
    )
    batch = assign_segments(pop, RULES)
    ref = segment_reference(pop, RULES)
    one_by_one = pd.concat([assign_segments(pop.iloc[[i]], RULES, reference=ref) for i in range(0, n, 7)])
    pd.testing.assert_frame_equal(one_by_one, batch.iloc[::7])
    scores = pop["recency_days"].rank(pct=True, ascending=False).mul(5).pipe(np.ceil).clip(1, 5).astype("int8")
    assert (batch["r_score"] == scores).all()


def test_rows_with_money_placed_against_an_event_logs_population_leave_the_value_segments_empty():
    """The REST service places a request against the latest batch's population: lines with amounts scored against a
    store loaded as an event log (no money) have no population to compare their spend with (it answered 500)."""
    events = _population(recency_days=[5.0, 50.0, 200.0], frequency_invoices=[9, 3, 1]).drop(
        columns=["monetary_total", "monetary_mean"]
    )
    ref = segment_reference(events, RULES)
    rows = _population(recency_days=[7.0, 300.0], frequency_invoices=[8, 1], monetary_total=[900.0, 5.0])
    placed = assign_segments(rows, RULES, reference=ref)
    for column in ("rfm_code", "rfm_segment", "m_score", "value_matrix", "abc_tier"):
        assert placed[column].isna().all(), column
    without_money = assign_segments(rows.drop(columns=["monetary_total", "monetary_mean"]), RULES, reference=ref)
    pd.testing.assert_frame_equal(placed, without_money)  # the rest placed as the same rows without their money
    assert placed["r_score"].tolist() == [5, 1] and placed["lifecycle"].notna().all()


def test_percentiles_of_a_large_population_are_those_of_pandas_ranks():
    """Past 1,024 rows the lookups run in sorted order (``_searchsorted``): the mid-rank percentiles are still
    pandas' ``rank(pct=True)``, ties, repeated values and missing values included."""
    rng = np.random.default_rng(7)
    x = np.round(rng.exponential(50.0, 5_000))  # many ties
    x[::17] = np.nan
    ref = segment_reference(_population(recency_days=x), RULES)
    got = ref.percentile("recency_days", pd.Series(x), higher_is_better=True)
    valid = ~np.isnan(x)
    want = pd.Series(x[valid]).rank(pct=True, method="average").to_numpy()
    np.testing.assert_allclose(got[valid] * len(x) / valid.sum(), want, rtol=1e-12)
