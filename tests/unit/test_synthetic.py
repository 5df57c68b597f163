"""The synthetic generator: seeded, realistic structure, close to the requested size."""

import numpy as np
import pyarrow.compute as pc

from features.synthetic import SyntheticConfig, generate, generate_lines


def test_same_seed_same_log_and_another_seed_differs():
    a, b = generate(SyntheticConfig(n_customers=300, seed=1)), generate(SyntheticConfig(n_customers=300, seed=1))
    assert a.equals(b)
    assert not a.equals(generate(SyntheticConfig(n_customers=300, seed=2)))


def test_structure_is_retail_like():
    log = generate(SyntheticConfig(n_customers=3000, seed=3)).to_pandas()
    sales = log[log["quantity"] > 0]
    lines_per_invoice = sales.groupby("invoice_id").size()
    invoices_per_customer = sales.groupby("customer_id")["invoice_id"].nunique()
    assert lines_per_invoice.mean() > 3  # several lines per invoice
    assert (
        invoices_per_customer.min() >= 1 and invoices_per_customer.max() > 10 * invoices_per_customer.median()
    )  # heterogeneous rates
    returns = log[log["quantity"] < 0]
    assert 0.005 < len(returns) / len(log) < 0.05 and returns["invoice_id"].str.startswith("C").all()
    assert log["ts"].min() >= np.datetime64("2022-01-01") and log["ts"].max() < np.datetime64("2024-01-01")
    by_month = sales.groupby(sales["ts"].dt.month)["invoice_id"].nunique()
    assert by_month[11] > by_month[5]  # seasonality peaks in November
    assert log.duplicated().sum() == 0


def test_requested_line_count_is_met_within_a_few_percent():
    n = generate_lines(200_000, seed=5).num_rows
    assert abs(n - 200_000) / 200_000 < 0.06


def test_dirty_share_adds_invalid_lines():
    log = generate(SyntheticConfig(n_customers=300, seed=1, dirty_share=0.01))
    assert pc.sum(pc.is_null(log["customer_id"])).as_py() > 0
    assert pc.sum(pc.equal(log["unit_price"], 0.0)).as_py() > 0
