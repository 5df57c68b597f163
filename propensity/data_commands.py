"""Commands for the data: generate, validate, ingest, features."""

import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from features.errors import PropensityError
from propensity.app import app
from propensity.options import (
    DataDir,
    DbQuery,
    DbTable,
    Decimal,
    Delimiter,
    Encoding,
    Engine,
    MappingFile,
    Preset,
    Sheet,
    SourceFile,
    SparkMaster,
    SparkRemote,
    SparkSource,
    TsFormat,
)
from propensity.printers import out, print_validation, steps


def _source(path: Path, preset, mapping, ts_format, decimal, **reading):
    from features.contract import load_mapping
    from features.errors import validated
    from features.sources import Source

    m = load_mapping(preset, mapping)
    update = {"ts_format": ts_format} if ts_format else {}
    if decimal != ".":
        update["decimal"] = decimal
    m = validated(type(m), {**m.model_dump(), **update}, "--ts-format or --decimal is")
    return Source(path=path, **reading), m


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
    decimal: Decimal = ".",
    encoding: Encoding = None,
    sheet: Sheet = None,
    table: DbTable = None,
    query: DbQuery = None,
):
    """Check a log against the contract: print counts per reason and write the quarantine. Loads nothing."""
    from features.store import export_table
    from features.transactions import open_source_log

    reading = dict(delimiter=delimiter, table=table, query=query, sheet=sheet, encoding=encoding)
    with open_source_log(*_source(source, preset, mapping, ts_format, decimal, **reading)) as log:
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
    decimal: Decimal = ".",
    encoding: Encoding = None,
    sheet: Sheet = None,
    table: DbTable = None,
    query: DbQuery = None,
    export_parquet: Annotated[
        Path | None, typer.Option("--export-parquet", help="Also write the validated log here (for Spark).")
    ] = None,
    min_accepted_share: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Refuse the load (keeping the store's log) below this share of valid rows."
        ),
    ] = 0.5,
    data_dir: DataDir = None,
):
    """Validate a log and load it into the embedded store (replacing the previous log, atomically)."""
    from features.store import store_path
    from features.transactions import export_store_log, ingest_into_store

    reading = dict(delimiter=delimiter, table=table, query=query, sheet=sheet, encoding=encoding)
    with steps("Ingest") as progress:
        progress(f"reading, validating and loading {source}")
        report = ingest_into_store(
            store_path(data_dir), *_source(source, preset, mapping, ts_format, decimal, **reading), min_accepted_share
        )
        if export_parquet:
            progress(f"writing the validated log to {export_parquet}")
            exported = export_store_log(data_dir, export_parquet)
    print_validation(report, f"Loaded {source} into {store_path(data_dir)}")
    if export_parquet:
        out.print(f"Validated log ({report.accepted_rows:,} lines) -> {exported}")


def resolve_cutoffs(as_of: list[str] | None, start: str | None, end: str | None) -> list[date]:
    from features.cutoffs import as_cutoff, monthly_cutoffs

    cutoffs = [as_cutoff(a) for a in as_of or []]
    if start or end:
        if not (start and end):
            raise PropensityError("Give both --start and --end for monthly cutoffs.")
        monthly = monthly_cutoffs(start, end)
        if not monthly:  # a start after the end, or a range without a first of the month
            first, last = as_cutoff(start), as_cutoff(end)
            why = "is after" if first > last else "leaves no first of a month before"
            raise PropensityError(f"--start {first} {why} --end {last}: monthly cutoffs fall on the 1st of each month.")
        cutoffs += monthly
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
