"""The Typer application the command modules register on (``propensity.cli`` runs it).

Help is Click's plain text (``rich_markup_mode=None``): Typer's Rich help imports a Markdown parser
and cost 0.35 s of the 0.7 s that ``propensity --help`` took (BENCHMARKS.md, "Command-line start-up")."""

import typer

app = typer.Typer(
    help="Propensity: churn and purchase propensity from retail transaction logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    epilog=(
        "Environment: PROPENSITY_DATA_DIR (the data directory, default ./data); MLFLOW_TRACKING_URI (a remote "
        "MLflow server; default the data directory's SQLite store); PROPENSITY_API_KEY (serve: the X-API-Key "
        "every request must send); PROPENSITY_DUCKDB_MEMORY_LIMIT (default 500MB; above it DuckDB spills to disk); "
        "PROPENSITY_SPARK_MASTER, PROPENSITY_SPARK_REMOTE, PROPENSITY_SPARK_LOG_LEVEL (the Spark engine). "
        "Each command's --help lists its own options."
    ),
)
