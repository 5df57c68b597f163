"""Every bad-input class is quarantined with its reason, and the counts always add up."""

from datetime import datetime

import duckdb
import pandas as pd
import pytest
from conftest import canonical_log

from features.build import build_features
from features.contract import load_mapping
from features.errors import PropensityError
from features.sources import Source
from features.validate import ingest

GOOD = {"customer_id": "1", "invoice_id": "i1", "ts": "2021-01-04 10:00:00", "quantity": "2", "unit_price": "1.5"}


def _rows(*changes: dict) -> pd.DataFrame:
    return pd.DataFrame([{**GOOD, "invoice_id": f"i{k}", **change} for k, change in enumerate(changes)])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"customer_id": ""}, "missing_customer_id"),
        ({"customer_id": "   "}, "missing_customer_id"),
        ({"ts": "not a date"}, "invalid_timestamp"),
        ({"ts": ""}, "invalid_timestamp"),
        ({"ts": "2999-01-01 00:00:00"}, "future_timestamp"),
        ({"quantity": "two"}, "invalid_quantity"),
        ({"quantity": "inf"}, "invalid_quantity"),
        ({"quantity": "0"}, "zero_quantity"),
        ({"unit_price": "NaN"}, "invalid_price"),
        ({"unit_price": "abc"}, "invalid_price"),
        ({"unit_price": "0"}, "nonpositive_price"),
        ({"unit_price": "-11062.06"}, "nonpositive_price"),
        ({"unit_price": "9.3e12"}, "implausible_amount"),  # would overflow the exact int64 micro-unit sums
        ({"quantity": "1e200", "unit_price": "1e200"}, "implausible_amount"),  # finite parts, infinite product
        ({"quantity": "-2000000000", "unit_price": "0.001"}, "implausible_amount"),
    ],
)
def test_each_bad_value_is_quarantined_with_its_reason(tmp_path, change, reason):
    tx, report = canonical_log(_rows({}, change, {}), tmp_path)
    assert report.by_reason == {reason: 1}
    assert (report.input_rows, report.accepted_rows, report.quarantined_rows) == (3, 2, 1)
    assert tx.count().execute() == 2


def test_quarantine_keeps_the_row_as_it_came_with_row_number(tmp_path):
    con = duckdb.connect()
    _rows({}, {"quantity": "two"}).to_csv(tmp_path / "q.csv", index=False)
    ingest(con, Source(tmp_path / "q.csv"), load_mapping("canonical"))
    row = con.execute("SELECT source_row, reason, quantity, invoice_id FROM quarantine").fetchall()
    assert row == [(2, "invalid_quantity", "two", "i1")]


def test_exact_duplicates_are_quarantined_but_the_first_is_kept(tmp_path):
    frame = pd.DataFrame([GOOD, GOOD, GOOD, {**GOOD, "quantity": "3"}])
    tx, report = canonical_log(frame, tmp_path)
    assert report.by_reason == {"duplicate_line": 2}
    assert tx.count().execute() == 2


def test_returns_are_kept_as_returns_not_purchases(tmp_path):
    frame = pd.DataFrame([GOOD, {**GOOD, "invoice_id": "C9", "quantity": "-1", "ts": "2021-01-05 10:00:00"}])
    tx, report = canonical_log(frame, tmp_path, preset="canonical")
    assert report.quarantined_rows == 0 and report.returns == 1
    got = build_features(tx, "2021-02-01").iloc[0]
    assert got["frequency_invoices"] == 1 and got["return_share_lines"] == 0.5 and got["net_spend_total"] == 1.5


def test_accounting_holds_on_a_mixed_dirty_log(tmp_path):
    frame = _rows({}, {"customer_id": ""}, {"ts": "x"}, {"unit_price": "0"}, {}, {"quantity": "-2"})
    frame = pd.concat([frame, frame.iloc[[0]]])
    _, report = canonical_log(frame, tmp_path)
    assert report.input_rows == len(frame) == report.accepted_rows + report.quarantined_rows
    assert report.by_reason == {
        "missing_customer_id": 1,
        "invalid_timestamp": 1,
        "nonpositive_price": 1,
        "duplicate_line": 1,
    }


def test_missing_required_column_is_one_clear_error(tmp_path):
    _rows({}).drop(columns="customer_id").to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(PropensityError, match=r"no column for customer_id"):
        ingest(duckdb.connect(), Source(tmp_path / "m.csv"), load_mapping("canonical"))


def test_no_amount_and_no_price_is_an_event_log_with_units_and_no_money(tmp_path):
    tx, report = canonical_log(_rows({}, {"quantity": "-1"}, {"quantity": "0"}).drop(columns="unit_price"), tmp_path)
    assert report.event_log and (report.accepted_rows, report.returns, report.by_reason) == (2, 1, {"zero_quantity": 1})
    assert "amount" not in tx.columns and sorted(tx.quantity.execute()) == [-1.0, 2.0]


@pytest.mark.parametrize("name", ["nope.csv", "data.json"])
def test_unreadable_or_unknown_file_is_one_clear_error(tmp_path, name):
    if name.endswith(".json"):
        (tmp_path / name).write_text("{}")
    with pytest.raises(PropensityError, match=r"does not exist|not one of CSV, Parquet, Excel or DuckDB"):
        ingest(duckdb.connect(), Source(tmp_path / name), load_mapping("canonical"))


def test_corrupt_parquet_is_one_clear_error(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(PropensityError, match=r"^Cannot read .*bad\.parquet: it is not a complete Parquet file"):
        ingest(duckdb.connect(), Source(tmp_path / "bad.parquet"), load_mapping("canonical"))


def test_log_without_invoices_or_products_still_works(tmp_path):
    frame = pd.DataFrame(
        {
            "customer_id": ["1", "1", "1", "2"],
            "ts": ["2021-01-04 10:00", "2021-01-04 10:00", "2021-01-09 10:00", "2021-01-05 08:00"],
            "amount": ["5", "7", "-2", "3"],
        }
    )
    tx, report = canonical_log(frame, tmp_path)
    assert report.accepted_rows == 4 and report.returns == 1
    got = build_features(tx, "2021-02-01").set_index("customer_id")
    # One invoice per customer and timestamp: customer 1 has two lines on one invoice, then a return.
    assert got.loc["1", "frequency_invoices"] == 1 and got.loc["1", "basket_lines_mean"] == 2.0
    assert got.loc["1", "monetary_total"] == 12.0 and got.loc["1", "net_spend_total"] == 10.0
    for left_out in ("distinct_products", "basket_units_mean", "main_country", "main_channel"):
        assert left_out not in got.columns


def test_online_retail_ii_spellings_and_cancellation_prefix(tmp_path):
    frame = pd.DataFrame(
        {
            "Invoice": ["536365", "C536379"],
            "StockCode": ["85123A", "D"],
            "Description": ["WHITE HANGING HEART", "Discount"],
            "Quantity": [6, -1],
            "InvoiceDate": ["2010-12-01 08:26:00", "2010-12-01 09:41:00"],
            "Price": [2.55, 27.5],
            "Customer ID": [17850.0, 14527.0],
            "Country": ["United Kingdom", "United Kingdom"],
        }
    )
    tx, report = canonical_log(frame, tmp_path, preset="online_retail")
    assert report.columns["customer_id"] == "Customer ID" and report.columns["unit_price"] == "Price"
    got = tx.order_by("ts").to_pandas()
    assert got["customer_id"].tolist() == ["17850", "14527"]
    assert got["is_return"].tolist() == [False, True]
    assert got["amount"].tolist() == pytest.approx([15.3, -27.5])


def test_semicolon_csv_with_declared_date_format(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("customer_id;ts;amount\n1;20210104;5.5\n2;20210231;3\n")
    con = duckdb.connect()
    mapping = load_mapping("canonical").model_copy(update={"ts_format": "%Y%m%d"})
    report = ingest(con, Source(path, delimiter=";"), mapping)
    assert report.accepted_rows == 1 and report.by_reason == {"invalid_timestamp": 1}
    assert report.first_ts == datetime(2021, 1, 4)


def test_excel_and_duckdb_sources(tmp_path):
    frame = _rows({}, {"customer_id": "2"})
    frame.to_excel(tmp_path / "log.xlsx", index=False)
    report = ingest(duckdb.connect(), Source(tmp_path / "log.xlsx"), load_mapping("canonical"))
    assert report.accepted_rows == 2

    db = duckdb.connect(str(tmp_path / "src.duckdb"))
    db.register("frame_view", frame)
    db.execute("CREATE TABLE sales AS SELECT * FROM frame_view")
    db.close()
    report = ingest(duckdb.connect(), Source(tmp_path / "src.duckdb", table="sales"), load_mapping("canonical"))
    assert report.accepted_rows == 2
    report = ingest(
        duckdb.connect(),
        Source(tmp_path / "src.duckdb", query="SELECT * FROM sales WHERE customer_id = '2'"),
        load_mapping("canonical"),
    )
    assert report.accepted_rows == 1
    with pytest.raises(PropensityError, match="--table or --query"):
        ingest(duckdb.connect(), Source(tmp_path / "src.duckdb"), load_mapping("canonical"))


def test_reingest_replaces_the_previous_log(tmp_path):
    con = duckdb.connect(str(tmp_path / "store.duckdb"))
    _rows({}, {}).to_csv(tmp_path / "a.csv", index=False)
    _rows({}).to_csv(tmp_path / "b.csv", index=False)
    ingest(con, Source(tmp_path / "a.csv"), load_mapping("canonical"))
    ingest(con, Source(tmp_path / "a.csv"), load_mapping("canonical"))
    assert con.execute("SELECT count(*) FROM transactions").fetchall()[0][0] == 2
    ingest(con, Source(tmp_path / "b.csv"), load_mapping("canonical"))
    assert con.execute("SELECT count(*) FROM transactions").fetchall()[0][0] == 1


def test_a_load_that_mostly_fails_keeps_the_good_store_and_names_the_fix(tmp_path):
    from features.transactions import ingest_into_store, open_store_log

    store = tmp_path / "store.duckdb"
    good = _rows({}, {}, {})
    good.to_csv(tmp_path / "good.csv", index=False)
    assert ingest_into_store(store, Source(tmp_path / "good.csv"), load_mapping("canonical")).accepted_rows == 3
    day_first = _rows({"ts": "13/01/2021 10:00"}, {"ts": "14/01/2021 11:00"}, {"ts": "2021-01-15 12:00:00"})
    day_first.to_csv(tmp_path / "changed.csv", index=False)
    with pytest.raises(
        PropensityError, match=r"Only 1 of 3 rows .* invalid_timestamp \(2 rows, e.g. '13/01/2021.*--ts-format"
    ):
        ingest_into_store(store, Source(tmp_path / "changed.csv"), load_mapping("canonical"))
    with open_store_log(store) as log:
        assert log.table.count().execute() == 3  # the good log is still there
    report = ingest_into_store(store, Source(tmp_path / "changed.csv"), load_mapping("canonical"), 0.3)
    assert (report.accepted_rows, report.quarantined_rows) == (1, 2)  # a lower bar, asked for, loads it
    (tmp_path / "empty.csv").write_text("customer_id,invoice_id,ts,quantity,unit_price\n")
    with pytest.raises(PropensityError, match="holds no rows"):
        ingest_into_store(store, Source(tmp_path / "empty.csv"), load_mapping("canonical"))


def test_a_feature_table_with_no_customer_is_refused_not_written(tmp_path):
    from features.cutoffs import Horizons
    from features.store import store_path
    from features.transactions import ingest_into_store, write_feature_table

    _rows({}, {}).to_csv(tmp_path / "log.csv", index=False)
    ingest_into_store(store_path(tmp_path), Source(tmp_path / "log.csv"), load_mapping("canonical"))
    out = tmp_path / "features.parquet"
    with pytest.raises(PropensityError, match=r"No customer bought in the 365 days before 2030-01-01 .*2 valid lines"):
        write_feature_table(tmp_path, [datetime(2030, 1, 1).date()], out, Horizons(), with_labels=False)
    assert not out.exists()
    frame = write_feature_table(tmp_path, [datetime(2021, 2, 1).date()], out, Horizons(), with_labels=False)
    assert len(frame) == 1 and out.exists()


def test_ids_lose_unicode_whitespace_and_zero_width_characters_everywhere(tmp_path):
    frame = _rows(
        {"customer_id": "14557"},
        {"customer_id": "\t14557"},  # a tab is not a second customer
        {"customer_id": "\u200b14557\u00a0"},  # nor a zero-width space or a no-break space
        {"customer_id": "\t"},  # and a tab alone is no customer at all
    )
    tx, report = canonical_log(frame, tmp_path)
    assert report.by_reason == {"missing_customer_id": 1}
    assert tx.customer_id.execute().tolist() == ["14557"] * 3


def test_utc_offsets_become_utc_and_naive_times_are_taken_as_utc(tmp_path):
    frame = _rows(
        {"ts": "2011-01-12 12:15-08:00"},
        {"ts": "2011-01-12T12:15:00Z"},
        {"ts": "2011-01-12 12:15:00+05:30"},
        {"ts": "2011-01-12 12:15:00"},
        {"ts": "2011-01-12"},
    )
    tx, report = canonical_log(frame, tmp_path)
    assert report.accepted_rows == 5
    got = sorted(tx.ts.execute().dt.strftime("%Y-%m-%d %H:%M").tolist())
    assert got == ["2011-01-12 00:00", "2011-01-12 06:45", "2011-01-12 12:15", "2011-01-12 12:15", "2011-01-12 20:15"]
