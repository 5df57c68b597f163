"""The Typer application the command modules register on (``propensity.cli`` runs it)."""

import typer

app = typer.Typer(
    help="Propensity: churn and purchase propensity from retail transaction logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
