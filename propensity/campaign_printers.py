"""What the campaign commands print: the campaign just started, and treated vs control by group."""

from __future__ import annotations

from propensity.printers import Table, out


def print_campaign_start(started) -> None:
    c = started.campaign
    out.print(
        f"Campaign {c.name!r} as of {c.as_of}: {c.treated:,} to contact -> {started.contacts}, {c.control:,} held out "
        f"as control ({c.holdout:.0%}, stratified by risk decile and segment) -> {started.control} (suppress them in "
        f"the CRM). Expected saves {c.expected['expected_saves']:,.1f}, expected net {c.expected['expected_net']:,.0f}."
    )
    out.print(
        f"With these group sizes the campaign can detect an incremental retention of {started.mde:.1%} or more "
        f"(80% power, 5% two-sided); the outcome is readable once the log reaches {c.readable_from.date()}: "
        f"propensity campaigns evaluate {c.name}"
    )


def print_groups(title: str, frame) -> None:
    shown = ["treated", "control", "churn treated", "churn control", "incremental retention", "retention low"]
    shown += ["retention high", "incremental value"]
    rich = Table(title=title)
    key = frame.columns[0]
    for column in [key, *shown]:
        rich.add_column(column, justify="left" if column == key else "right")
    for _, row in frame.astype({key: object}).iterrows():
        cells = [str(row[key])]
        for column in shown:
            v = row.get(column)
            if v is None or v != v:
                cells.append("")
            elif column in ("treated", "control"):
                cells.append(f"{int(v):,}")
            elif column == "incremental value":
                cells.append(f"{v:,.0f}")
            else:
                cells.append(f"{v:+.1%}" if "retention" in column else f"{v:.1%}")
        rich.add_row(*cells)
    out.print(rich)
