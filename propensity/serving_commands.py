"""Commands for scoring and what retention teams use: score, report, serve, risk-list, target, and the main job."""

import time
from pathlib import Path
from typing import Annotated

import typer

from features.errors import PropensityError
from propensity.app import app
from propensity.campaign_printers import print_campaign_start
from propensity.options import (
    AsOf,
    DataDir,
    Engine,
    OutFile,
    RankBy,
    SparkMaster,
    SparkRemote,
    SparkSource,
    parse_share,
)
from propensity.printers import out, print_leaderboard, print_scoring, runs_page, steps


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

    with steps("Scoring") as progress:
        progress("loading the models")
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
        result = score_store(data_dir, as_of, reasons_share, models, progress)
    print_scoring(result)


@app.command()
def report(
    as_of: AsOf = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Folder (default: <data dir>/reports).")] = None,
    data_dir: DataDir = None,
):
    """A self-contained HTML report of a scoring run: models, segments, migration, top of the risk list."""
    from serving.jobs import report_store

    with steps("Report") as progress:
        progress("reading the scores and the models' training plots")
        result = report_store(data_dir, as_of, out_dir)
    out.print(f"Report -> {result.html} (with {len(result.images)} PNGs beside it)")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each loads the models).")] = 1,
    data_dir: DataDir = None,
):
    """The REST service: /health, /status, /model, POST /score, /customers/{id}, /risk-list,
    /campaigns/{name}/customers/{id} (OpenAPI at /docs).

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
    by: Annotated[
        RankBy, typer.Option(help="Rank by risk, value at risk or the composite customer index.")
    ] = RankBy.value_at_risk,
    segment: Annotated[list[str] | None, typer.Option(help="Only these RFM segments (repeatable).")] = None,
    min_value: Annotated[float, typer.Option(help="Only customers with at least this CLV (expected_value).")] = 0.0,
    as_of: AsOf = None,
    data_dir: DataDir = None,
):
    """The retention team's list from the latest (or a given) batch scores."""
    from serving.jobs import write_risk_list

    chosen, scores_as_of = write_risk_list(out_file, data_dir, as_of, top, by.value, segment, min_value)
    ranked = chosen.attrs.get("ranked_by", by.value)
    out.print(f"{len(chosen)} customers (scores as of {scores_as_of}, by {ranked}) -> {out_file}")


@app.command()
def target(
    out_file: OutFile,
    budget: Annotated[int | None, typer.Option(help="At most this many contacts.")] = None,
    cost_per_contact: Annotated[float, typer.Option(help="Cost of one contact; only worthwhile ones are kept.")] = 0.0,
    value_per_save: Annotated[float | None, typer.Option(help="Value of one retained customer.")] = None,
    success_rate: Annotated[float, typer.Option(help="Share of would-be churners a contact retains.")] = 0.2,
    campaign: Annotated[
        str | None, typer.Option(help="Start a campaign of this name: a control group is held out and recorded.")
    ] = None,
    holdout: Annotated[
        str | None, typer.Option(help="With --campaign: the share held out as control, e.g. 10% or 0.1 (default 10%).")
    ] = None,
    seed: Annotated[int, typer.Option(help="With --campaign: the control group's random seed.")] = 0,
    uplift: Annotated[
        bool,
        typer.Option(
            "--uplift", help="Rank by the registered uplift model's expected incremental value (campaigns uplift)."
        ),
    ] = False,
    as_of: AsOf = None,
    data_dir: DataDir = None,
):
    """Budgeted targeting: the contact list that maximises expected value saved, with its expected figures.

    With --campaign NAME, a stratified random share (--holdout) of the eligible customers is held out as a control
    group, listed in <out>_control.<ext> for suppression, and the campaign is stored so that `propensity campaigns
    evaluate NAME` can measure it once its horizon has passed."""
    from serving.jobs import write_contact_list

    targeting = dict(
        budget=budget,
        cost_per_contact=cost_per_contact,
        value_per_save=value_per_save,
        success_rate=success_rate,
        by_uplift=uplift,
    )
    if campaign is None:
        if holdout is not None:
            raise PropensityError("A holdout belongs to a campaign: add --campaign NAME.")
        plan = write_contact_list(out_file, data_dir, as_of, **targeting)
        out.print(
            f"{plan.contacts:,} contacts -> {out_file}: cost {plan.cost:,.0f}, expected churners reached "
            f"{plan.expected_churners:,.1f}, expected saves {plan.expected_saves:,.1f}, "
            f"expected value saved {plan.expected_value_saved:,.0f}, expected net {plan.expected_net:,.0f} "
            + ("(saves from the uplift model)." if uplift else f"(success rate {plan.success_rate:.0%}).")
        )
        return
    from serving.campaign_jobs import start_campaign

    started = start_campaign(out_file, campaign, parse_share(holdout or "10%"), data_dir, as_of, seed, **targeting)
    print_campaign_start(started)


@app.command()
def run(
    lines: Annotated[
        int | None, typer.Option(help="Size of the generated demo log (default 200000), when one is generated.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the demo log.")] = 42,
    regenerate: Annotated[bool, typer.Option(help="Regenerate the demo log even if the store has one.")] = False,
    train: Annotated[bool, typer.Option(help="Train and register the models (quick profile).")] = True,
    data_dir: DataDir = None,
):
    """The main job: (demo log) -> validate -> features -> backtest, refit, register (quick) -> score -> report."""
    from propensity.main_job import run_main_job

    t0 = time.perf_counter()
    from features.store import store_path

    if lines is not None and store_path(data_dir).exists() and not regenerate:
        out.print(f"The store already holds a log, so --lines {lines:,} is not used (add --regenerate to replace it).")
    lines = lines or 200_000
    out.print("The main job usually takes 1-3 minutes on a 2-core machine (training is most of it).")
    with steps("Main job") as progress:
        result = run_main_job(data_dir, lines, seed, regenerate, train, progress)
    if result.generated:
        out.print(f"Generated a {lines:,}-line demo log and loaded it into {result.store}.")
    out.print(
        f"Features: {result.rows:,} customer-cutoff rows over {result.cutoffs} monthly cutoffs -> {result.features}"
    )
    for task_result in result.training:
        print_leaderboard(task_result)
    if result.tracking_uri:
        uri = result.tracking_uri
        out.print(f"Runs and registered models: {uri} (browse: {runs_page(uri)})")
    if result.scoring is not None:
        print_scoring(result.scoring)
        out.print(f"Report: {result.report}")
        out.print(f"Risk list (top 100 by value at risk): {result.risk_list}")
    out.print(f"Done in {time.perf_counter() - t0:.1f}s.")
