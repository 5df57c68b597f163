"""Batch scoring with registered models: ranking, segments, idempotent rerun, atomic exports."""

import os

import duckdb
import ibis
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.contract import load_mapping
from features.errors import PropensityError
from features.pipeline import Log
from features.sources import Source
from features.synthetic import SyntheticConfig, generate
from features.validate import ingest


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    from models.registry import configure_tracking, load_model
    from serving.predictor import Models, default_as_of, score_customers
    from training.config import load_config
    from training.train import train_task

    folder = tmp_path_factory.mktemp("serving")
    pq.write_table(generate(SyntheticConfig(n_customers=800, seed=5)), folder / "log.parquet")
    con = duckdb.connect(str(folder / "store.duckdb"))
    ingest(con, Source(folder / "log.parquet"), load_mapping("canonical"))
    log = Log(con, ibis.duckdb.from_connection(con).table("transactions"))
    old = os.environ.pop("MLFLOW_TRACKING_URI", None)
    configure_tracking(folder)
    cfg = load_config(profile="quick", models=["lightgbm"], tuning={"n_trials": 1, "timeout_s": 20})
    for task in ("churn", "purchase"):
        train_task(log, task, cfg)
    models = Models(load_model("churn"), load_model("purchase"))
    as_of = default_as_of(log)
    yield log, models, as_of, score_customers(log, as_of, models), folder
    if old:
        os.environ["MLFLOW_TRACKING_URI"] = old


def test_scores_are_ranked_by_value_at_risk_with_segments_and_actions(scored):
    _, _, as_of, scores, _ = scored
    assert len(scores) > 100 and scores["customer_id"].is_unique
    assert scores["value_at_risk"].is_monotonic_decreasing and scores["rank"].tolist() == list(range(1, len(scores) + 1))
    assert scores[["p_churn", "p_purchase"]].stack().between(0, 1).all()
    assert (scores["value_at_risk"] <= scores["expected_value"] + 1e-9).all()
    assert scores["rfm_segment"].notna().all() and scores["action"].notna().all()
    assert (scores["as_of"] == pd.Timestamp(as_of)).all()


def test_risk_list_filters_and_sorts(scored):
    from serving.predictor import risk_list

    scores = scored[3]
    by_risk = risk_list(scores, 20, "risk")
    assert len(by_risk) == 20 and by_risk["p_churn"].is_monotonic_decreasing
    segment = scores["rfm_segment"].iloc[0]
    only = risk_list(scores, 1000, "value-at-risk", [segment], min_value=1.0)
    assert set(only["rfm_segment"]) == {segment} and (only["expected_value"] >= 1.0).all()
    with pytest.raises(PropensityError, match="Unknown ranking"):
        risk_list(scores, 5, "vibes")


def test_rerun_of_an_as_of_replaces_it(scored):
    from serving.batch import save_scores

    log, _, _, scores, _ = scored
    save_scores(log.con, scores)
    save_scores(log.con, scores)
    other = scores.assign(as_of=scores["as_of"] - pd.Timedelta(days=1))
    save_scores(log.con, other)
    counts = dict(log.con.execute("SELECT as_of, count(*) FROM scores GROUP BY 1").fetchall())
    assert sorted(counts.values()) == [len(scores), len(scores)]


def test_a_failed_export_leaves_the_previous_file_and_no_partial(scored, tmp_path, monkeypatch):
    from serving.batch import export_scores

    scores = scored[3]
    first = export_scores(scores, tmp_path)
    before = {p: p.read_bytes() for p in first}

    def crash(self, path, *args, **kwargs):
        open(path, "wb").write(b"half a file")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(KeyboardInterrupt):
        export_scores(scores.head(3), tmp_path)
    assert {p: p.read_bytes() for p in first} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in first)


def test_every_customer_gets_a_cluster_and_reasons_that_read_as_words(scored):
    scores = scored[3]
    model = scored[1].churn
    assert model.clusters is not None and scores["cluster"].between(0, len(model.clusters["centroids"]) - 1).all()
    assert scores["reason_1"].notna().mean() > 0.95
    text = " | ".join(scores["reason_1"].dropna().head(50))
    assert "_" not in text  # phrases, not column names
    assert any(word in text for word in ("days", "orders", "spent", "chance"))


def test_budgeted_targeting_picks_the_largest_expected_gains():
    from serving.targeting import plan_contacts

    scores = pd.DataFrame({
        "customer_id": list("abcde"),
        "p_churn": [0.9, 0.5, 0.1, 0.8, 0.3],
        "expected_value": [100.0, 1000.0, 5000.0, 10.0, 50.0],
    })
    chosen, plan = plan_contacts(scores, budget=2, success_rate=0.5)
    assert chosen["customer_id"].tolist() == ["b", "c"]  # 250 and 250 beat a's 45
    assert plan.expected_value_saved == pytest.approx(500.0) and plan.expected_saves == pytest.approx(0.3)
    # With a cost per contact only the contacts worth it are kept: gains 250-40, 250-40, 45-40 (d: 4-40, e: 7.5-40).
    chosen, plan = plan_contacts(scores, cost_per_contact=40.0, success_rate=0.5)
    assert chosen["customer_id"].tolist() == ["b", "c", "a"] and plan.expected_net == pytest.approx(425.0) and plan.cost == 120.0
    # A flat value per save ranks by churn risk alone.
    chosen, _ = plan_contacts(scores, budget=3, value_per_save=100.0)
    assert chosen["customer_id"].tolist() == ["a", "d", "b"]
    with pytest.raises(PropensityError, match="budget"):
        plan_contacts(scores)
