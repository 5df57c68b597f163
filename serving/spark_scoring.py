"""Batch scoring on Spark: the same features, the same ``score_features``, run where the data is.

The feature expression runs on Spark; each partition is scored by ``serving.predictor.score_features``
inside ``mapInPandas``, the pandas-UDF equivalent of ``mlflow.pyfunc.spark_udf`` that also returns
segments, clusters, actions and reasons from one code path. Segments need the population: its
reference (thresholds and sorted values of the few columns the rules read, one row per customer,
never the log) is built on the driver and shipped with the function. Reasons go to the top
``reasons_share`` of the value-at-risk ranking: a first pass scores everyone without reasons, Spark
finds the value-at-risk cut, and a second pass explains only the customers above it.

Output: Parquet partitioned by ``as_of_date``; a rerun replaces only its own as_of partition.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from features.build import feature_frame, features_expr
from features.cutoffs import as_cutoff
from features.errors import PropensityError
from features.segments import SegmentRules, load_segment_rules, segment_reference
from models.spec import model_input
from serving.predictor import Models, reference_columns, score_features
from serving.value import SCORED_RULE_INPUTS, customer_value


def _spark_type(column: str, dtype) -> str:
    if column == "as_of":
        return "timestamp"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    return "double" if pd.api.types.is_float_dtype(dtype) else "string"


def _score_batch(features: pd.DataFrame, models, rules, reference, reasons_share, reasons_from) -> pd.DataFrame:
    scored = score_features(feature_frame(features), models, reference, reasons_share, reasons_from, rules).drop(
        columns=["rank"]
    )
    return scored.astype({c: "int64" for c, t in scored.dtypes.items() if pd.api.types.is_integer_dtype(t)})


def _scorer(models: Models, rules, reference, reasons_share: float, reasons_from: float | None):
    def score(batches):
        for batch in batches:
            yield _score_batch(batch, models, rules, reference, reasons_share, reasons_from)

    return score


def _valuer(models: Models, columns: list[str]):
    """Each row's predicted value and CLV (the columns asked for): the population a value-based segment rule needs."""

    def value(batches):
        for batch in batches:
            features = feature_frame(batch)
            spend, clv = customer_value(features, model_input(features, models.feature_spec), models)
            yield pd.DataFrame({"predicted_value": spend, "expected_value": clv})[columns]

    return value


def score_on_spark(
    log,
    as_of: date | str,
    models: Models,
    out_dir: str | Path,
    reasons_share: float = 0.1,
    rules: SegmentRules | None = None,
) -> dict:
    """Score every eligible customer on Spark and write Parquet; counts and the value-at-risk cut for reasons.
    ``rules``: the segment rules (default: the configured ones)."""
    from features.spark import spark_frame

    cutoff = as_cutoff(as_of)
    lookback_days = models.lookback_days
    # one row per customer, read several times below (reference, sample, passes): computed once
    features = spark_frame(log, features_expr(log.table, [cutoff], lookback_days)).persist()
    session = features.sparkSession
    rules = rules or load_segment_rules()  # shipped to the workers with the reference
    population = features.select(*[c for c in reference_columns(rules) if c in features.columns]).toPandas()
    if population.empty:
        raise PropensityError(f"No customer bought in the {lookback_days} days before {cutoff}: nothing to score.")
    if scored := [c for c in SCORED_RULE_INPUTS if c in reference_columns(rules)]:  # a rule reads predicted value
        values = features.mapInPandas(_valuer(models, scored), ", ".join(f"`{c}` double" for c in scored)).toPandas()
        population = population.assign(**{c: values[c].to_numpy() for c in scored})  # only the sorted values count
    reference = segment_reference(population, rules)
    sample = _score_batch(features.limit(20).toPandas(), models, rules, reference, 1.0, None)
    schema = ", ".join(f"`{c}` {_spark_type(c, t)}" for c, t in sample.dtypes.items())
    if reasons_share >= 1:
        scored = features.mapInPandas(_scorer(models, rules, reference, 1.0, None), schema)
        cut = None
    else:
        first = features.mapInPandas(_scorer(models, rules, reference, 0.0, None), schema).cache()
        ranked = first[models.ranked_by]  # value at risk, or P(purchase) without a churn model
        cut = (
            first.approxQuantile(models.ranked_by, [1 - reasons_share], 1e-4)[0] if reasons_share > 0 else float("inf")
        )
        top = features.join(first.where(ranked >= cut).select("customer_id"), "customer_id", "left_semi")
        explained = top.mapInPandas(_scorer(models, rules, reference, 0.0, cut), schema)
        scored = first.where(ranked < cut).unionByName(explained)
    session.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    scored = scored.withColumn("as_of_date", scored["as_of"].cast("date").cast("string"))
    scored.write.mode("overwrite").partitionBy("as_of_date").parquet(str(out_dir))
    features.unpersist()
    return {"as_of": str(cutoff), "customers": len(population), "reasons_from_value_at_risk": cut, "out": str(out_dir)}


def read_spark_scores(out_dir: str | Path, as_of: date | str) -> pd.DataFrame:
    """One as_of partition of the Spark output, ranked like batch scores (for checks and small pulls)."""
    frame = pd.read_parquet(Path(out_dir) / f"as_of_date={as_cutoff(as_of).isoformat()}")
    frame = frame.sort_values(
        ["value_at_risk", "customer_id"], ascending=[False, True], kind="stable", ignore_index=True
    )
    frame.insert(2, "rank", range(1, len(frame) + 1))
    return frame
