"""Key-indicator alerts: each threshold's edge, missing values, several alerts, the configured defaults."""

import numpy as np
import pandas as pd
import pytest

from serving.alerts import Indicator, alert_counts, alerts, load_indicators


def test_an_alert_is_raised_at_the_threshold_and_beyond_never_short_of_it_or_on_a_missing_value():
    rules = {
        "overdue": Indicator(column="overdue_ratio", at_least=2.0, text="overdue {value:.1f}x"),
        "drop": Indicator(column="spend_trend", at_most=-0.5, text="spend {value:.0%}"),
    }
    features = pd.DataFrame(
        {
            "overdue_ratio": [1.999, 2.0, 3.5, np.nan, 2.5],
            "spend_trend": [-0.49, -0.5, 0.2, -1.0, np.nan],
        }
    )
    assert alerts(features, rules).tolist() == [
        None,
        "overdue 2.0x; spend -50%",
        "overdue 3.5x",
        "spend -100%",
        "overdue 2.5x",
    ]
    scores = features.assign(p_churn=[0.1, 0.9, 0.7, 0.8, 0.6], value_at_risk=[1.0, 10.0, 20.0, 30.0, 40.0])
    counts = alert_counts(scores, rules).set_index("alert")
    assert counts.loc["overdue", "customers"] == 3 and counts.loc["overdue", "value at risk"] == 70.0
    assert counts.loc["drop", "customers"] == 2 and counts.loc["drop", "rule"] == "spend_trend <= -0.5"


def test_an_indicator_whose_column_the_rows_lack_raises_nothing_and_a_rule_needs_one_threshold():
    rules = {"returns": Indicator(column="return_share_value", at_least=0.3, text="returns {value:.0%}")}
    assert alerts(pd.DataFrame({"overdue_ratio": [9.0]}), rules).tolist() == [None]  # an event log: no money
    with pytest.raises(ValueError, match="exactly one"):
        Indicator(column="x", at_least=1, at_most=2, text="")


def test_the_configured_indicators_load_and_read_features_of_the_catalogue():
    from features.definitions import FEATURES

    indicators = load_indicators()
    assert {"overdue", "spend_drop", "returns", "silence_deviation", "spend_deviation"} <= set(indicators)
    assert {i.column for i in indicators.values()} <= {f.name for f in FEATURES}


def test_deviation_alerts_fire_at_a_robust_z_of_three_and_a_half():
    """The configured deviation indicators: a long silence or a low last spend against the customer's own habit."""
    indicators = load_indicators()
    deviation = {k: indicators[k] for k in ("silence_deviation", "spend_deviation")}
    features = pd.DataFrame({"gap_deviation": [3.49, 3.5, -9.0, np.nan], "spend_deviation": [0.0, -3.5, -3.49, -4.0]})
    assert alerts(features, deviation).tolist() == [
        None,
        "silent far beyond their usual gap (robust z +3.5); last purchase far below their usual spend (robust z -3.5)",
        None,
        "last purchase far below their usual spend (robust z -4.0)",
    ]
