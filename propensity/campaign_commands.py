"""`propensity campaigns ...`: list the campaigns and measure them (treated vs control), and what `target
--campaign` prints."""

from __future__ import annotations

from typing import Annotated

import typer

from propensity.app import app
from propensity.campaign_printers import print_groups
from propensity.options import DataDir
from propensity.printers import Table, out

campaigns_app = typer.Typer(
    help="Campaigns: list them, and measure one once its horizon has passed.", no_args_is_help=True
)
app.add_typer(campaigns_app, name="campaigns")


@campaigns_app.command("list")
def list_(data_dir: DataDir = None):
    """The campaigns started in the store."""
    from serving.campaign_jobs import campaigns_table

    table = campaigns_table(data_dir)
    if table.empty:
        out.print("No campaign was started yet: propensity target ... --campaign NAME --holdout 10%")
        return
    rich = Table(title="Campaigns")
    for column in table.columns:
        rich.add_column(column)
    for row in table.itertuples(index=False):
        rich.add_row(*(f"{v:.0%}" if isinstance(v, float) else str(v) for v in row))
    out.print(rich)


@campaigns_app.command()
def evaluate(
    name: Annotated[str, typer.Argument(help="The campaign's name.")],
    data_dir: DataDir = None,
):
    """Treated vs control: churn, incremental retention and value with 95% intervals, cost and return, overall,
    per risk decile and per segment. Load the later log first (propensity ingest)."""
    from serving.campaign_jobs import evaluate_campaign

    result = evaluate_campaign(data_dir, name)
    c = result.campaign
    if not result.readable:
        out.print(
            f"Campaign {c.name!r} (as of {c.as_of}, {c.horizon_days}-day horizon) is not readable yet: the loaded "
            f"log must reach {c.readable_from.date()}. Load the later log (propensity ingest), then evaluate again."
        )
        return
    row = result.overall.iloc[0]
    out.print(
        f"Campaign {c.name!r} as of {c.as_of}: churn {row['churn treated']:.1%} among {int(row['treated']):,} "
        f"contacted vs {row['churn control']:.1%} among {int(row['control']):,} held out. Incremental retention "
        f"{row['incremental retention']:+.1%} (95% CI {row['retention low']:+.1%} to {row['retention high']:+.1%}), "
        f"about {row['customers retained']:,.0f} customers; incremental value {row['incremental value']:,.0f} "
        f"({row['incremental value per contact']:+,.2f} per contact"
        + (f", 95% CI {row['value low']:+,.2f} to {row['value high']:+,.2f})" if "value low" in row else ")")
        + (f"; cost {row['cost']:,.0f}, return on cost {row['return on cost']:+.0%}." if row["cost"] > 0 else ".")
    )
    for title, frame in (("By churn-risk decile (1 = riskiest)", result.by_decile), ("By segment", result.by_segment)):
        print_groups(title, frame)


@campaigns_app.command()
def uplift(
    names: Annotated[list[str], typer.Argument(help="One or more evaluated campaigns.")],
    seed: Annotated[int, typer.Option(help="Seed of the train/test split and the learners.")] = 0,
    data_dir: DataDir = None,
):
    """Learn who is retained because they were contacted (two-model and class-transformation uplift learners) and
    compare them with the churn-risk ranking by the Qini coefficient on held-out members."""
    from serving.campaign_jobs import uplift_from_campaigns

    result, shown = uplift_from_campaigns(data_dir, names, seed)
    table = Table(title=f"Qini coefficient on {result.test_members:,} held-out members (0 = random, higher = better)")
    table.add_column("ranking")
    table.add_column("Qini", justify="right")
    for name, value in sorted(result.qini.items(), key=lambda kv: -kv[1]):
        table.add_row(name, f"{value:+.4f}")
    out.print(table)
    verdict = "beats" if result.qini[result.best] > result.qini["churn risk"] else "does not beat"
    out.print(f"The best uplift learner, {result.best}, {verdict} ranking by churn risk on these campaigns.")
    if not shown:
        out.print(
            "None of these campaigns showed an overall effect (every interval includes zero): with no effect to "
            "find, these Qini figures may be noise. Do not target by them yet."
        )
