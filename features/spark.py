"""The Spark engine: the same Ibis feature and label expressions, compiled for Apache Spark.

Spark reads a validated log in the canonical columns (Parquet files or a folder, or a catalog table)
in place and writes Parquet partitioned by ``as_of``; nothing is collected to the driver. The traps
seen when this was first tried are handled here and in ``features.build``: the session time zone is
pinned to UTC (timestamps are naive UTC everywhere), day arithmetic uses integer divisors on epoch
seconds (a float literal becomes a DECIMAL on Spark), and no engine-specific date or quantile
function is used.

Tested with pyspark 4.0.x (the Ibis Spark backend caps pyspark below 4.1) on Java 17.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import ibis
import ibis.expr.types as ir

from features.build import features_expr, training_expr
from features.cutoffs import Horizons, as_cutoff, check_label_cutoffs, data_window
from features.errors import PropensityError

REQUIRED = ("customer_id", "invoice_id", "ts", "is_return")  # no amount: an event log (money features left out)
LOCAL_DEFAULTS = {  # for local[*] sessions; a cluster keeps its own settings unless given
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "1g",
}


def spark_session(master: str | None = None, remote: str | None = None, conf: dict | None = None):
    """A Spark session: a master URL (``local[2]``, ``spark://host:7077``, ``yarn``) or a Spark Connect URL (``sc://host``).

    Defaults: ``$PROPENSITY_SPARK_REMOTE``, else ``$PROPENSITY_SPARK_MASTER``, else ``local[2]``.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise PropensityError(
            "The Spark engine needs its extra: pip install 'propensity[spark]' (and Java 17)."
        ) from None
    remote = remote or os.environ.get("PROPENSITY_SPARK_REMOTE")
    master = master or os.environ.get("PROPENSITY_SPARK_MASTER") or ("" if remote else "local[2]")
    builder = SparkSession.builder.appName("propensity")
    builder = builder.remote(remote) if remote else builder.master(master)
    local = master.startswith("local")
    # local workers run this interpreter (a venv); a cluster sets spark.pyspark.python itself
    local_settings = {**LOCAL_DEFAULTS, "spark.pyspark.python": sys.executable} if local else {}
    if local:  # PySpark starts its Python workers from this variable
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = {**local_settings, **(conf or {}), "spark.sql.session.timeZone": "UTC"}
    settings.setdefault("spark.ui.showConsoleProgress", "false")  # progress bars garble scheduler logs
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if not remote:
        session.sparkContext.setLogLevel(os.environ.get("PROPENSITY_SPARK_LOG_LEVEL", "ERROR"))
    return session


@dataclass
class SparkLog:
    """A canonical log on Spark: the Ibis backend and the table over it."""

    backend: object
    table: ir.Table


def open_spark_log(source: str | Path, spark, view: str = "transactions") -> SparkLog:
    """A validated canonical log read in place: Parquet (file, folder or glob) or a catalog table name."""
    text = str(source)
    try:
        is_files = text.endswith(".parquet") or Path(text).is_dir() or "://" in text or "*" in text
        frame = spark.read.parquet(text) if is_files else spark.table(text)
    except Exception as exc:  # Spark raises its own analysis errors; one sentence for the user
        raise PropensityError(f"Spark cannot read {text}: {str(exc).strip().splitlines()[0]}") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise PropensityError(
            f"{text} lacks the canonical columns {missing}: Spark reads a validated log "
            "(write one with `propensity ingest ... --export-parquet`)."
        )
    frame.createOrReplaceTempView(view)
    backend = ibis.pyspark.connect(spark)
    return SparkLog(backend, backend.table(view))


def feature_expr_for(log, cutoffs: list[date], horizons: Horizons, with_labels: bool) -> ir.Table:
    cutoffs = sorted({as_cutoff(c) for c in cutoffs})
    if with_labels:
        first_ts, last_ts = data_window(log.table)
        check_label_cutoffs(cutoffs, last_ts, horizons, first_ts)
        return training_expr(log.table, cutoffs, horizons)
    return features_expr(log.table, cutoffs, horizons.lookback_days)


def write_spark_features(
    log: SparkLog, cutoffs: list[date], out_dir: Path, horizons: Horizons | None = None, with_labels: bool = True
) -> Path:
    """Features (and labels) per cutoff, written by Spark as Parquet partitioned by ``as_of_date`` (replacing it)."""
    expr = feature_expr_for(log, cutoffs, horizons or Horizons(), with_labels)
    expr = expr.mutate(as_of_date=expr.as_of.date().cast("string"))
    log.backend.to_parquet(expr, str(out_dir), mode="overwrite", partitionBy="as_of_date")
    return Path(out_dir)


def build_on_spark(
    source: str | None,
    cutoffs: list[date],
    out_dir: Path,
    horizons: Horizons,
    with_labels: bool = True,
    master: str | None = None,
    remote: str | None = None,
) -> Path:
    """Read a validated log in place on Spark and write its feature table (the CLI's ``--engine spark``)."""
    if not source:
        raise PropensityError("With --engine spark, give --source: the validated log as Parquet (or a table name).")
    log = open_spark_log(source, spark_session(master, remote))
    return write_spark_features(log, cutoffs, out_dir, horizons, with_labels)


def spark_frame(log: SparkLog, expr: ir.Table):
    """An Ibis expression as a lazy Spark DataFrame (its in-memory cutoff table registered first)."""
    log.backend._run_pre_execute_hooks(expr)  # Ibis registers memtables here; to_parquet does the same
    return log.backend._session.sql(log.backend.compile(expr))
