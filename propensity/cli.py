"""The one CLI: each command parses its options and calls one library function. User mistakes print one
sentence and exit 2."""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from features.errors import PropensityError
from propensity.options import (
    AsOf,
    DataDir,
    DbQuery,
    DbTable,
    Delimiter,
    Engine,
    MappingFile,
    OutFile,
    Preset,
    RankBy,
    SourceFile,
    SparkMaster,
    SparkRemote,
    SparkSource,
    Task,
    TaskOpt,
    TsFormat,
)
from propensity.printers import console, out, print_leaderboard, print_scoring, print_validation

app = typer.Typer(
    help="Propensity: churn and purchase propensity from retail transaction logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _source(path: Path, delimiter, table, query, preset, mapping, ts_format):
    from features.contract import load_mapping
    from features.sources import Source

    m = load_mapping(preset, mapping)
    m = m.model_copy(update={"ts_format": ts_format}) if ts_format else m
    return Source(path=path, delimiter=delimiter, table=table, query=query), m


@app.command()
def generate(
    lines: Annotated[int, typer.Option(help="About how many lines (about 10k customers per 1M lines).")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    dirty_share: Annotated[float, typer.Option(help="Share of lines corrupted on purpose, for validation.")] = 0.001,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write Parquet here instead of loading the store.")
    ] = None,
    data_dir: DataDir = None,
):
    """Generate a seeded synthetic log and load it into the embedded store (or write Parquet)."""
    from features.transactions import load_demo_log

    t0 = time.perf_counter()
    path, report = load_demo_log(data_dir, lines, seed, dirty_share, out_file)
    out.print(f"Generated about {lines:,} lines in {time.perf_counter() - t0:.1f}s -> {path}")
    if report is not None:
        print_validation(report, "Loaded into the store")


@app.command()
def validate(
    source: SourceFile,
    quarantine: Annotated[Path | None, typer.Option(help="Write quarantined rows with their reason here.")] = None,
    preset: Preset = "canonical",
    mapping: MappingFile = None,
    delimiter: Delimiter = None,
    ts_format: TsFormat = None,
    table: DbTable = None,
    query: DbQuery = None,
):
    """Check a log against the contract: print counts per reason and write the quarantine. Loads nothing."""
    from features.store import export_table
    from features.transactions import open_source_log

    with open_source_log(*_source(source, delimiter, table, query, preset, mapping, ts_format)) as log:
        print_validation(log.report, f"Validation of {source}")
        if quarantine is not None:
            export_table(log.con, "SELECT * FROM quarantine ORDER BY source_row", quarantine)
            out.print(f"Quarantine ({log.report.quarantined_rows:,} rows) -> {quarantine}")


@app.command()
def ingest(
    source: SourceFile,
    preset: Preset = "canonical",
    mapping: MappingFile = None,
    delimiter: Delimiter = None,
    ts_format: TsFormat = None,
    table: DbTable = None,
    query: DbQuery = None,
    export_parquet: Annotated[
        Path | None, typer.Option("--export-parquet", help="Also write the validated log here (for Spark).")
    ] = None,
    data_dir: DataDir = None,
):
    """Validate a log and load it into the embedded store (replacing the previous log, atomically)."""
    from features.store import store_path
    from features.transactions import export_store_log, ingest_into_store

    report = ingest_into_store(
        store_path(data_dir), *_source(source, delimiter, table, query, preset, mapping, ts_format)
    )
    print_validation(report, f"Loaded {source} into {store_path(data_dir)}")
    if export_parquet:
        out.print(f"Validated log ({report.accepted_rows:,} lines) -> {export_store_log(data_dir, export_parquet)}")


def resolve_cutoffs(as_of: list[str] | None, start: str | None, end: str | None) -> list[date]:
    from features.cutoffs import as_cutoff, monthly_cutoffs

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
        list[str] | None, typer.Option("--as-of", help="Cutoff (repeatable); features use ts < as_of.")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First monthly cutoff (with --end).")] = None,
    end: Annotated[str | None, typer.Option(help="Last monthly cutoff (with --start).")] = None,
    labels: Annotated[bool, typer.Option(help="Add labels (refuses cutoffs whose horizon runs past the data).")] = True,
    segments: Annotated[bool, typer.Option(help="Add RFM, lifecycle, value-matrix and ABC segments.")] = True,
    churn_horizon_days: Annotated[int, typer.Option(help="Churn label horizon.")] = 90,
    purchase_horizon_days: Annotated[int, typer.Option(help="Purchase label horizon.")] = 30,
    lookback_days: Annotated[int, typer.Option(help="Population: a purchase in this many days before as_of.")] = 365,
    segment_rules: Annotated[Path | None, typer.Option("--segments-config", help="YAML segment rules.")] = None,
    out_file: Annotated[
        Path, typer.Option("--out", help="Output file (.parquet or .csv); with --engine spark, a Parquet folder.")
    ] = Path("data/features.parquet"),
    engine: Annotated[
        Engine, typer.Option(help="duckdb (the store) or spark (reads --source in place).")
    ] = Engine.duckdb,
    source: SparkSource = None,
    spark_master: SparkMaster = None,
    spark_remote: SparkRemote = None,
    data_dir: DataDir = None,
):
    """Build the feature table (one row per customer and cutoff) from the store's log, or on Spark."""
    from features.cutoffs import Horizons

    cutoffs = resolve_cutoffs(as_of, start, end)
    horizons = Horizons(churn_horizon_days, purchase_horizon_days, lookback_days)
    t0 = time.perf_counter()
    if engine is Engine.spark:
        from features.spark import build_on_spark

        build_on_spark(source, cutoffs, out_file, horizons, labels, spark_master, spark_remote)
        note = " (segments are computed at scoring, not on Spark)" if segments else ""
        out.print(
            f"Features for {len(cutoffs)} cutoff(s) by Spark in {time.perf_counter() - t0:.1f}s -> {out_file}/{note}"
        )
        return
    from features.transactions import write_feature_table

    frame = write_feature_table(data_dir, cutoffs, out_file, horizons, labels, segments, segment_rules)
    out.print(
        f"{len(frame):,} rows x {frame.shape[1]} columns, {len(cutoffs)} cutoff(s), "
        f"{time.perf_counter() - t0:.1f}s -> {out_file}"
    )
    if labels and len(frame):
        rates = frame.groupby("as_of")[["churn", "purchase"]].mean().round(3)
        rates.insert(0, "customers", frame.groupby("as_of").size())
        out.print(rates.to_string())


@app.command()
def train(
    task: TaskOpt = Task.all,
    models: Annotated[list[str] | None, typer.Option("--models", help="Families to compare (repeatable).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="The quick profile: few trials (tests, demos).")] = False,
    config: Annotated[Path | None, typer.Option(help="Training config YAML (default: the shipped one).")] = None,
    trials: Annotated[int | None, typer.Option(help="Override the Optuna trial budget per family.")] = None,
    data_dir: DataDir = None,
):
    """Backtest and compare every family and baseline per task; refit, calibrate and register the champion."""
    from training.config import load_config
    from training.jobs import train_store

    cfg = load_config(
        config, "quick" if quick else None, models=models, tuning={"n_trials": trials} if trials else None
    )
    with console.status("Training...") as status:
        results, uri = train_store(data_dir, task.names(), cfg, progress=lambda m: status.update(f"Training {m}..."))
    for result in results:
        print_leaderboard(result, cfg.metric)
    out.print(f"Runs and models live in {uri} (browse: mlflow ui --backend-store-uri {uri}).")


@app.command()
def evaluate(
    as_of: Annotated[
        str, typer.Option("--as-of", help="Cutoff to evaluate on (its label window must be in the data).")
    ],
    task: TaskOpt = Task.churn,
    version: Annotated[int | None, typer.Option(help="Registered model version (default: @champion).")] = None,
    data_dir: DataDir = None,
):
    """Re-score a registered model on a chosen cutoff, with its own horizon and population."""
    from training.jobs import evaluate_store

    for name in task.names():
        metrics = evaluate_store(data_dir, name, as_of, version)
        shown = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_at_10", "base_rate")
        out.print(f"{name} @ {as_of}: " + ", ".join(f"{k} {metrics[k]:.4f}" for k in shown) + f", n {metrics['n']}")


@app.command()
def score(
    as_of: Annotated[str | None, typer.Option("--as-of", help="Default: the day after the last transaction.")] = None,
    reasons_share: Annotated[
        float, typer.Option(help="Reasons for this top share (1 = everyone).", min=0, max=1)
    ] = 1.0,
    churn_version: Annotated[int | None, typer.Option(help="Churn model version (default: @champion).")] = None,
    purchase_version: Annotated[int | None, typer.Option(help="Purchase model version (default: @champion).")] = None,
    engine: Annotated[Engine, typer.Option(help="duckdb (the store) or spark (reads --source).")] = Engine.duckdb,
    source: SparkSource = None,
    out_dir: Annotated[str | None, typer.Option("--out", help="Spark: output folder (Parquet by as_of).")] = None,
    spark_master: SparkMaster = None,
    spark_remote: SparkRemote = None,
    data_dir: DataDir = None,
):
    """Batch scoring: the store's `scores` table (a rerun replaces that as_of), exports, a manifest in MLflow.

    Exit codes: 0 done, 2 a problem with the input or setup (one sentence on stderr), 1 an unexpected failure.
    """
    from serving.jobs import load_champions, score_on_spark_source, score_store

    with console.status("Scoring: loading the models...") as status:
        models = load_champions(data_dir, churn_version, purchase_version)
        if engine is Engine.spark:
            if not (source and out_dir):
                raise PropensityError("With --engine spark, give --source (the validated log) and --out (a folder).")
            t0 = time.perf_counter()
            r = score_on_spark_source(source, out_dir, as_of, reasons_share, models, spark_master, spark_remote)
            out.print(
                f"Scored {r['customers']:,} customers as of {r['as_of']} on Spark in "
                f"{time.perf_counter() - t0:.1f}s -> {out_dir}/as_of_date={r['as_of']}/"
            )
            return
        result = score_store(data_dir, as_of, reasons_share, models, lambda step: status.update(f"Scoring: {step}..."))
    print_scoring(result)


@app.command()
def report(
    as_of: AsOf = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Folder (default: <data dir>/reports).")] = None,
    data_dir: DataDir = None,
):
    """A self-contained HTML report of a scoring run: models, segments, migration, top of the risk list."""
    from serving.jobs import report_store

    result = report_store(data_dir, as_of, out_dir)
    out.print(f"Report -> {result.html} (with {len(result.images)} PNGs beside it)")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each loads the models).")] = 1,
    data_dir: DataDir = None,
):
    """The REST service: /health, /model, POST /score, /customers/{id}, /risk-list (OpenAPI at /docs).

    API key: env PROPENSITY_API_KEY."""
    try:
        from serving.rest.app import serve as run_server
    except ImportError:
        raise PropensityError("The REST service needs its extra: pip install 'propensity[serve]'.") from None
    out.print(f"Serving on http://{host}:{port} (OpenAPI: /docs) with {workers} worker process(es).")
    run_server(data_dir, host, port, workers)


@app.command("risk-list")
def risk_list_command(
    out_file: OutFile,
    top: Annotated[int, typer.Option(help="How many customers.", min=1)] = 100,
    by: Annotated[RankBy, typer.Option(help="Rank by risk or value at risk.")] = RankBy.value_at_risk,
    segment: Annotated[list[str] | None, typer.Option(help="Only these RFM segments (repeatable).")] = None,
    min_value: Annotated[float, typer.Option(help="Only customers with at least this expected value.")] = 0.0,
    as_of: AsOf = None,
    data_dir: DataDir = None,
):
    """The retention team's list from the latest (or a given) batch scores."""
    from serving.jobs import write_risk_list

    chosen, scores_as_of = write_risk_list(out_file, data_dir, as_of, top, by.value, segment, min_value)
    out.print(f"{len(chosen)} customers (scores as of {scores_as_of}, by {by.value}) -> {out_file}")


@app.command()
def target(
    out_file: OutFile,
    budget: Annotated[int | None, typer.Option(help="At most this many contacts.")] = None,
    cost_per_contact: Annotated[float, typer.Option(help="Cost of one contact; only worthwhile ones are kept.")] = 0.0,
    value_per_save: Annotated[float | None, typer.Option(help="Value of one retained customer.")] = None,
    success_rate: Annotated[float, typer.Option(help="Share of would-be churners a contact retains.")] = 0.2,
    as_of: AsOf = None,
    data_dir: DataDir = None,
):
    """Budgeted targeting: the contact list that maximises expected value saved, with its expected figures."""
    from serving.jobs import write_contact_list

    plan = write_contact_list(out_file, data_dir, as_of, budget, cost_per_contact, value_per_save, success_rate)
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
    train: Annotated[bool, typer.Option(help="Train and register the models (quick profile).")] = True,
    data_dir: DataDir = None,
):
    """The main job: (demo log) -> validate -> features -> backtest, refit, register (quick) -> score -> report."""
    from propensity.main_job import run_main_job

    t0 = time.perf_counter()
    with console.status("Running the main job...") as status:
        result = run_main_job(data_dir, lines, seed, regenerate, train, lambda m: status.update(f"Main job: {m}..."))
    if result.generated:
        out.print(f"Generated a {lines:,}-line demo log and loaded it into {result.store}.")
    out.print(
        f"Features: {result.rows:,} customer-cutoff rows over {result.cutoffs} monthly cutoffs -> {result.features}"
    )
    for task_result in result.training:
        print_leaderboard(task_result, "pr_auc")
    if result.tracking_uri:
        uri = result.tracking_uri
        out.print(f"Runs and registered models: {uri} (browse: mlflow ui --backend-store-uri {uri})")
    if result.scoring is not None:
        print_scoring(result.scoring)
        out.print(f"Report: {result.report}")
        out.print(f"Risk list (top 100 by value at risk): {result.risk_list}")
    out.print(f"Done in {time.perf_counter() - t0:.1f}s.")


def main() -> None:
    try:
        app()
    except PropensityError as exc:
        console.print("[bold red]Error:[/] " + escape(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
