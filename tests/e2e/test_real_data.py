"""Integration test on the real UCI Online Retail log (skipped when ../shared is absent)."""

from datetime import date

import duckdb
import ibis
import pytest
from conftest import SHARED_RETAIL

from features.build import build_training_table
from features.contract import load_mapping
from features.cutoffs import Horizons
from features.sources import Source
from features.validate import ingest

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not SHARED_RETAIL.exists(), reason="../shared/data/online_retail is not present"),
]


@pytest.fixture(scope="module")
def retail():
    con = duckdb.connect()
    report = ingest(con, Source(SHARED_RETAIL), load_mapping("online_retail"))
    return ibis.duckdb.from_connection(con).table("transactions"), report


def test_every_row_is_accounted_for(retail):
    _, report = retail
    assert report.input_rows == 541_909
    assert report.accepted_rows + report.quarantined_rows == 541_909
    # SOURCE.md: 135,080 rows without a customer. Among the rest, the well-known 5,225 exact
    # duplicate lines and 40 zero-price lines.
    assert report.by_reason == {"missing_customer_id": 135_080, "duplicate_line": 5_225, "nonpositive_price": 40}
    assert report.accepted_rows == 401_564
    assert str(report.first_ts) == "2010-12-01 08:26:00" and str(report.last_ts) == "2011-12-09 12:50:00"


def test_hand_checked_customers(retail):
    tx, _ = retail
    table = build_training_table(tx, [date(2011, 9, 1)], Horizons()).set_index("customer_id")
    # 12346 bought 74,215 units for 77,183.60 on 2011-01-18 10:01 and cancelled them the same day.
    c = table.loc["12346"]
    assert c["frequency_invoices"] == 1 and c["monetary_total"] == pytest.approx(77_183.60)
    assert c["net_spend_total"] == pytest.approx(0.0) and c["return_share_value"] == 0.5
    assert c["recency_days"] == pytest.approx(226 - (10 + 1 / 60) / 24)
    assert c["churn"] == 1 and c["purchase"] == 0
    # 12347 (Iceland): invoices on 2010-12-07, 2011-01-26, 04-07, 06-09, 08-02 (08:48), then 10-31.
    c = table.loc["12347"]
    assert c["frequency_invoices"] == 5 and c["main_country"] == "Iceland"
    assert c["recency_days"] == pytest.approx(30 - (8 + 48 / 60) / 24)
    assert c["churn"] == 0 and c["purchase"] == 0 and c["spend"] == pytest.approx(1294.32)


def test_last_full_horizon_cutoff_is_enforced(retail):
    from features.errors import PropensityError

    tx, _ = retail
    with pytest.raises(PropensityError, match="latest cutoff with a full horizon is 2011-09-11"):
        build_training_table(tx, [date(2011, 10, 1)], Horizons())
