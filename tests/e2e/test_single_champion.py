"""Scoring with whichever champions exist: a churn-only or a purchase-only user is served, not refused."""

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from features.errors import PropensityError


@pytest.fixture(scope="module")
def registry(trained_store):
    from conftest import point_mlflow_at
    from mlflow import MlflowClient

    point_mlflow_at(trained_store)
    client = MlflowClient()
    versions = {
        t: client.get_model_version_by_alias(f"propensity-{t}", "champion").version
        for t in ("churn", "purchase", "value")
    }

    def only(task: str | None):
        """Keep the champion alias on ``task`` alone (None: on neither)."""
        for t, version in versions.items():
            if t == task:
                client.set_registered_model_alias(f"propensity-{t}", "champion", version)
            else:
                client.delete_registered_model_alias(f"propensity-{t}", "champion")

    yield only
    for t, version in versions.items():
        client.set_registered_model_alias(f"propensity-{t}", "champion", version)


def test_churn_only_scores_rank_by_value_at_risk_and_report(registry, trained_store):
    from features.build import build_features
    from features.store import store_path
    from features.transactions import open_store_log
    from models.value import clv, historic_rate
    from serving.jobs import report_store, score_store, stored_scores
    from serving.value import NO_VALUE_MODEL, load_value_settings

    registry("churn")
    result = score_store(trained_store, reasons_share=0.2)
    scores = stored_scores(trained_store)
    assert len(scores) > 100
    # without a value model: CLV from the historic net spend rate over the churn horizon, and a warning that says so
    assert result.manifest["warnings"] == [NO_VALUE_MODEL]
    with open_store_log(store_path(trained_store)) as log:
        features = build_features(log.table, [scores["as_of"].iloc[0].date()], 365).set_index("customer_id")
    features = features.loc[scores["customer_id"]]
    np.testing.assert_allclose(scores["predicted_value"], historic_rate(features, 90), rtol=1e-9)
    np.testing.assert_allclose(scores["expected_value"], clv(historic_rate(features, 90), 90, load_value_settings()))
    assert scores["p_purchase"].isna().all() and scores["p_churn"].between(0, 1).all()
    assert scores["value_at_risk"].is_monotonic_decreasing
    assert set(result.manifest["models"]) == {"churn"}
    page = report_store(trained_store).html.read_text()
    text = re.sub(r"data:image/png;base64,[^\"]*", "", page)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)  # no card or table cell of a missing score
    assert "by value at risk" in page


def test_purchase_only_scores_rank_by_p_purchase(registry, trained_store):
    from serving.exports import risk_list
    from serving.jobs import report_store, score_store, stored_scores
    from serving.targeting import plan_contacts

    registry("purchase")
    score_store(trained_store, reasons_share=0.2)
    scores = stored_scores(trained_store)
    assert scores["p_churn"].isna().all() and scores["value_at_risk"].isna().all()
    assert scores["p_purchase"].is_monotonic_decreasing and scores["p_purchase"].between(0, 1).all()
    explained = scores["reason_1"].notna()
    assert explained.iloc[: int(np.ceil(len(scores) * 0.2))].all() and not explained.iloc[-1]
    listed = risk_list(scores, top=10)  # the default ranking falls back to P(purchase)
    assert listed["p_purchase"].is_monotonic_decreasing
    with pytest.raises(PropensityError, match="needs churn scores"):
        plan_contacts(scores, budget=10)
    assert "by P(purchase)" in report_store(trained_store).html.read_text()


def test_rest_answers_with_the_purchase_model_alone(registry, trained_store):
    from features.build import build_features
    from features.store import store_path
    from features.transactions import open_store_log
    from serving.predictor import default_as_of
    from serving.rest.app import create_app
    from serving.rest.service import Service

    registry("purchase")
    with open_store_log(store_path(trained_store)) as log:
        as_of = default_as_of(log)
        rows = build_features(log.table, as_of).head(3).drop(columns=["as_of"])
    service = Service(trained_store)
    try:
        client = TestClient(create_app(service=service), raise_server_exceptions=False)
        payload = {"as_of": str(as_of), "features": rows.astype(object).where(rows.notna(), None).to_dict("records")}
        answer = client.post("/score", json=payload)
    finally:
        service.close()
    assert answer.status_code == 200, answer.text[:500]
    for scored in answer.json()["customers"]:
        assert scored["p_churn"] is None and scored["value_at_risk"] is None and 0 <= scored["p_purchase"] <= 1


def test_no_champion_at_all_is_one_sentence(registry, trained_store):
    from serving.jobs import score_store

    registry(None)
    with pytest.raises(PropensityError, match="train one first"):
        score_store(trained_store)
