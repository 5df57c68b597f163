"""What the CLI prints: validation counts, leaderboards, scoring summaries (Rich tables, stdout)."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class _LazyConsole:
    """A Rich console made on first use, so that importing the CLI (``--help``) does not import Rich."""

    def __init__(self, **options):
        self._options, self._console = options, None

    def __getattr__(self, name):
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


out = _LazyConsole() if sys.stdout.isatty() else _LazyConsole(width=200)  # logs and pipes get whole tables
console = _LazyConsole(stderr=True)  # progress and errors


@contextmanager
def steps(title: str):
    """Progress of a long command, as a callback taking each step's name: a spinner (on stderr) when the output goes
    to a terminal; otherwise one timestamped line per step on stdout, flushed, so that a log shows it in order."""
    if sys.stdout.isatty():
        with console.status(f"{title}...") as status:
            yield lambda step: status.update(f"{title}: {step}...")
        return
    t0 = time.perf_counter()

    def line(step: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {title}: {step} ({time.perf_counter() - t0:.0f} s in)", flush=True)

    line("started")
    yield line


def runs_page(uri: str) -> str:
    """How to browse the training runs: the MLflow UI command and the page of the project's runs (the UI's home
    page is its GenAI view)."""
    import mlflow

    from models.registry import EXPERIMENT

    remote = uri.startswith(("http://", "https://"))
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    base = uri.rstrip("/") if remote else "http://127.0.0.1:5000"
    page = f"{base}/#/experiments/{experiment.experiment_id}/runs" if experiment else "its Experiments tab"
    return page if remote else f"mlflow ui --backend-store-uri {uri}, then open {page}"


def Table(**options):  # noqa: N802 - stands for rich.table.Table, imported when a table is printed
    from rich.table import Table as RichTable

    return RichTable(**options)


def print_validation(report, title: str) -> None:
    from features.validate import REASONS

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
    if report.event_log:
        out.print(
            "The log has no amount (nor quantity and unit price): it is loaded as an event log, one line per "
            "purchase. Money features, the spend label, value segments and the value task are left out."
        )
    if report.identical_lines_kept:
        out.print(
            f"{report.identical_lines_kept:,} accepted lines are identical to an earlier line; without invoice ids "
            "they are kept as separate purchases (a mapping with duplicates_without_invoice: quarantine drops them)."
        )


LEADERBOARD = (  # header, leaderboard column, format
    ("backtest {metric}", "backtest_metric", "{:.4f}"),
    ("test ROC-AUC", "test_roc_auc", "{:.4f}"),
    ("test PR-AUC", "test_pr_auc", "{:.4f}"),
    ("log loss", "test_log_loss", "{:.4f}"),
    ("ECE", "test_ece", "{:.4f}"),
    ("lift@10%", "test_lift_at_10", "{:.2f}"),
    ("mean ROC-AUC", "mean_roc_auc", "{:.4f}"),
    ("mean PR-AUC", "mean_pr_auc", "{:.4f}"),
    ("fit s", "fit_s", "{:.2f}"),
)
VALUE_LEADERBOARD = (
    ("backtest {metric}", "backtest_metric", "{:.4f}"),
    ("test Gini", "test_gini", "{:.4f}"),
    ("test Spearman", "test_spearman", "{:.4f}"),
    ("MAE", "test_mae", "{:,.1f}"),
    ("total error", "test_total_error", "{:+.1%}"),
    ("decile MAPE", "test_decile_mape", "{:.1%}"),
    ("mean Gini", "mean_gini", "{:.4f}"),
    ("mean Spearman", "mean_spearman", "{:.4f}"),
    ("fit s", "fit_s", "{:.2f}"),
)


def print_leaderboard(result) -> None:
    metric = result.metric
    title = (
        f"{result.task}: leaderboard (* = champion; backtest {metric} on the earlier origins chooses; "
        "test = the untouched latest origin; mean = over every origin)"
    )
    table = Table(title=title)
    table.add_column("family")
    table.add_column("kind")
    columns = VALUE_LEADERBOARD if result.task == "value" else LEADERBOARD
    for header, _, _ in columns:
        table.add_column(header.format(metric=metric), justify="right")
    for row in result.leaderboard.to_dict("records"):
        mark = " *" if row["family"] == result.champion else ""
        table.add_row(f"{row['family']}{mark}", row["kind"], *(fmt.format(row[col]) for _, col, fmt in columns))
    out.print(table)
    out.print(f"Plan: {result.plan}.")
    for warning in result.warnings:
        out.print(f"Warning: {warning}")
    c = result.champion_test
    if result.task == "value":
        out.print(
            f"Champion {result.champion} on test: normalised Gini {c['gini']:.4f}, Spearman {c['spearman']:.4f}, "
            f"predicted total {c['predicted_total']:,.0f} vs realised {c['realised_total']:,.0f} "
            f"({c['total_error']:+.1%}), decile MAPE {c['decile_mape']:.1%}."
        )
    else:
        out.print(
            f"Champion {result.champion} ({result.calibration} calibration) on test: ROC-AUC {c['roc_auc']:.4f}, "
            f"PR-AUC {c['pr_auc']:.4f}, log loss {c['log_loss']:.4f}, ECE {c['ece']:.4f}."
        )
    sel = result.selection
    if sel and sel["champion"] != sel["best_on_backtest"]:
        out.print(
            f"Chosen by the one-SE rule: {sel['best_on_backtest']} scored best on the backtest "
            f"({sel['backtest_best']:.4f}); {sel['champion']} trails it by {sel['deficit'][sel['champion']]:.4f}, "
            f"within one SE of the paired difference ({sel['paired_se'][sel['champion']]:.4f}), and is simpler."
        )
    if result.margins:
        se = result.margin_se
        out.print(
            "Margins over the baselines (test, ± paired bootstrap SE): "
            + ", ".join(f"{k} {v:+.4f} ± {se.get(k, float('nan')):.4f}" for k, v in result.margins.items())
        )
        out.print(
            "Mean margins over the origins: " + ", ".join(f"{k} {v:+.4f}" for k, v in result.mean_margins.items())
        )
    if result.version:
        out.print(f"Registered as version {result.version} with alias @champion; run {result.run_id}.")


def print_scoring(result) -> None:
    m, scores = result.manifest, result.scores
    versions = ", ".join(f"{task} v{info['version']}" for task, info in m["models"].items())
    out.print(
        f"Scored {m['rows']['customers_scored']:,} customers as of {m['as_of']} in {m['timings_s']['total_s']:.1f}s "
        f"({versions}); "
        + (
            f"value at risk {m['value_at_risk_total']:,.0f} (CLV from the {m['value_source']})."
            if m["value_at_risk_total"] is not None
            else "no value at risk (the log has no amounts); ranked by P(churn)."
        )
    )
    for warning in m.get("warnings", []):
        out.print(f"Warning: {warning}")
    c = m["comparison"]
    if c.get("previous_as_of"):
        out.print(
            f"Since {c['previous_as_of']}: {c['customers_moved_segment']:,} of {c['customers_in_both']:,} customers "
            f"changed RFM segment, {c['customers_new']:,} new, {c['customers_gone']:,} gone; "
            "PSI " + ", ".join(f"{k[4:]} {v:.3f}" for k, v in c.items() if k.startswith("psi_") and v is not None) + "."
        )
    out.print("Outputs: table `scores`, " + ", ".join(map(str, result.paths)) + f"; MLflow run {m['mlflow_run_id']}.")
    columns = ["rank", "customer_id", "p_churn", "p_purchase", "expected_value", "value_at_risk", "rfm_segment"]
    columns.append("reason_1")
    columns = [c for c in columns if scores[c].notna().any()]  # a task scored without a model is left out
    out.print(scores.head(10)[columns].to_string(index=False))
