"""Batch scoring with registered models: ranking, segments, idempotent rerun, atomic exports."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import PropensityError
from features.transactions import TransactionLog


@pytest.fixture(scope="module")
def scored(trained_store):
    from conftest import point_mlflow_at

    from features.store import connect_store, store_path
    from serving.predictor import default_as_of, load_models, score_customers

    point_mlflow_at(trained_store)
    con = connect_store(store_path(trained_store))
    log = TransactionLog.on(con)
    models = load_models()
    as_of = default_as_of(log)
    yield log, models, as_of, score_customers(log, as_of, models), trained_store
    con.close()


def test_scores_are_ranked_by_value_at_risk_with_segments_and_actions(scored):
    _, _, as_of, scores, _ = scored
    assert len(scores) > 100 and scores["customer_id"].is_unique
    assert scores["value_at_risk"].is_monotonic_decreasing and scores["rank"].tolist() == list(
        range(1, len(scores) + 1)
    )
    assert scores[["p_churn", "p_purchase"]].stack().between(0, 1).all()
    assert (scores["value_at_risk"] <= scores["expected_value"] + 1e-9).all()
    assert scores["rfm_segment"].notna().all() and scores["action"].notna().all()
    assert (scores["as_of"] == pd.Timestamp(as_of)).all()


def test_value_comes_from_the_value_model_as_clv(scored):
    from features.build import build_features
    from models.spec import model_input
    from models.value import clv
    from serving.value import load_value_settings

    log, models, as_of, scores, _ = scored
    assert models.value is not None and models.value.horizon_days == 90

    features = build_features(log.table, [as_of], models.lookback_days).set_index("customer_id")
    features = features.loc[scores["customer_id"]].reset_index()
    spend = np.maximum(models.value.predict_proba(model_input(features, models.value.feature_spec)), 0)
    np.testing.assert_allclose(scores["predicted_value"], spend, rtol=1e-9)
    np.testing.assert_allclose(scores["expected_value"], clv(spend, 90, load_value_settings()), rtol=1e-9)
    assert scores["predicted_value"].std() > 0


def test_risk_list_filters_and_sorts(scored):
    from serving.exports import risk_list

    scores = scored[3]
    by_risk = risk_list(scores, 20, "risk")
    assert len(by_risk) == 20 and by_risk["p_churn"].is_monotonic_decreasing
    segment = scores["rfm_segment"].iloc[0]
    only = risk_list(scores, 1000, "value-at-risk", [segment], min_value=1.0)
    assert set(only["rfm_segment"]) == {segment} and (only["expected_value"] >= 1.0).all()
    with pytest.raises(PropensityError, match="Unknown ranking"):
        risk_list(scores, 5, "vibes")


def test_rerun_of_an_as_of_replaces_it(scored):
    from serving.score_store import save_scores, scores_as_of

    log, _, _, scores, _ = scored
    save_scores(log.con, scores)
    save_scores(log.con, scores)
    other = scores.assign(as_of=scores["as_of"] - pd.Timedelta(days=1))
    save_scores(log.con, other)
    counts = dict(log.con.execute("SELECT as_of, count(*) FROM scores GROUP BY 1").fetchall())
    assert sorted(counts.values()) == [len(scores), len(scores)]
    back = scores_as_of(log.con, pd.Timestamp(scores["as_of"].iloc[0]).date())  # the run, as stored (through Arrow)
    want = scores.sort_values("rank", ignore_index=True)
    assert list(back.columns[: len(want.columns)]) == list(want.columns)
    for column in want.columns:
        got, expected = back[column], want[column]
        assert got.isna().tolist() == expected.isna().tolist(), column  # missing stays missing, nothing else does
        if pd.api.types.is_float_dtype(expected):
            np.testing.assert_allclose(got.to_numpy(float), expected.to_numpy(float), rtol=1e-12, err_msg=column)
        else:
            assert got.dropna().astype(str).tolist() == expected.dropna().astype(str).tolist(), column


def test_a_failed_export_leaves_the_previous_file_and_no_partial(scored, tmp_path, monkeypatch):
    from serving.score_store import export_scores

    scores = scored[3]
    first = export_scores(scores, tmp_path)
    before = {p: p.read_bytes() for p in first}

    def crash(self, path, *args, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(KeyboardInterrupt):
        export_scores(scores.head(3), tmp_path)
    assert {p: p.read_bytes() for p in first} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in first)


def test_key_indicator_alerts_flag_exactly_the_customers_past_a_threshold(scored):
    from serving.alerts import crossed, load_indicators

    scores = scored[3]
    overdue = load_indicators()["overdue"]
    past = crossed(scores[overdue.column].to_numpy(dtype=float), overdue)
    assert 0 < past.sum() < len(scores)  # the synthetic log has overdue customers, and not only those
    said = scores["alerts"].fillna("").str.contains("overdue: ", regex=False).to_numpy()
    assert (said == past).all()
    assert scores.loc[scores["alerts"].isna(), overdue.column].fillna(0).lt(overdue.at_least).all()


def test_every_customer_gets_a_cluster_and_reasons_that_read_as_words(scored):
    scores = scored[3]
    model = scored[1].churn
    assert model.clusters is not None and scores["cluster"].between(0, len(model.clusters["centroids"]) - 1).all()
    # the composite index: within its range, and a higher index goes with a lower churn risk on this log
    assert model.index is not None and scores["customer_index"].between(0, 100).all()
    assert scores["index_percentile"].between(0, 100).all()
    assert scores["customer_index"].corr(scores["p_churn"], method="spearman") < -0.3
    assert scores["reason_1"].notna().mean() > 0.95
    text = " | ".join(scores["reason_1"].dropna().head(50))
    assert "_" not in text  # phrases, not column names
    assert any(word in text for word in ("days", "orders", "spent", "odds"))
    reasons = scores[["reason_1", "reason_2", "reason_3"]].stack()
    assert reasons.str.endswith((" — raises risk", " — lowers risk")).all()  # each says which way it pushes


def test_budgeted_targeting_picks_the_largest_expected_gains():
    from serving.targeting import plan_contacts

    scores = pd.DataFrame(
        {
            "customer_id": list("abcde"),
            "p_churn": [0.9, 0.5, 0.1, 0.8, 0.3],
            "expected_value": [100.0, 1000.0, 5000.0, 10.0, 50.0],
        }
    )
    chosen, plan = plan_contacts(scores, budget=2, success_rate=0.5)
    assert chosen["customer_id"].tolist() == ["b", "c"]  # 250 and 250 beat a's 45
    assert plan.expected_value_saved == pytest.approx(500.0) and plan.expected_saves == pytest.approx(0.3)
    assert plan.expected_churners == pytest.approx(0.6)  # 0.5 + 0.1 would-be churners among b and c
    # With a cost per contact only the contacts worth it are kept: gains 250-40, 250-40, 45-40 (d: 4-40, e: 7.5-40).
    chosen, plan = plan_contacts(scores, cost_per_contact=40.0, success_rate=0.5)
    assert (
        chosen["customer_id"].tolist() == ["b", "c", "a"]
        and plan.expected_net == pytest.approx(425.0)
        and plan.cost == 120.0
    )
    # A flat value per save ranks by churn risk alone.
    chosen, _ = plan_contacts(scores, budget=3, value_per_save=100.0)
    assert chosen["customer_id"].tolist() == ["a", "d", "b"]
    with pytest.raises(PropensityError, match="budget"):
        plan_contacts(scores)


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    import numpy as np

    from serving.drift import psi

    rng = np.random.default_rng(0)
    base = rng.beta(2, 5, 20_000)
    assert psi(base, rng.beta(2, 5, 20_000)) < 0.01
    assert psi(base, rng.beta(5, 2, 20_000)) > 0.25


def test_a_second_run_records_migration_drift_and_an_mlflow_manifest_and_reports(scored, tmp_path):
    import re

    import mlflow

    from serving.batch import run_batch
    from serving.jobs import write_report

    log, models, as_of, _, folder = scored
    earlier = as_of - pd.Timedelta(days=1)  # the latest run before as_of (another test may have stored this day too)
    run_batch(log, models, tmp_path / "exports", earlier)
    result = run_batch(log, models, tmp_path / "exports", as_of)
    c = result.manifest["comparison"]
    assert c["previous_as_of"] == str(earlier) and c["psi_p_churn"] < 0.25  # a day apart: no large shift
    assert c["customers_in_both"] + c["customers_new"] == len(result.scores)
    moved = sum(r["customers"] for r in c["migration"] if r["from"] != r["to"] and "(" not in r["from"] + r["to"])
    assert moved == c["customers_moved_segment"]
    run = mlflow.get_run(result.manifest["mlflow_run_id"])
    assert run.data.tags["kind"] == "batch-scoring" and run.data.metrics["customers_scored"] == len(result.scores)
    assert run.data.params["churn_model_version"] == str(models.info["churn"]["version"])
    assert (tmp_path / "exports" / f"manifest_{as_of}.json").exists()

    report = write_report(log.con, tmp_path / "reports")
    page = report.html.read_text()
    for heading in ("Segments: size, risk and value at risk", "Since the last run", "Top of the risk list", "Models"):
        assert heading in page
    assert f"Since the run of {earlier}" in page and "Cumulative gain" not in page  # plots are images, not text
    assert not re.findall(r'src="(?!data:)', page)  # self-contained: every image is embedded
    assert len(re.findall(r'src="data:image/png;base64,', page)) == len(report.images) >= 4


def test_the_report_checks_the_latest_closed_run_against_what_customers_did(scored, tmp_path):
    """A run whose churn window has closed in the log: its predicted churn per decile beside the realised churn,
    which equals the churn label the training table gives those customers at that cutoff."""
    from datetime import timedelta

    from features.build import build_training_table
    from features.cutoffs import Horizons
    from serving.batch import run_batch
    from serving.jobs import write_report
    from serving.outcomes import latest_closed_run

    log, models, as_of, _, _ = scored
    h = models.churn.horizon_days
    closed = as_of - timedelta(days=h)  # the latest day whose window the log covers (it ends the day before as_of)
    past = run_batch(log, models, tmp_path / "exports", closed).scores
    run_batch(log, models, tmp_path / "exports", as_of)
    outcome = latest_closed_run(log.con, h)
    assert outcome.as_of == closed and outcome.customers == len(past)
    labels = build_training_table(log.table, [closed], Horizons(h, h)).set_index("customer_id")["churn"]
    realised = labels.reindex(past["customer_id"]).to_numpy(dtype=float)
    assert outcome.realised == pytest.approx(realised.mean(), abs=1e-12)
    assert outcome.predicted == pytest.approx(past["p_churn"].mean(), abs=1e-12)
    deciles = outcome.deciles
    assert deciles["customers"].sum() == len(past) and deciles["predicted"].is_monotonic_decreasing
    assert deciles["realised"].iloc[0] > deciles["realised"].iloc[-1]  # the riskiest tenth churned more

    page = write_report(log.con, tmp_path / "reports").html.read_text()
    assert f"The run of {closed} scored {len(past):,} customers" in page and 'alt="predicted vs realised churn"' in page
    assert "customers were scored." in page and "Suggested actions" in page and "— raises risk" in page
    assert "behavioural clusters (found by K-Means on the training population" in page and "is the riskiest" in page
    assert "The customer index (0-100)" in page and "Its weights: " in page
    assert latest_closed_run(log.con, h + 10_000) is None  # no run is that old
