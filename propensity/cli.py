"""The one CLI, a thin face over the library. User mistakes print one sentence and exit 2."""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from features.build import Horizons, as_cutoff, monthly_cutoffs
from features.contract import load_mapping
from features.errors import PropensityError
from features.segments import load_segment_rules
from features.sources import Source
from features.store import data_dir as resolve_data_dir
from features.store import store_path, write_frame
from features.validate import REASONS, ValidationReport

app = typer.Typer(
    help="Propensity: churn and purchase propensity from retail transaction logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
out = Console() if sys.stdout.isatty() else Console(width=200)  # logs and pipes get whole tables

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data directory holding the embedded store [env PROPENSITY_DATA_DIR, default ./data]."
    ),
]
Preset = Annotated[str, typer.Option(help="Column preset: canonical or online_retail (UCI Online Retail I/II).")]
MappingFile = Annotated[Path | None, typer.Option("--mapping", help="YAML column mapping (overrides --preset).")]
Delimiter = Annotated[str | None, typer.Option(help="CSV delimiter (default: detected).")]
TsFormat = Annotated[
    str | None, typer.Option("--ts-format", help="strptime format of text timestamps, e.g. %Y%m%d.")
]
DbTable = Annotated[str | None, typer.Option("--table", help="Table to read from a DuckDB source file.")]
DbQuery = Annotated[str | None, typer.Option("--query", help="SQL query to read from a DuckDB source file.")]


def _source(path: Path, delimiter, table, query) -> Source:
    return Source(path=path, delimiter=delimiter, table=table, query=query)


def _mapping(preset: str, mapping: Path | None, ts_format: str | None):
    m = load_mapping(preset, mapping)
    return m.model_copy(update={"ts_format": ts_format}) if ts_format else m


def print_report(report: ValidationReport, title: str) -> None:
    table = Table(title=title)
    table.add_column("rows")
    table.add_column("count", justify="right")
    table.add_column("meaning", overflow="fold")
    table.add_row("input", f"{report.input_rows:,}", "")
    table.add_row("accepted", f"{report.accepted_rows:,}", f"incl. {report.returns:,} returns")
    table.add_row("quarantined", f"{report.quarantined_rows:,}", "by reason below" if report.by_reason else "")
    for reason, n in report.by_reason.items():
        table.add_row(f"  {reason}", f"{n:,}", REASONS.get(reason, ""))
    out.print(table)
    if report.first_ts is not None:
        out.print(f"Accepted lines span {report.first_ts} to {report.last_ts}.")


@app.command()
def generate(
    lines: Annotated[
        int, typer.Option(help="About how many lines to generate (about 10k customers per 1M lines).")
    ] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    dirty_share: Annotated[
        float, typer.Option(help="Share of lines corrupted on purpose, to exercise validation.")
    ] = 0.001,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write Parquet here instead of loading the store.")
    ] = None,
    data_dir: DataDir = None,
):
    """Generate a seeded synthetic log and load it into the embedded store (or write Parquet)."""
    import pyarrow.parquet as pq

    from features.pipeline import ingest_into_store
    from features.store import atomic_path
    from features.synthetic import generate_lines

    t0 = time.perf_counter()
    table = generate_lines(lines, seed=seed, dirty_share=dirty_share)
    target = out_file or (Path(store_path(data_dir)).parent / "raw" / "synthetic.parquet")
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    out.print(f"Generated {table.num_rows:,} lines in {time.perf_counter() - t0:.1f}s -> {target}")
    if out_file is None:
        report = ingest_into_store(store_path(data_dir), Source(target), load_mapping("canonical"))
        print_report(report, f"Loaded into {store_path(data_dir)}")


@app.command()
def validate(
    source: Annotated[Path, typer.Argument(help="CSV, Parquet, Excel or DuckDB file.")],
    quarantine: Annotated[
        Path | None, typer.Option(help="Write quarantined rows with their reason here (.csv or .parquet).")
    ] = None,
    preset: Preset = "canonical",
    mapping: MappingFile = None,
    delimiter: Delimiter = None,
    ts_format: TsFormat = None,
    table: DbTable = None,
    query: DbQuery = None,
):
    """Check a log against the contract: print counts per reason and write the quarantine. Loads nothing."""
    from features.pipeline import open_source_log
    from features.store import export_table

    log = open_source_log(_source(source, delimiter, table, query), _mapping(preset, mapping, ts_format))
    print_report(log.report, f"Validation of {source}")
    if quarantine is not None:
        export_table(log.con, "SELECT * FROM quarantine ORDER BY source_row", quarantine)
        out.print(f"Quarantine ({log.report.quarantined_rows:,} rows) -> {quarantine}")
    log.close()


@app.command()
def ingest(
    source: Annotated[Path, typer.Argument(help="CSV, Parquet, Excel or DuckDB file.")],
    preset: Preset = "canonical",
    mapping: MappingFile = None,
    delimiter: Delimiter = None,
    ts_format: TsFormat = None,
    table: DbTable = None,
    query: DbQuery = None,
    export_parquet: Annotated[
        Path | None,
        typer.Option("--export-parquet", help="Also write the validated log here (for the Spark engine)."),
    ] = None,
    data_dir: DataDir = None,
):
    """Validate a log and load it into the embedded store (replacing the previous log, atomically)."""
    from features.pipeline import ingest_into_store

    report = ingest_into_store(
        store_path(data_dir), _source(source, delimiter, table, query), _mapping(preset, mapping, ts_format)
    )
    print_report(report, f"Loaded {source} into {store_path(data_dir)}")
    if export_parquet:
        from features.store import connect_store, export_table

        con = connect_store(store_path(data_dir), read_only=True)
        try:
            export_table(con, "SELECT * FROM transactions", export_parquet)
        finally:
            con.close()
        out.print(f"Validated log ({report.accepted_rows:,} lines) -> {export_parquet}")


def resolve_cutoffs(as_of: list[str] | None, start: str | None, end: str | None) -> list[date]:
    cutoffs = [as_cutoff(a) for a in as_of or []]
    if start or end:
        if not (start and end):
            raise PropensityError("Give both --start and --end for monthly cutoffs.")
        cutoffs += monthly_cutoffs(start, end)
    if not cutoffs:
        raise PropensityError("Give at least one --as-of date, or --start and --end for monthly cutoffs.")
    return sorted(set(cutoffs))


@app.command()
def features(
    as_of: Annotated[
        list[str] | None, typer.Option("--as-of", help="Cutoff date (repeatable). Features use ts < as_of.")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First monthly cutoff (with --end).")] = None,
    end: Annotated[str | None, typer.Option(help="Last monthly cutoff (with --start).")] = None,
    labels: Annotated[
        bool, typer.Option(help="Add churn/purchase/spend labels (refuses cutoffs whose horizon runs past the data).")
    ] = True,
    segments: Annotated[bool, typer.Option(help="Add RFM, lifecycle, value-matrix and ABC segments.")] = True,
    churn_horizon_days: Annotated[int, typer.Option(help="Churn label horizon.")] = 90,
    purchase_horizon_days: Annotated[int, typer.Option(help="Purchase label horizon.")] = 30,
    lookback_days: Annotated[
        int, typer.Option(help="Population: customers with a purchase in this many days before as_of.")
    ] = 365,
    segment_rules: Annotated[
        Path | None, typer.Option("--segments-config", help="YAML segment rules (default: the shipped rules).")
    ] = None,
    out_file: Annotated[
        Path, typer.Option("--out", help="Output file (.parquet or .csv); with --engine spark, a Parquet folder.")
    ] = Path("data/features.parquet"),
    engine: Annotated[
        str, typer.Option(help="duckdb (the embedded store) or spark (reads --source in place).")
    ] = "duckdb",
    source: Annotated[
        str | None, typer.Option(help="Spark: a validated canonical log, Parquet path/folder or table name.")
    ] = None,
    spark_master: Annotated[
        str | None, typer.Option(help="Spark master URL [env PROPENSITY_SPARK_MASTER, default local[2]].")
    ] = None,
    spark_remote: Annotated[
        str | None, typer.Option(help="Spark Connect URL, e.g. sc://host:15002 [env PROPENSITY_SPARK_REMOTE].")
    ] = None,
    data_dir: DataDir = None,
):
    """Build the feature table (one row per customer and cutoff) from the store's log, or on Spark."""
    from features.pipeline import feature_table, open_store_log

    cutoffs = resolve_cutoffs(as_of, start, end)
    horizons = Horizons(churn_horizon_days, purchase_horizon_days, lookback_days)
    if engine not in ("duckdb", "spark"):
        raise PropensityError(f"Unknown engine {engine!r}: use duckdb or spark.")
    if engine == "spark":
        from features.spark import open_spark_log, spark_session, write_spark_features

        if not source:
            raise PropensityError("With --engine spark, give --source: the validated log as Parquet (or a table name).")
        t0 = time.perf_counter()
        log = open_spark_log(source, spark_session(spark_master, spark_remote))
        write_spark_features(log, cutoffs, out_file, horizons, with_labels=labels)
        out.print(
            f"Features for {len(cutoffs)} cutoff(s) written by Spark in {time.perf_counter() - t0:.1f}s -> {out_file}/as_of_date=*/"
            + ("" if not segments else " (segments are computed at scoring, not on Spark)")
        )
        return
    rules = load_segment_rules(segment_rules) if segments else None
    log = open_store_log(store_path(data_dir))
    t0 = time.perf_counter()
    frame = feature_table(log, cutoffs, horizons, with_labels=labels, rules=rules)
    log.close()
    write_frame(frame, out_file)
    out.print(
        f"{len(frame):,} rows x {frame.shape[1]} columns for {len(cutoffs)} cutoff(s) in {time.perf_counter() - t0:.1f}s -> {out_file}"
    )
    if labels and len(frame):
        rates = frame.groupby("as_of")[["churn", "purchase"]].mean().round(3)
        rates.insert(0, "customers", frame.groupby("as_of").size())
        out.print(rates.to_string())


def print_leaderboard(result, metric: str) -> None:
    table = Table(
        title=f"{result.task}: leaderboard (validation {metric} picks, * = champion; test metrics on the untouched latest cutoff)"
    )
    for col in (
        "family",
        "kind",
        f"valid {metric}",
        "test ROC-AUC",
        "test PR-AUC",
        "log loss",
        "Brier",
        "ECE",
        "lift@10%",
        "fit s",
    ):
        table.add_column(col, justify="left" if col in ("family", "kind") else "right")
    for row in result.leaderboard.itertuples():
        mark = " *" if row.family == result.champion else ""
        table.add_row(
            f"{row.family}{mark}",
            row.kind,
            f"{row.valid_metric:.4f}",
            f"{row.test_roc_auc:.4f}",
            f"{row.test_pr_auc:.4f}",
            f"{row.test_log_loss:.4f}",
            f"{row.test_brier:.4f}",
            f"{row.test_ece:.4f}",
            f"{row.test_lift_at_10:.2f}",
            f"{row.fit_s:.2f}",
        )
    out.print(table)
    c = result.champion_test
    out.print(
        f"Champion {result.champion} (calibrated) on test: ROC-AUC {c['roc_auc']:.4f}, PR-AUC {c['pr_auc']:.4f}, "
        f"log loss {c['log_loss']:.4f}, ECE {c['ece']:.4f}."
    )
    sel = result.selection
    if sel and sel["champion"] != sel["best_on_valid"]:
        out.print(
            f"Chosen by the one-SE rule: {sel['best_on_valid']} scored best on validation ({sel['valid_best']:.4f}); "
            f"{sel['champion']} trails it by {sel['deficit'][sel['champion']]:.4f}, within one SE of the paired difference "
            f"({sel['paired_se'][sel['champion']]:.4f}), and is simpler."
        )
    if result.margins:
        se = result.margin_se
        out.print(
            "Margins over baselines (test, ± paired bootstrap SE): "
            + ", ".join(f"{k} {v:+.4f}" + (f" ± {se[k]:.4f}" if k in se else "") for k, v in result.margins.items())
        )
    if result.version:
        out.print(f"Registered as version {result.version} with alias @champion; run {result.run_id}.")


TaskOpt = Annotated[str, typer.Option("--task", help="churn, purchase or all.")]


def _tasks(task: str) -> list[str]:
    if task not in ("churn", "purchase", "all"):
        raise PropensityError(f"Unknown task {task!r}: use churn, purchase or all.")
    return ["churn", "purchase"] if task == "all" else [task]


@app.command()
def train(
    task: TaskOpt = "all",
    models: Annotated[
        list[str] | None,
        typer.Option("--models", help="Model families to compare (repeatable); baselines always run."),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The quick profile: few trials (tests, demos).")] = False,
    config: Annotated[Path | None, typer.Option(help="Training config YAML (default: the shipped one).")] = None,
    trials: Annotated[int | None, typer.Option(help="Override the Optuna trial budget per family.")] = None,
    data_dir: DataDir = None,
):
    """Train and compare every model family and baseline per task; calibrate and register the champion in MLflow."""
    from features.pipeline import open_store_log
    from models.registry import configure_tracking, project_run
    from training.config import load_config
    from training.train import train_task

    overrides = {"models": models}
    if trials:
        overrides["tuning"] = {"n_trials": trials}
    cfg = load_config(config, "quick" if quick else None, **overrides)
    tasks = _tasks(task)
    uri = configure_tracking(data_dir)
    log = open_store_log(store_path(data_dir))
    try:
        with project_run():
            for name in tasks:
                with console.status(f"Training {name}...") as status:
                    result = train_task(log, name, cfg, progress=lambda msg: status.update(f"Training {msg}..."))
                print_leaderboard(result, cfg.metric)
    finally:
        log.close()
    out.print(f"Runs and models live in {uri} (browse: mlflow ui --backend-store-uri {uri}).")


@app.command()
def evaluate(
    as_of: Annotated[
        str, typer.Option("--as-of", help="Cutoff to evaluate on (its label horizon must be inside the data).")
    ],
    task: TaskOpt = "churn",
    version: Annotated[
        int | None, typer.Option(help="Registered model version (default: the @champion alias).")
    ] = None,
    data_dir: DataDir = None,
):
    """Re-score a registered model on a chosen cutoff."""
    from features.pipeline import open_store_log
    from models.registry import configure_tracking
    from training.config import load_config
    from training.train import evaluate_registered

    configure_tracking(data_dir)
    log = open_store_log(store_path(data_dir))
    try:
        for name in _tasks(task):
            metrics = evaluate_registered(log, name, as_cutoff(as_of), load_config(), version)
            out.print(
                f"{name} @ {as_of}: "
                + ", ".join(
                    f"{k} {v:.4f}"
                    for k, v in metrics.items()
                    if k in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_at_10", "base_rate")
                )
                + f", n {metrics['n']}"
            )
    finally:
        log.close()


@app.command()
def score(
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Score as of this date (default: the day after the last transaction)."),
    ] = None,
    reasons_share: Annotated[
        float, typer.Option(help="Write reasons for this top share of the ranking (1 = everyone).", min=0.0, max=1.0)
    ] = 1.0,
    churn_version: Annotated[int | None, typer.Option(help="Churn model version (default: @champion).")] = None,
    purchase_version: Annotated[
        int | None, typer.Option(help="Purchase model version (default: @champion).")
    ] = None,
    engine: Annotated[
        str, typer.Option(help="duckdb (the embedded store) or spark (reads --source, writes --out).")
    ] = "duckdb",
    source: Annotated[
        str | None, typer.Option(help="Spark: the validated canonical log (Parquet path/folder or table).")
    ] = None,
    out_dir: Annotated[
        str | None, typer.Option("--out", help="Spark: output folder (Parquet partitioned by as_of_date).")
    ] = None,
    spark_master: Annotated[
        str | None, typer.Option(help="Spark master URL [env PROPENSITY_SPARK_MASTER, default local[2]].")
    ] = None,
    spark_remote: Annotated[
        str | None, typer.Option(help="Spark Connect URL [env PROPENSITY_SPARK_REMOTE].")
    ] = None,
    data_dir: DataDir = None,
):
    """Batch scoring: the store's `scores` table (a rerun replaces that as_of), Parquet/CSV exports, a manifest in MLflow.

    Exit codes: 0 done, 2 a problem with the input or setup (one sentence on stderr), 1 an unexpected failure.
    """
    if engine not in ("duckdb", "spark"):
        raise PropensityError(f"Unknown engine {engine!r}: use duckdb or spark.")
    if engine == "spark":
        from features.spark import open_spark_log, spark_session
        from models.registry import configure_tracking
        from serving.predictor import default_as_of, load_models
        from serving.spark_scoring import score_on_spark

        if not (source and out_dir):
            raise PropensityError("With --engine spark, give --source (the validated log) and --out (a folder).")
        configure_tracking(data_dir)
        models = load_models(churn_version, purchase_version)
        log = open_spark_log(source, spark_session(spark_master, spark_remote))
        cutoff = as_cutoff(as_of) if as_of else default_as_of(log)
        t0 = time.perf_counter()
        result = score_on_spark(log, cutoff, models, out_dir, reasons_share)
        out.print(
            f"Scored {result['customers']:,} customers as of {cutoff} on Spark in {time.perf_counter() - t0:.1f}s -> {out_dir}/as_of_date={cutoff}/"
        )
        return
    result = run_scoring(as_of, reasons_share, churn_version, purchase_version, data_dir)
    print_scoring(result)


def run_scoring(as_of, reasons_share, churn_version, purchase_version, data_dir, progress_label: str = "Scoring"):
    from models.registry import configure_tracking
    from serving.batch import score_store
    from serving.predictor import load_models

    configure_tracking(data_dir)
    with console.status(f"{progress_label}: loading the models...") as status:
        models = load_models(churn_version, purchase_version)
        return score_store(
            data_dir, models, as_of, reasons_share, progress=lambda step: status.update(f"{progress_label}: {step}...")
        )


def print_scoring(result) -> None:
    m, scores = result.manifest, result.scores
    out.print(
        f"Scored {m['rows']['customers_scored']:,} customers as of {m['as_of']} in {m['timings_s']['total_s']:.1f}s "
        f"(churn v{m['models']['churn']['version']}, purchase v{m['models']['purchase']['version']}); "
        f"value at risk {m['value_at_risk_total']:,.0f}."
    )
    c = m["comparison"]
    if c.get("previous_as_of"):
        out.print(
            f"Since {c['previous_as_of']}: {c['customers_moved_segment']:,} of {c['customers_in_both']:,} customers changed RFM segment, "
            f"{c['customers_new']:,} new, {c['customers_gone']:,} gone; PSI p_churn {c['psi_p_churn']:.3f}, p_purchase {c['psi_p_purchase']:.3f}."
        )
    out.print("Outputs: table `scores`, " + ", ".join(map(str, result.paths)) + f"; MLflow run {m['mlflow_run_id']}.")
    out.print(
        scores.head(10)[
            ["rank", "customer_id", "p_churn", "p_purchase", "value_at_risk", "rfm_segment", "reason_1"]
        ].to_string(index=False)
    )


@app.command()
def report(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Which scoring run (default: the latest).")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Folder for the report (default: <data dir>/reports).")
    ] = None,
    data_dir: DataDir = None,
):
    """A self-contained HTML report of a scoring run: models, segments, migration since the last run, top of the risk list."""
    result = run_report(as_of, out_dir, data_dir)
    out.print(f"Report -> {result.html} (with {len(result.images)} PNGs beside it)")


def run_report(as_of, out_dir, data_dir):
    from features.store import connect_store
    from features.store import data_dir as resolve_data_dir
    from models.registry import configure_tracking
    from serving.batch import write_report

    configure_tracking(data_dir)
    con = connect_store(store_path(data_dir), read_only=True)
    try:
        return write_report(con, out_dir or resolve_data_dir(data_dir) / "reports", as_of)
    finally:
        con.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (each loads the models; POST /reload reaches one).")
    ] = 1,
    data_dir: DataDir = None,
):
    """The REST service: /health, /model, POST /score, /customers/{id}, /risk-list (OpenAPI at /docs). API key: env PROPENSITY_API_KEY."""
    try:
        import uvicorn

        from serving.api import create_app
    except ImportError:
        raise PropensityError("The REST service needs its extra: pip install 'propensity[serve]'.") from None
    if workers > 1:  # uvicorn starts the workers from an import string; they find the data dir in the environment
        os.environ["PROPENSITY_DATA_DIR"] = str(resolve_data_dir(data_dir).resolve())
        out.print(f"Serving on http://{host}:{port} (OpenAPI: /docs) with {workers} worker processes.")
        uvicorn.run(
            "serving.api:app_from_environment", factory=True, host=host, port=port, workers=workers, log_level="warning"
        )
        return
    app_ = create_app(data_dir)
    out.print(
        f"Serving on http://{host}:{port} (OpenAPI: /docs); champion versions {app_.state.service.models.info['churn']['version']} "
        f"(churn), {app_.state.service.models.info['purchase']['version']} (purchase); scores as of {app_.state.service.scores_as_of}."
    )
    uvicorn.run(app_, host=host, port=port, log_level="warning")


LIST_COLUMNS = [
    "rank",
    "customer_id",
    "p_churn",
    "p_purchase",
    "expected_value",
    "value_at_risk",
    "rfm_segment",
    "lifecycle",
    "value_matrix",
    "abc_tier",
    "cluster",
    "action",
    "reason_1",
    "reason_2",
    "reason_3",
]
ListAsOf = Annotated[str | None, typer.Option("--as-of", help="Which scoring run (default: the latest).")]


def stored_scores(as_of: str | None, data_dir):
    from features.store import connect_store
    from serving.batch import scores_as_of

    con = connect_store(store_path(data_dir), read_only=True)
    try:
        scores = scores_as_of(con, as_cutoff(as_of) if as_of else None)
    finally:
        con.close()
    if scores is None or scores.empty:
        raise PropensityError(f"There are no scores{' as of ' + as_of if as_of else ''}: run `propensity score` first.")
    return scores


@app.command("risk-list")
def risk_list_command(
    out_file: Annotated[Path, typer.Option("--out", help="Output file (.csv, .xlsx or .parquet).")],
    top: Annotated[int, typer.Option(help="How many customers.", min=1)] = 100,
    by: Annotated[str, typer.Option(help="Rank by risk or value-at-risk.")] = "value-at-risk",
    segment: Annotated[list[str] | None, typer.Option(help="Only these RFM segments (repeatable).")] = None,
    min_value: Annotated[float, typer.Option(help="Only customers with at least this expected value.")] = 0.0,
    as_of: ListAsOf = None,
    data_dir: DataDir = None,
):
    """The retention team's list from the latest (or a given) batch scores: scores, value at risk, segments, reasons, action."""
    from serving.predictor import risk_list

    scores = stored_scores(as_of, data_dir)
    chosen = risk_list(scores, top, by, segment, min_value)
    write_frame(chosen[[c for c in LIST_COLUMNS if c in chosen.columns]], out_file)
    out.print(f"{len(chosen)} customers (scores as of {scores['as_of'].iloc[0].date()}, by {by}) -> {out_file}")


@app.command()
def target(
    out_file: Annotated[Path, typer.Option("--out", help="Output file (.csv, .xlsx or .parquet).")],
    budget: Annotated[int | None, typer.Option(help="At most this many contacts.")] = None,
    cost_per_contact: Annotated[
        float, typer.Option(help="Cost of one contact; only contacts worth more are kept.")
    ] = 0.0,
    value_per_save: Annotated[
        float | None, typer.Option(help="Value of one retained customer (default: each customer's expected value).")
    ] = None,
    success_rate: Annotated[float, typer.Option(help="Share of would-be churners a contact retains.")] = 0.2,
    as_of: ListAsOf = None,
    data_dir: DataDir = None,
):
    """Budgeted targeting: the contact list that maximises expected value saved, with its expected figures."""
    from serving.targeting import plan_contacts

    scores = stored_scores(as_of, data_dir)
    chosen, plan = plan_contacts(scores, budget, cost_per_contact, value_per_save, success_rate)
    columns = [
        *[c for c in LIST_COLUMNS if c in chosen.columns],
        "expected_save",
        "expected_value_saved",
        "expected_gain",
        "cumulative_net",
    ]
    write_frame(chosen[columns], out_file)
    out.print(
        f"{plan.contacts:,} contacts -> {out_file}: cost {plan.cost:,.0f}, expected saves {plan.expected_saves:,.1f}, "
        f"expected value saved {plan.expected_value_saved:,.0f}, expected net {plan.expected_net:,.0f} "
        f"(success rate {plan.success_rate:.0%})."
    )


@app.command()
def run(
    lines: Annotated[int, typer.Option(help="Size of the generated demo log when the store is empty.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed of the demo log.")] = 42,
    regenerate: Annotated[bool, typer.Option(help="Regenerate the demo log even if the store has one.")] = False,
    train: Annotated[
        bool, typer.Option(help="Train and register the churn and purchase models (quick profile).")
    ] = True,
    data_dir: DataDir = None,
):
    """The main job: (demo log if the store is empty) -> validate -> features -> train, compare, register (quick) -> score -> report."""
    from propensity.main_job import run_main_job

    t0 = time.perf_counter()
    with console.status("Running the main job...") as status:
        result = run_main_job(
            data_dir,
            lines=lines,
            seed=seed,
            regenerate=regenerate,
            train=train,
            progress=lambda msg: status.update(f"Main job: {msg}..."),
        )
    if result.generated:
        out.print(f"Generated a {lines:,}-line demo log and loaded it into {result.store}.")
    out.print(
        f"Features: {result.rows:,} customer-cutoff rows over {result.cutoffs} monthly cutoffs -> {result.features}"
    )
    for task_result in result.training:
        print_leaderboard(task_result, "pr_auc")
    if result.tracking_uri:
        out.print(
            f"Runs and registered models: {result.tracking_uri} (browse: mlflow ui --backend-store-uri {result.tracking_uri})"
        )
    if result.scoring is not None:
        print_scoring(result.scoring)
        out.print(f"Report: {result.report}")
        out.print(f"Risk list (top 100 by value at risk): {result.risk_list}")
    out.print(f"Done in {time.perf_counter() - t0:.1f}s.")


def main() -> None:
    try:
        app()
    except PropensityError as exc:
        console.print(f"[bold red]Error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
