"""Nothing at or after as_of can change a feature; row order changes nothing."""

from datetime import date, datetime, timedelta

import duckdb
import ibis
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import build_features, build_training_table

AS_OF = date(2021, 6, 1)
BASE = datetime(2020, 6, 1)
RAW = duckdb.connect()
CON = ibis.duckdb.from_connection(RAW)

line = st.fixed_dictionaries(
    {
        "customer_id": st.sampled_from(["a", "b", "c", "d"]),
        "invoice_id": st.sampled_from([f"i{i}" for i in range(8)]),
        "minutes": st.integers(0, 500 * 24 * 60),  # 2020-06-01 .. 2021-10-14
        "quantity": st.integers(-3, 6).filter(lambda q: q != 0),
        "unit_price": st.sampled_from([0.5, 1.0, 2.25, 10.0]),
        "product_id": st.sampled_from(["p", "q", "r"]),
        "country": st.sampled_from(["UK", "FR"]),
        "channel": st.sampled_from(["web", "store"]),
    }
)


def _table(rows: list[dict]) -> ibis.Table:
    columns = ["customer_id", "invoice_id", "minutes", "quantity", "unit_price", "product_id", "country", "channel"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["ts"] = pd.to_datetime(BASE) + pd.to_timedelta(frame["minutes"].astype("int64"), unit="min")
    frame["quantity"] = frame["quantity"].astype(float)
    frame["unit_price"] = frame["unit_price"].astype(float)
    frame["is_return"] = frame["quantity"] < 0
    frame["amount"] = frame["quantity"] * frame["unit_price"]
    frame["invoice_id"] = frame["customer_id"] + frame["invoice_id"]
    frame = frame.drop(columns="minutes")
    RAW.register("frame_view", frame)
    RAW.execute("CREATE OR REPLACE TABLE tx AS SELECT * FROM frame_view")
    return CON.table("tx")


def _cutoff_minutes() -> int:
    return int((datetime.combine(AS_OF, datetime.min.time()) - BASE) / timedelta(minutes=1))


def _before(rows):
    return [r for r in rows if r["minutes"] < _cutoff_minutes()]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(line, min_size=1, max_size=25), later=st.lists(line, max_size=15))
def test_lines_at_or_after_as_of_never_change_features(rows, later):
    cutoff = _cutoff_minutes()
    # Whatever happens at or after as_of (added, removed, changed): move every "later" line there.
    future = [dict(r, minutes=cutoff + r["minutes"] % (120 * 24 * 60)) for r in later]
    only_past = build_features(_table(_before(rows)), AS_OF)
    with_future = build_features(_table(rows + future), AS_OF)
    pd.testing.assert_frame_equal(only_past, with_future)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(line, min_size=1, max_size=25), seed=st.integers(0, 10_000))
def test_row_order_does_not_matter(rows, seed):
    shuffled = pd.DataFrame(rows).sample(frac=1.0, random_state=seed).to_dict("records")
    pd.testing.assert_frame_equal(build_features(_table(rows), AS_OF), build_features(_table(shuffled), AS_OF))


def test_a_line_exactly_at_as_of_is_not_a_feature_input():
    rows = [
        {
            "customer_id": "a",
            "invoice_id": "i1",
            "minutes": _cutoff_minutes() - 60,
            "quantity": 1,
            "unit_price": 1.0,
            "product_id": "p",
            "country": "UK",
            "channel": "web",
        },
        {
            "customer_id": "a",
            "invoice_id": "i2",
            "minutes": _cutoff_minutes(),
            "quantity": 5,
            "unit_price": 10.0,
            "product_id": "q",
            "country": "FR",
            "channel": "store",
        },
    ]
    got = build_features(_table(rows), AS_OF).iloc[0]
    assert got["frequency_invoices"] == 1 and got["monetary_total"] == 1.0 and got["distinct_products"] == 1
    assert got["recency_days"] == 1 / 24 and got["main_country"] == "UK"


def test_reruns_and_row_order_give_bit_identical_features_and_labels(tmp_path):
    """Parallel floating-point sums change with the thread schedule; money and units are summed exactly."""
    import pyarrow.parquet as pq

    from features.contract import load_mapping
    from features.sources import Source
    from features.synthetic import SyntheticConfig, generate
    from features.validate import ingest

    path = tmp_path / "log.parquet"
    pq.write_table(generate(SyntheticConfig(n_customers=1500, seed=5)), path)
    raw = duckdb.connect()
    raw.execute("SET threads = 4")
    ingest(raw, Source(path), load_mapping("canonical"))
    raw.execute("CREATE TABLE shuffled AS SELECT * FROM transactions ORDER BY hash(customer_id, ts, amount)")
    con = ibis.duckdb.from_connection(raw)
    cutoffs = [date(2023, 6, 1), date(2023, 9, 1)]
    first = build_training_table(con.table("transactions"), cutoffs)
    assert len(first) > 1000 and first["monetary_total"].gt(0).all()
    for table in ("transactions", "transactions", "shuffled"):
        pd.testing.assert_frame_equal(first, build_training_table(con.table(table), cutoffs), check_exact=True)


def test_prepared_feature_query_refilled_many_times_gives_the_batch_features(small_synthetic):
    """The REST service's query is prepared once and refilled per batch.

    A stale plan (say, one bound to the first batch's rows or cutoffs) would show here as a
    difference from ``build_features``.
    """
    from features.compiled import CompiledFeatures

    table, _, _ = small_synthetic
    con = duckdb.connect(config={"threads": 1})
    con.register("log_frame", table.to_pyarrow())
    con.execute("CREATE TABLE log AS SELECT * FROM log_frame")
    query = CompiledFeatures(con, "log", "rest")
    customers = [row[0] for row in con.execute("SELECT DISTINCT customer_id FROM log ORDER BY 1").fetchall()]
    batches = [
        (customers[:40], [date(2023, 6, 1)]),
        (customers[40:45], [date(2023, 9, 1), date(2023, 3, 1)]),
        (customers[:400], [date(2023, 12, 1)]),
        (
            build_features(table, [date(2023, 6, 1)])["customer_id"].iloc[[7]].tolist(),
            [date(2023, 6, 1)],
        ),  # one customer
        (customers[45:60], [date(2023, 6, 1)]),  # the same cutoffs again: the table is kept, the lines are new
    ]
    for chosen, cutoffs in batches:
        query.load(con, f"SELECT * FROM log WHERE customer_id IN ({', '.join(repr(c) for c in chosen)})")
        query.set_cutoffs(con, cutoffs)
        got = query.run(con)
        want = build_features(table.filter(table.customer_id.isin(chosen)), cutoffs, scoring_features=True)
        assert len(want) > 0
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    query.close(con)


def test_scoring_only_features_of_the_population_do_not_depend_on_who_else_is_computed(small_synthetic):
    """``build_features`` computes the scoring-only features only for customers with a purchase day in the look-back;
    the one-query expression (the REST service's) computes them for every customer, then keeps the population."""
    from features.compiled import CompiledFeatures

    table, _, _ = small_synthetic
    cutoff = date(2023, 9, 1)
    con = duckdb.connect(config={"threads": 1})
    con.register("log_frame", table.to_pyarrow())
    con.execute("CREATE TABLE log AS SELECT * FROM log_frame")
    query = CompiledFeatures(con, "log", "short", lookback_days=60)
    query.load(con, "SELECT * FROM log")
    query.set_cutoffs(con, [cutoff])
    got = query.run(con)
    want = build_features(table, [cutoff], lookback_days=60)
    bought_before = con.execute("SELECT count(DISTINCT customer_id) FROM log WHERE ts < ?", [cutoff]).fetchone()[0]
    assert 0 < len(want) < bought_before / 2  # most customers are left out of the restricted query
    assert want["gap_deviation"].notna().any() and want["spend_deviation"].notna().any()
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_a_build_past_the_memory_limit_is_one_sentence_naming_the_setting():
    import duckdb
    import ibis

    from features.errors import PropensityError
    from features.synthetic import generate_lines

    con = duckdb.connect(config={"threads": 1})
    con.register("raw", generate_lines(100_000, seed=1))
    con.execute(
        "CREATE TABLE transactions AS SELECT customer_id, invoice_id, ts, quantity, unit_price, quantity * unit_price "
        "AS amount, quantity < 0 AS is_return, CAST(product_id AS VARCHAR) AS product_id FROM raw"
    )
    con.execute("SET memory_limit = '1MB'")
    with pytest.raises(PropensityError, match=r"more than DuckDB's memory limit \(.*KiB\): set PROPENSITY_DUCKDB"):
        build_features(ibis.duckdb.from_connection(con).table("transactions"), [date(2023, 6, 1)])
