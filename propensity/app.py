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
)
