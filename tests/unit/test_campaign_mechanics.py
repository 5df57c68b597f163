"""Campaign mechanics without a store: the stratified control group, the intervals, the detectable effect."""

import numpy as np
import pandas as pd
import pytest

from features.errors import PropensityError
from serving.campaign_eval import minimum_detectable_effect, newcombe
from serving.campaigns import draw_control, strata


def _plan(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [str(i) for i in range(n)],
            "p_churn": rng.uniform(size=n),
            "rfm_segment": rng.choice(["At Risk", "Loyal", "Lost"], n),
            "lifecycle": "active",
        }
    )


def test_the_control_group_is_stratified_reproducible_and_named():
    plan = _plan()
    held = draw_control(plan, 0.1, "spring", seed=0)
    groups = strata(plan)
    assert groups.str.startswith("d1|").sum() == 100  # deciles of the eligible population's risk
    assert plan.loc[groups.str.startswith("d1|"), "p_churn"].min() > plan["p_churn"].quantile(0.89)
    for stratum in groups.unique():
        n = (groups == stratum).sum()
        assert abs(held[groups == stratum].sum() - 0.1 * n) < 1  # the share, rounded at random
    assert abs(held.mean() - 0.1) < 0.02
    assert (draw_control(plan, 0.1, "spring", seed=0) == held).all()  # the same campaign draws the same group
    assert (draw_control(plan, 0.1, "summer", seed=0) != held).any()
    with pytest.raises(PropensityError, match="share"):
        draw_control(plan, 1.5, "x")


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339
    d, low, high = newcombe(56, 70, 48, 80)
    assert d == pytest.approx(0.2, abs=1e-12)
    assert low == pytest.approx(0.0524, abs=5e-5) and high == pytest.approx(0.3339, abs=5e-5)


def test_the_detectable_effect_shrinks_with_the_holdout():
    # (1.96 + 0.8416) x sqrt(0.25 x (1/1000 + 1/1000)) = 0.0626
    assert minimum_detectable_effect(0.5, 1000, 1000) == pytest.approx(0.0626, abs=1e-4)
    assert minimum_detectable_effect(0.5, 1800, 200) > minimum_detectable_effect(0.5, 1000, 1000)


def test_a_log_without_amounts_gets_retention_figures_and_no_value_interval():
    import warnings

    from serving.campaign_eval import _compare

    group = pd.DataFrame(
        {"group": ["treated"] * 50 + ["control"] * 50, "churned": [False] * 30 + [True] * 20 + [True] * 50}
    ).assign(spend=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no degenerate-bootstrap warning
        row = _compare(group, 0.0, seed=0)
    assert row["incremental retention"] == pytest.approx(0.6) and "value low" not in row
