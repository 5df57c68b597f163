"""The value task's pieces: Gamma-Gamma and BG/NBD expectations against simulations, the CLV formula by hand,
the value metrics on orderings whose answer is known."""

import numpy as np
import pandas as pd
import pytest

from models.value import (
    BGNBDGammaGamma,
    HistoricRate,
    ValueSettings,
    bgnbd_expected_purchases,
    clv,
    fit_gamma_gamma,
    gamma_gamma_expected_spend,
)
from training.metrics import decile_table, normalized_gini, value_metrics

CDNOW_BGNBD = (0.243, 4.414, 0.793, 2.426)  # Fader, Hardie & Lee 2005
CDNOW_GAMMA_GAMMA = (6.25, 3.74, 15.44)  # Fader, Hardie & Lee, the Gamma-Gamma note


def test_gamma_gamma_recovers_the_published_cdnow_parameters_from_a_simulation():
    rng = np.random.default_rng(2)
    p, q, gamma = CDNOW_GAMMA_GAMMA
    n = 20_000
    x = 1 + rng.poisson(2.5, n)
    nu = rng.gamma(q, 1 / gamma, n)  # each customer's scale of spend
    m = rng.gamma(p * x, 1 / (nu * x))  # the mean of x spends ~ Gamma(p, nu)
    est = fit_gamma_gamma(x, m)
    # p and gamma trade off along a ridge of the likelihood; q and the population mean p*gamma/(q-1) are sharp
    assert est[0] == pytest.approx(p, rel=0.15) and est[2] == pytest.approx(gamma, rel=0.15)
    assert est[1] == pytest.approx(q, rel=0.05)
    assert est[0] * est[2] / (est[1] - 1) == pytest.approx(p * gamma / (q - 1), rel=0.03)


def test_gamma_gamma_expected_spend_shrinks_a_customer_mean_towards_the_population_mean():
    params = CDNOW_GAMMA_GAMMA
    population = params[0] * params[2] / (params[1] - 1)
    few, many = gamma_gamma_expected_spend(params, np.array([1.0, 50.0]), np.array([100.0, 100.0]))
    assert population < few < many < 100  # more transactions: closer to the customer's own mean
    assert gamma_gamma_expected_spend(params, np.array([0.0]), np.array([np.nan]))[0] == pytest.approx(population)


def test_bgnbd_expected_purchases_match_a_simulation_of_the_model():
    """Conditional expectations (eq. 10, with CDNOW's a < 1) against the mean of simulated customers with that
    history: 39 weeks observed, the next 39 predicted."""
    rng = np.random.default_rng(0)
    r, alpha, a, b = CDNOW_BGNBD
    n, T, H = 200_000, 38.0, 39.0
    lam, drop = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    x, t_x, y = np.zeros(n), np.zeros(n), np.zeros(n)
    t, alive = np.zeros(n), np.ones(n, bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        t[idx] += rng.exponential(1 / lam[idx])
        past = t[idx] > T + H
        alive[idx[past]] = False
        idx = idx[~past]
        seen = t[idx] <= T
        x[idx[seen]] += 1
        t_x[idx[seen]] = t[idx[seen]]
        y[idx[~seen]] += 1
        alive[idx[rng.random(len(idx)) < drop[idx]]] = False
    for count, lo, hi in ((0, 0, 0), (2, 25, 35), (5, 30, 38)):
        group = (x == count) & (t_x >= lo) & (t_x <= hi)
        expected = bgnbd_expected_purchases(CDNOW_BGNBD, [count], [t_x[group].mean()], [T], H)[0]
        se = y[group].std() / np.sqrt(group.sum())
        assert abs(expected - y[group].mean()) < 3 * se + 0.02 * y[group].mean()


def test_clv_by_hand():
    settings = ValueSettings(gross_margin=0.3, discount_rate_annual=0.1, duration_months=12, contact_cost=25.0)
    # 900 over 90 days: 304.375 a month; sum over k = 1..12 of 1.1^(-k/12) = 11.4004878
    assert clv([900.0], 90, settings)[0] == pytest.approx(0.3 * 304.375 * 11.4004878 - 25, abs=1e-4)
    flat = ValueSettings(gross_margin=0.5, discount_rate_annual=0.0, duration_months=2, contact_cost=10.0)
    assert clv([900.0], 90, flat)[0] == pytest.approx(0.5 * 304.375 * 2 - 10)
    assert clv([0.0], 30, flat)[0] == pytest.approx(-10.0)  # the cost remains when nothing is bought


def test_value_settings_refuse_impossible_values():
    with pytest.raises(ValueError):
        ValueSettings(gross_margin=1.5)
    with pytest.raises(ValueError):
        ValueSettings(duration_months=0)


def test_normalized_gini_on_known_orderings():
    rng = np.random.default_rng(1)
    y = rng.gamma(0.5, 100, 20_000) * (rng.random(20_000) < 0.4)
    assert normalized_gini(y, y) == pytest.approx(1.0)
    assert normalized_gini(y, -y) < -0.9
    assert abs(normalized_gini(y, rng.random(20_000))) < 0.05  # SE about 0.01


def test_decile_table_and_total_error_add_up():
    y = np.arange(100, dtype=float)
    pred = 1.1 * y
    table = decile_table(y, pred)
    assert list(table["decile"]) == list(range(1, 11)) and (table["customers"] == 10).all()
    assert table["realised"].sum() == pytest.approx(y.sum()) and table["realised"].is_monotonic_decreasing
    m = value_metrics(y, pred)
    assert m["total_error"] == pytest.approx(0.1) and m["spearman"] == pytest.approx(1.0)
    assert m["decile_mape"] == pytest.approx(0.1)


def test_value_baselines_on_feature_rows():
    rows = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"] * 5,
            "btyd_frequency": [0.0, 3, 8, 1] * 5,
            "btyd_recency": [0.0, 100, 300, 20] * 5,
            "btyd_T": [50.0, 200, 320, 300] * 5,
            "frequency_days": [1.0, 4, 9, 2] * 5,
            "net_spend_total": [30.0, 400, 2700, 60] * 5,
            "tenure_days": [50.0, 200, 320, 300] * 5,
        }
    )
    assert HistoricRate(90).fit(rows).predict(rows)[:4] == pytest.approx([54.0, 180.0, 2700 / 320 * 90, 18.0])
    many = pd.concat([rows.assign(customer_id=rows["customer_id"] + str(i)) for i in range(10)], ignore_index=True)
    model = BGNBDGammaGamma(90).fit(many)
    pred = model.predict(rows.head(4))
    assert np.isfinite(pred).all() and (pred >= 0).all()
    assert pred[2] == pred.max()  # the frequent, recent, big spender
