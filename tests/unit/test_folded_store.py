"""The store's folds (features.folded): a build from them gives exactly what a build from the lines gives."""

import io
from datetime import date

import duckdb
import pandas as pd
import pytest
from conftest import DOZEN_CSV

from features.build import build_features, build_training_table, labels_expr
from features.contract import load_mapping
from features.cutoffs import Horizons
from features.folded import stored_folds
from features.folds import product_firsts
from features.sources import Source
from features.transactions import TransactionLog, ingest_into_store, open_store_log

CUTOFFS = [date(2023, 3, 1), date(2023, 6, 1), date(2023, 9, 1)]
H = Horizons(churn_horizon_days=60, purchase_horizon_days=30, lookback_days=365)


def _store(tmp_path, source: Source, preset: str = "canonical"):
    path = tmp_path / "propensity.duckdb"
    ingest_into_store(path, source, load_mapping(preset), min_accepted_share=0.0)
    return path


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(want) > 0
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, atol=0)


def test_builds_from_the_folds_equal_builds_from_the_lines(small_synthetic, tmp_path):
    _, _, parquet = small_synthetic
    with open_store_log(_store(tmp_path, Source(parquet))) as log:
        assert log.folded is not None and log.source is log.folded
        assert log.folded.customers.count().execute() == log.table.customer_id.nunique().execute()
        _same(build_features(log.source, CUTOFFS), build_features(log.table, CUTOFFS))
        _same(build_features(log.source, CUTOFFS[1]), build_features(log.table, CUTOFFS[1]))  # with deviation
        _same(build_training_table(log.source, CUTOFFS, H), build_training_table(log.table, CUTOFFS, H))
        by_key = ["customer_id", "as_of"]
        folded = labels_expr(log.source, CUTOFFS, H).to_pandas().sort_values(by_key, ignore_index=True)
        lines = labels_expr(log.table, CUTOFFS, H).to_pandas().sort_values(by_key, ignore_index=True)
        _same(folded, lines)


def test_folded_sums_are_stored_as_64_bit_integers(small_synthetic, tmp_path):
    _, _, parquet = small_synthetic
    con = duckdb.connect(str(_store(tmp_path, Source(parquet))), read_only=True)
    try:
        types = dict(con.execute("SELECT table_name || '.' || column_name, data_type FROM duckdb_columns()").fetchall())
    finally:
        con.close()
    sums = ["sale_lines", "return_lines", "sale_value", "return_value", "sale_units"]
    folded = [f"folded_events.{c}" for c in sums] + ["folded_days.day_spend"]
    folded += ["folded_product_times.new", "folded_product_times.again"]
    assert {c: types[c] for c in folded} == dict.fromkeys(folded, "BIGINT")  # DuckDB's own sum would be HUGEINT


def test_an_event_log_folds_without_money_or_products(tmp_path):
    frame = pd.read_csv(io.StringIO(DOZEN_CSV), dtype=str).drop(columns=["unit_price", "product_id"])
    frame["quantity"] = frame["quantity"].str.replace("-", "")  # an event log has no returns
    path = tmp_path / "events.csv"
    frame.to_csv(path, index=False)
    with open_store_log(_store(tmp_path, Source(path))) as log:
        assert log.folded is not None and log.folded.products is None
        assert "amount" not in log.folded.columns
        cut = [date(2021, 2, 1), date(2021, 3, 1)]
        got = build_features(log.source, cut)
        assert "monetary_total" not in got.columns and "distinct_products" not in got.columns
        _same(got, build_features(log.table, cut))


@pytest.mark.parametrize("change", ["DELETE FROM transactions WHERE customer_id = 'A'", "DROP TABLE folded_info"])
def test_folds_that_no_longer_describe_the_log_are_not_used(tmp_path, change):
    frame = pd.read_csv(io.StringIO(DOZEN_CSV), dtype=str)
    path = tmp_path / "dozen.csv"
    frame.to_csv(path, index=False)
    store = _store(tmp_path, Source(path))
    con = duckdb.connect(str(store))
    assert stored_folds(con) is not None
    con.execute(change).fetchall()
    assert stored_folds(con) is None
    log = TransactionLog.on(con)
    assert log.source is log.table
    built = set(build_features(log.source, date(2021, 3, 1))["customer_id"])
    assert built == ({"B", "C"} if change.startswith("DELETE") else {"A", "B", "C"})
    con.close()


def _sixth_session_products(con) -> None:
    """Replace the product times with the customer x product firsts that the sixth and seventh sessions stored."""
    import ibis

    backend = ibis.duckdb.from_connection(con)
    tx, ids = backend.table("transactions"), backend.table("folded_customers")
    keyed = tx.join(ids, "customer_id").select(
        *(ids.customer_key.name("customer_id") if c == "customer_id" else tx[c] for c in tx.columns)
    )
    firsts = product_firsts(keyed).drop("product_id")
    con.execute(f"CREATE TABLE folded_products AS {backend.compile(firsts)}")
    con.execute("DROP TABLE folded_product_times")


def _eighth_session_sums(con) -> None:
    """Widen the folded sums to the 128-bit integers that the code up to the eighth session stored."""
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE table_name LIKE 'folded_%' AND data_type = 'BIGINT'"
        " AND column_name NOT IN ('customer_id', 'customer_key', 'ts_s', 'day', 'gap', 'lines')"
    ).fetchall():
        con.execute(f"ALTER TABLE {table} ALTER {column} TYPE HUGEINT")


@pytest.mark.parametrize("version", ["no purchase days", "customer x product firsts", "128-bit sums"])
def test_folds_written_by_earlier_versions_are_read(small_synthetic, tmp_path, version):
    """A store folded by an earlier version still builds from its folds: without purchase days (the sixth session's)
    they are derived from the stored events; with the customer x product firsts instead of the product times (the
    sixth and seventh sessions'), the times are derived from the firsts; 128-bit sums (up to the eighth session's)
    are read as they are. The features, column types included, are those of the lines."""
    _, _, parquet = small_synthetic
    store = _store(tmp_path, Source(parquet))
    con = duckdb.connect(str(store))
    try:
        assert con.execute("SELECT count(*) FROM folded_days").fetchall()[0][0] > 0
        if version != "128-bit sums":
            con.execute("DROP TABLE folded_days")
        if version == "customer x product firsts":
            _sixth_session_products(con)
        if version == "128-bit sums":
            _eighth_session_sums(con)
            assert con.execute("SELECT data_type FROM duckdb_columns() WHERE column_name = 'new'").fetchall() == [
                ("HUGEINT",)
            ]
        log = TransactionLog.on(con)
        assert log.source is log.folded and log.folded.products is not None
        _same(build_features(log.source, CUTOFFS[1]), build_features(log.table, CUTOFFS[1]))
        _same(build_features(log.source, CUTOFFS), build_features(log.table, CUTOFFS))
    finally:
        con.close()
