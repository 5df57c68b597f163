"""The CLI's shared option types and choices (Typer validates the enums and lists them in --help)."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


class Task(StrEnum):
    churn = "churn"
    purchase = "purchase"
    value = "value"
    all = "all"

    def names(self) -> list[str]:
        return ["churn", "purchase", "value"] if self is Task.all else [self.value]


class RankBy(StrEnum):
    risk = "risk"
    value_at_risk = "value-at-risk"
    index = "index"  # the composite customer index, highest first


DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="PROPENSITY_DATA_DIR", help="Data directory holding the embedded store (default ./data)."
    ),
]
Preset = Annotated[str, typer.Option(help="Column preset: canonical or online_retail (UCI Online Retail I/II).")]
MappingFile = Annotated[Path | None, typer.Option("--mapping", help="YAML column mapping (overrides --preset).")]
Delimiter = Annotated[
    str | None,
    typer.Option(
        help="Text delimiter: ',', ';', '\\t', '|' or 'whitespace' (runs of spaces/tabs); default: from the header."
    ),
]
Sheet = Annotated[
    str | None, typer.Option(help="Excel: the sheet to read (default: every sheet with the same header).")
]
Encoding = Annotated[str | None, typer.Option(help="Text encoding, e.g. latin-1, cp1252, utf-16 (default utf-8).")]
Decimal = Annotated[str, typer.Option(help="Decimal separator of numbers written as text: '.' or ','.")]
TsFormat = Annotated[str | None, typer.Option("--ts-format", help="strptime format of text timestamps, e.g. %Y%m%d.")]
DbTable = Annotated[str | None, typer.Option("--table", help="Table to read from a DuckDB source file.")]
DbQuery = Annotated[str | None, typer.Option("--query", help="SQL query to read from a DuckDB source file.")]
SourceFile = Annotated[Path, typer.Argument(help="CSV, Parquet, Excel or DuckDB file.")]
AsOf = Annotated[str | None, typer.Option("--as-of", help="Which scoring run (default: the latest).")]
TaskOpt = Annotated[Task, typer.Option("--task", help="Which task.")]
OutFile = Annotated[Path, typer.Option("--out", help="Output file (.csv, .xlsx or .parquet).")]
SparkSource = Annotated[
    str | None, typer.Option(help="Spark: the validated canonical log (Parquet path/folder or table).")
]
SparkMaster = Annotated[
    str | None, typer.Option(envvar="PROPENSITY_SPARK_MASTER", help="Spark master URL (default local[2]).")
]
SparkRemote = Annotated[
    str | None, typer.Option(envvar="PROPENSITY_SPARK_REMOTE", help="Spark Connect URL, e.g. sc://host:15002.")
]


def parse_share(text: str) -> float:
    """A share given as 10% or 0.1."""
    from features.errors import PropensityError

    try:
        value = float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    except ValueError:
        raise PropensityError(f"{text!r} is not a share: write it as 10% or 0.1.") from None
    return value
