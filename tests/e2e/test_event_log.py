"""A log without amounts (one line per purchase, as grocery and app logs often are) loads, trains and scores.

Money features, the spend label, value segments and CLV are absent, never faked; the churn and purchase
models train on what the log has, and customers rank by P(churn).
"""

import os

import pandas as pd
import pytest

from features.build import build_training_table
from features.contract import load_mapping
from features.definitions import MONEY
from features.errors import PropensityError
from features.segments import assign_segments
from features.sources import Source
from features.store import connect_store, store_path
from features.synthetic import SyntheticConfig, generate
from features.transactions import TransactionLog, ingest_into_store, open_store_log


@pytest.fixture(scope="module")
def event_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("events")
    log = generate(SyntheticConfig(n_customers=800, seed=11)).to_pandas()
    events = log[log["quantity"] > 0].drop(columns=["quantity", "unit_price"])  # purchases only, no money
    events.to_parquet(folder / "events.parquet", index=False)
    report = ingest_into_store(store_path(folder), Source(folder / "events.parquet"), load_mapping("canonical"))
    return folder, report


def test_an_event_log_loads_and_its_features_leave_money_out(event_store):
    folder, report = event_store
    assert report.event_log and report.accepted_rows == report.input_rows > 0
    with open_store_log(store_path(folder)) as log:
        assert "amount" not in log.table.columns
        table = build_training_table(log.table, ["2023-03-01", "2023-06-01"])
    assert not set(MONEY) & set(table.columns) and "spend" not in table.columns
    assert {"recency_days", "frequency_invoices", "distinct_products", "churn", "purchase"} <= set(table.columns)
    assert table["churn"].between(0, 1).all() and 0.1 < table["churn"].mean() < 0.9
    segments = assign_segments(table)
    assert segments["rfm_segment"].isna().all() and segments["abc_tier"].isna().all()
    assert segments["lifecycle"].notna().all() and segments["r_score"].between(1, 5).all()


@pytest.mark.slow
def test_an_event_log_trains_scores_ranks_by_risk_and_serves(event_store, tmp_path):
    from conftest import point_mlflow_at
    from fastapi.testclient import TestClient

    from serving.batch import run_batch
    from serving.exports import risk_list
    from serving.predictor import load_models
    from serving.rest.app import create_app
    from serving.targeting import plan_contacts
    from training.config import load_config
    from training.jobs import train_store

    folder, _ = event_store
    point_mlflow_at(folder)
    cfg = load_config(profile="quick", models=["lightgbm"], tuning={"n_trials": 1})
    with pytest.raises(PropensityError, match="no amounts"):
        train_store(folder, ["value"], cfg)  # asked for alone, the value task is refused in one sentence
    results, _ = train_store(folder, ["churn", "purchase", "value"], cfg)  # of several, it is skipped
    assert [r.task for r in results] == ["churn", "purchase"]

    con = connect_store(store_path(folder))
    result = run_batch(TransactionLog.on(con), load_models(), folder / "exports")
    con.close()
    scores, manifest = result.scores, result.manifest
    assert scores["expected_value"].isna().all() and manifest["value_at_risk_total"] is None
    assert manifest["value_source"] == "nothing (no amounts)" and "no amounts" in manifest["warnings"][0]
    assert scores.sort_values("rank")["p_churn"].is_monotonic_decreasing  # ranked by risk, not by customer id
    # no RFM segment without money: each customer's action is their lifecycle stage's (it was "monitor" for all)
    from serving.predictor import load_actions

    by_stage = load_actions()["by_lifecycle"]
    assert scores["rfm_segment"].isna().all() and scores["lifecycle"].nunique() >= 3
    assert scores["action"].tolist() == [by_stage[stage] for stage in scores["lifecycle"]]

    listed = risk_list(scores, top=20)
    assert listed.attrs["ranked_by"] == "risk" and len(listed) == 20
    with pytest.raises(PropensityError, match="no amounts"):
        risk_list(scores, top=20, min_value=10)
    with pytest.raises(PropensityError, match="--value-per-save"):
        plan_contacts(scores, budget=10)
    chosen, plan = plan_contacts(scores, budget=10, value_per_save=100)
    assert plan.contacts == 10 and plan.expected_value_saved == pytest.approx(plan.expected_saves * 100)

    lines = pd.read_parquet(folder / "events.parquet")
    mine = lines[lines["customer_id"] == scores["customer_id"].iloc[0]].assign(ts=lambda f: f["ts"].astype(str))
    os.environ.pop("PROPENSITY_API_KEY", None)
    client = TestClient(create_app(folder))
    answer = client.post(
        "/score", json={"transactions": mine.drop(columns=["is_return"], errors="ignore").to_dict("records")}
    )
    assert answer.status_code == 200, answer.text
    scored = answer.json()["customers"][0]
    assert scored["expected_value"] is None and scored["rfm_segment"] is None and scored["lifecycle"]
    # lines that do carry money, scored against the event log's population: the value segments have nothing to be
    # placed against and stay empty (this answered 500); the rest is scored as without the money
    priced = mine.drop(columns=["is_return"], errors="ignore").assign(amount=12.5)
    answer = client.post("/score", json={"transactions": priced.to_dict("records")})
    assert answer.status_code == 200, answer.text
    with_money = answer.json()["customers"][0]
    assert with_money["rfm_segment"] is None and with_money["value_matrix"] is None and with_money["abc_tier"] is None
    assert with_money["p_churn"] == pytest.approx(scored["p_churn"], abs=1e-9)
    assert with_money["lifecycle"] == scored["lifecycle"] and with_money["r_score"] == scored["r_score"]
