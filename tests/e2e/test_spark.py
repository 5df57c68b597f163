"""DuckDB and Spark give the same features and labels from the one Ibis definition (to 1e-9).

One shared local[2] session (1 GB driver, 2 shuffle partitions, UI off). Skipped when pyspark or
Java is missing; `.ci/run` installs the spark extra, so CI runs them.
"""

import re
import shutil
from datetime import date

import ibis
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_RETAIL

from features.build import build_features, build_training_table, feature_frame
from features.cutoffs import Horizons, monthly_cutoffs

pyspark = pytest.importorskip("pyspark")
pytestmark = [pytest.mark.spark, pytest.mark.skipif(shutil.which("java") is None, reason="Java is not installed")]

KEYS = ["customer_id", "as_of"]


@pytest.fixture(scope="module")
def spark():
    from features.spark import spark_session

    session = spark_session("local[2]", conf={"spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g"})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _canonical_parquet(tx, path):
    """The validated log the DuckDB ingest wrote, as Parquet: what Spark reads in place."""
    tx.to_parquet(path)
    return path


def _assert_same(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    duck = duck.sort_values(KEYS, ignore_index=True)
    spark = spark.sort_values(KEYS, ignore_index=True)
    assert len(duck) == len(spark) > 0 and list(duck.columns) == list(spark.columns)
    assert duck["customer_id"].tolist() == spark["customer_id"].tolist() and (duck["as_of"] == spark["as_of"]).all()
    for column in duck.columns.drop(KEYS):
        a, b = duck[column], spark[column]
        if a.dtype.kind in "fiub":
            np.testing.assert_allclose(
                a.to_numpy(float), b.to_numpy(float), rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=column
            )
        else:
            assert a.fillna("<na>").tolist() == b.fillna("<na>").tolist(), column


def _assert_same_reasons(spark_reasons: pd.DataFrame, batch_reasons: pd.DataFrame) -> None:
    """The same drivers in the same order; the figures in the phrases may differ in the last rounded digit
    (sums agree to 1e-9, so a value like 16,209.5 can round either way)."""
    a, b = spark_reasons.fillna("").to_numpy(), batch_reasons.fillna("").to_numpy()
    strip = np.vectorize(lambda text: re.sub(r"[-+]?[0-9][0-9,.]*", "#", text))
    assert (strip(a) == strip(b)).all()
    assert (a == b).mean() > 0.99


def _spark_frame(log, cutoffs, horizons, with_labels):
    from features.spark import feature_expr_for

    return feature_frame(feature_expr_for(log, cutoffs, horizons, with_labels).to_pandas())


def test_generated_log_features_and_labels_match(spark, small_synthetic, tmp_path):
    from features.spark import open_spark_log

    tx = small_synthetic[0]
    log = open_spark_log(_canonical_parquet(tx, tmp_path / "tx.parquet"), spark)
    cutoffs = monthly_cutoffs("2022-09-01", "2023-06-01")
    horizons = Horizons(90, 30)
    _assert_same(build_training_table(tx, cutoffs, horizons), _spark_frame(log, cutoffs, horizons, True))


def test_an_event_log_without_amounts_matches_too(spark, small_synthetic, tmp_path):
    """A log without money (one line per purchase): the same features, labels without spend, on both engines."""
    from features.spark import open_spark_log

    tx = small_synthetic[0]
    events = tx.filter(~tx.is_return).drop("quantity", "unit_price", "amount")
    log = open_spark_log(_canonical_parquet(events, tmp_path / "events.parquet"), spark)
    cutoffs = monthly_cutoffs("2023-01-01", "2023-06-01")
    duck = build_training_table(events, cutoffs, Horizons(90, 30))
    assert "spend" not in duck.columns and "monetary_total" not in duck.columns
    _assert_same(duck, _spark_frame(log, cutoffs, Horizons(90, 30), True))


def test_spark_writes_parquet_partitioned_by_as_of_equal_to_duckdb(spark, small_synthetic, tmp_path):
    from features.spark import open_spark_log, write_spark_features

    tx = small_synthetic[0]
    log = open_spark_log(_canonical_parquet(tx, tmp_path / "tx.parquet"), spark)
    cutoffs = [date(2023, 3, 1), date(2023, 9, 1)]
    out = write_spark_features(log, cutoffs, tmp_path / "features", with_labels=False)
    partitions = sorted(p.name for p in out.glob("as_of_date=*"))
    assert partitions == ["as_of_date=2023-03-01", "as_of_date=2023-09-01"]
    written = pd.read_parquet(out).drop(columns=["as_of_date"])
    written["as_of"] = pd.to_datetime(written["as_of"]).astype("datetime64[ns]")
    _assert_same(build_features(tx, cutoffs), feature_frame(written[build_features(tx, cutoffs).columns]))


def test_a_log_without_the_canonical_columns_is_refused(spark, tmp_path):
    from features.errors import PropensityError
    from features.spark import open_spark_log

    pd.DataFrame({"CustomerID": ["1"], "InvoiceDate": ["2011-01-01"]}).to_parquet(tmp_path / "raw.parquet")
    with pytest.raises(PropensityError, match="lacks the canonical columns"):
        open_spark_log(tmp_path / "raw.parquet", spark)


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED_RETAIL.exists(), reason="../shared/data/online_retail is not present")
def test_uci_features_labels_and_scores_match(spark, tmp_path):
    import duckdb

    from features.contract import load_mapping
    from features.sources import Source
    from features.spark import open_spark_log
    from features.validate import ingest

    con = duckdb.connect()
    ingest(con, Source(SHARED_RETAIL), load_mapping("online_retail"))
    con.execute(f"COPY transactions TO '{tmp_path / 'tx.parquet'}' (FORMAT parquet)")
    tx = ibis.duckdb.from_connection(con).table("transactions")
    log = open_spark_log(tmp_path / "tx.parquet", spark)
    cutoffs, horizons = [date(2011, 6, 1), date(2011, 9, 1)], Horizons(90, 30)
    _assert_same(build_training_table(tx, cutoffs, horizons), _spark_frame(log, cutoffs, horizons, True))

    # and the same scores: a small LightGBM pair trained on this log, scored by both engines
    from conftest import point_mlflow_at

    from features.transactions import TransactionLog
    from serving.predictor import load_models, score_customers
    from serving.spark_scoring import read_spark_scores, score_on_spark
    from training.config import load_config
    from training.train import train_task

    point_mlflow_at(tmp_path)
    duck = TransactionLog(con, tx)
    cfg = load_config(profile="quick", models=["lightgbm"], baselines=[], tuning={"n_trials": 1})
    for task in ("churn", "purchase"):
        train_task(duck, task, cfg)
    models = load_models()
    as_of = date(2011, 12, 10)
    batch = score_customers(duck, as_of, models, reasons_share=0.1)
    score_on_spark(log, as_of, models, tmp_path / "scores", reasons_share=0.1)
    on_spark = read_spark_scores(tmp_path / "scores", as_of)
    assert on_spark["customer_id"].tolist() == batch["customer_id"].tolist()
    np.testing.assert_allclose(
        on_spark[["p_churn", "p_purchase", "value_at_risk"]],
        batch[["p_churn", "p_purchase", "value_at_risk"]],
        rtol=1e-9,
    )
    for column in ("rfm_segment", "lifecycle", "value_matrix", "abc_tier", "cluster", "action"):
        assert on_spark[column].tolist() == batch[column].tolist(), column
    top = min(on_spark["reason_1"].notna().sum(), batch["reason_1"].notna().sum())
    reasons = ["reason_1", "reason_2", "reason_3"]
    assert top > 300
    _assert_same_reasons(on_spark[reasons].head(top), batch[reasons].head(top))


@pytest.mark.parametrize("share", [1.0, 0.1])
def test_spark_scoring_matches_batch_scoring(spark, trained_store, tmp_path, share):
    from conftest import point_mlflow_at

    from features.spark import open_spark_log
    from features.store import store_path
    from features.transactions import open_store_log
    from serving.predictor import default_as_of, load_models, score_customers
    from serving.spark_scoring import read_spark_scores, score_on_spark

    point_mlflow_at(trained_store)
    duck = open_store_log(store_path(trained_store))
    try:
        models = load_models()
        as_of = default_as_of(duck)
        batch = score_customers(duck, as_of, models, reasons_share=share)
        duck.table.to_parquet(tmp_path / "tx.parquet")
    finally:
        duck.close()
    result = score_on_spark(
        open_spark_log(tmp_path / "tx.parquet", spark), as_of, models, tmp_path / "scores", reasons_share=share
    )
    spark_scores = read_spark_scores(tmp_path / "scores", as_of)
    assert result["customers"] == len(batch) == len(spark_scores)
    assert spark_scores["customer_id"].tolist() == batch["customer_id"].tolist()
    assert models.value is not None  # the value model's columns too
    numbers = ("p_churn", "p_purchase", "predicted_value", "expected_value", "value_at_risk")
    for column in (*numbers, "customer_index", "index_percentile", "gap_deviation", "spend_deviation"):
        np.testing.assert_allclose(spark_scores[column], batch[column], rtol=1e-9, atol=1e-9, err_msg=column)
    for column in (
        "rfm_segment",
        "r_score",
        "f_score",
        "m_score",
        "lifecycle",
        "value_matrix",
        "abc_tier",
        "cluster",
        "action",
        "alerts",
    ):
        assert spark_scores[column].tolist() == batch[column].tolist(), column
    reasons = ["reason_1", "reason_2", "reason_3"]
    explained = spark_scores["reason_1"].notna()
    if share == 1.0:
        _assert_same_reasons(spark_scores[reasons], batch[reasons])
    else:  # the top of the list (by an approximate quantile cut) is explained exactly as batch explains it
        top = int(np.ceil(0.1 * len(batch)))
        assert abs(explained.sum() - top) <= max(2, 0.01 * len(batch))
        k = min(explained.sum(), top)
        _assert_same_reasons(spark_scores[reasons].head(k), batch[reasons].head(k))


def test_value_segments_can_follow_predicted_clv_on_batch_and_spark(spark, trained_store, tmp_path):
    """segments.yaml may tier customers by predicted CLV (``abc.value: expected_value``) and put predicted spend on
    the value matrix's value axis: batch tiers the population by CLV, and Spark gives every customer the same tier."""
    from conftest import point_mlflow_at

    from features.segments import load_segment_rules
    from features.spark import open_spark_log
    from features.store import store_path
    from features.transactions import open_store_log
    from serving.predictor import default_as_of, load_models, score_features
    from serving.spark_scoring import read_spark_scores, score_on_spark

    default = load_segment_rules()
    rules = default.model_copy(
        update={
            "abc": default.abc.model_copy(update={"value": "expected_value"}),
            "value_matrix": default.value_matrix.model_copy(update={"order_value": "predicted_value"}),
        }
    )
    point_mlflow_at(trained_store)
    duck = open_store_log(store_path(trained_store))
    try:
        models = load_models()
        as_of = default_as_of(duck)
        features = build_features(duck.table, [as_of], models.lookback_days)
        duck.table.to_parquet(tmp_path / "tx.parquet")
    finally:
        duck.close()
    batch = score_features(features, models, reasons_share=0.0, rules=rules)
    historic = score_features(features, models, reasons_share=0.0)
    assert models.value is not None
    tiers = batch.groupby("abc_tier")["expected_value"].agg(["min", "max", "size"])
    assert tiers.loc["A", "min"] >= tiers.loc["B", "max"] and tiers.loc["B", "min"] >= tiers.loc["C", "max"]
    assert abs(tiers.loc["A", "size"] / len(batch) - default.abc.a_share) < 0.01
    assert (batch["abc_tier"] != historic["abc_tier"]).any()  # the option changes something
    high = batch["predicted_value"] > batch["predicted_value"].median()
    assert batch.loc[high, "value_matrix"].isin(["premium", "big-ticket"]).all()

    score_on_spark(open_spark_log(tmp_path / "tx.parquet", spark), as_of, models, tmp_path / "s", 0.0, rules)
    on_spark = read_spark_scores(tmp_path / "s", as_of)
    assert on_spark["customer_id"].tolist() == batch["customer_id"].tolist()
    for column in ("abc_tier", "value_matrix", "rfm_segment"):
        assert on_spark[column].tolist() == batch[column].tolist(), column
