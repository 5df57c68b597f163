"""End-to-end: the real `propensity` command on small generated data, and its error contract."""

import re

import pandas as pd
import pytest
from conftest import DOZEN_CSV, cli


def test_generate_then_features_for_monthly_cutoffs(tmp_path):
    gen = cli("generate", "--lines", "30000", data_dir=tmp_path)
    assert "accepted" in gen.stdout and "quarantined" in gen.stdout
    cli("features", "--start", "2023-01-01", "--end", "2023-06-01", "--out", "f.parquet", data_dir=tmp_path)
    frame = pd.read_parquet(tmp_path / "f.parquet")
    assert frame["as_of"].nunique() == 6
    assert {"recency_days", "churn", "purchase", "spend", "rfm_segment", "lifecycle", "abc_tier"} <= set(frame.columns)
    assert not frame.duplicated(["customer_id", "as_of"]).any()


def test_run_is_the_main_job_and_reruns_idempotently(tmp_path):
    first = cli("run", "--lines", "20000", "--no-train", data_dir=tmp_path)
    assert "Generated" in first.stdout
    a = pd.read_parquet(tmp_path / "features.parquet")
    second = cli("run", "--no-train", data_dir=tmp_path)
    assert "Generated" not in second.stdout
    pd.testing.assert_frame_equal(a, pd.read_parquet(tmp_path / "features.parquet"))


def test_validate_prints_counts_and_writes_the_quarantine(tmp_path):
    src = tmp_path / "log.csv"
    src.write_text(DOZEN_CSV + ",12,2021-03-30 12:00:00,1,1.0,v,UK\nF,13,2021-03-30 12:00:00,1,0,v,UK\n")
    proc = cli("validate", str(src), "--quarantine", "q.csv", data_dir=tmp_path)
    assert "missing_customer_id" in proc.stdout and "nonpositive_price" in proc.stdout
    q = pd.read_csv(tmp_path / "q.csv")
    assert q["reason"].tolist() == ["missing_customer_id", "nonpositive_price"] and q["source_row"].tolist() == [13, 14]
    assert not (tmp_path / "propensity.duckdb").exists()  # validate loads nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "missing.csv"], "does not exist"),
        (["validate", "log.csv", "--preset", "nope"], "Unknown column preset"),
        (["features", "--as-of", "2021-01-01"], "No store at"),
        (["features", "--as-of", "yesterday"], "is not a date"),
        (["features", "--start", "2021-03-01", "--end", "2021-01-01"], "--start 2021-03-01 is after --end 2021-01-01"),
        (["features", "--start", "2021-01-15", "--end", "2021-01-31"], "leaves no first of a month before"),
    ],
)
def test_user_mistakes_are_one_sentence_and_exit_2(tmp_path, args, message):
    (tmp_path / "log.csv").write_text(DOZEN_CSV)
    proc = cli(*args, data_dir=tmp_path, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2


def test_a_memory_limit_duckdb_cannot_read_is_one_sentence(tmp_path, monkeypatch):
    (tmp_path / "log.csv").write_text(DOZEN_CSV)
    monkeypatch.setenv("PROPENSITY_DUCKDB_MEMORY_LIMIT", "lots")
    proc = cli("ingest", "log.csv", data_dir=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "PROPENSITY_DUCKDB_MEMORY_LIMIT='lots' is not a memory size" in proc.stderr
    assert not (tmp_path / "propensity.duckdb").exists()
    monkeypatch.setenv("PROPENSITY_DUCKDB_MEMORY_LIMIT", "300MB")
    assert cli("ingest", "log.csv", data_dir=tmp_path).returncode == 0


def test_horizon_past_the_data_is_refused_by_the_cli(tmp_path):
    (tmp_path / "log.csv").write_text(DOZEN_CSV)
    cli("ingest", "log.csv", data_dir=tmp_path)
    proc = cli("features", "--as-of", "2021-03-15", "--churn-horizon-days", "30", data_dir=tmp_path, check=False)
    assert proc.returncode == 2 and "latest cutoff with a full horizon is 2021-03-01" in proc.stderr
    ok = cli("features", "--as-of", "2021-03-15", "--no-labels", "--out", "f.csv", data_dir=tmp_path)
    assert "1 cutoff" in ok.stdout


def test_every_command_has_help(tmp_path):
    for command in (
        "generate",
        "validate",
        "ingest",
        "features",
        "run",
        "train",
        "evaluate",
        "score",
        "risk-list",
        "target",
        "report",
        "serve",
    ):
        assert "--help" in cli(command, "--help", data_dir=tmp_path).stdout


def test_main_job_trains_registers_and_evaluate_reads_the_registry(tmp_path):
    proc = cli("run", "--lines", "40000", data_dir=tmp_path)
    assert "churn: leaderboard" in proc.stdout and "purchase: leaderboard" in proc.stdout
    assert "alias @champion" in proc.stdout and (tmp_path / "mlflow.db").exists()
    assert (tmp_path / "reports" / "2024-01-01" / "report.html").exists() and (
        tmp_path / "exports" / "risk_list_2024-01-01.csv"
    ).exists()
    assert "Report: " in proc.stdout and "Risk list (top 100 by value at risk): " in proc.stdout
    # not a terminal: one timestamped line per step, in order with the rest of the output, and a link to the runs
    assert re.search(r"^\d\d:\d\d:\d\d Main job: churn: \w+ done in \d+ s \(\d+ s in\)$", proc.stdout, re.M)
    assert proc.stdout.index("Main job: started") < proc.stdout.index("churn: leaderboard")
    assert "/#/experiments/" in proc.stdout and "/runs" in proc.stdout
    ev = cli("evaluate", "--task", "churn", "--as-of", "2023-06-01", data_dir=tmp_path)
    assert "churn @ 2023-06-01: roc_auc" in ev.stdout
    scored = cli("score", data_dir=tmp_path)
    assert "Scored" in scored.stdout and (tmp_path / "exports" / "scores_2024-01-01.parquet").exists()
    cli("risk-list", "--top", "7", "--by", "risk", "--out", "list.csv", data_dir=tmp_path)
    assert (tmp_path / "list.csv").read_bytes()[:3] == b"\xef\xbb\xbf"  # a BOM: Excel reads it as UTF-8
    listed = pd.read_csv(tmp_path / "list.csv", encoding="utf-8-sig")  # for people: their headers, percentages
    assert len(listed) == 7 and listed["Churn risk (%)"].is_monotonic_decreasing and listed["Suggested action"].all()
    assert listed["Churn risk (%)"].between(0, 100).all() and listed["Why"].notna().all()
    cli("risk-list", "--top", "7", "--by", "risk", "--out", "list.parquet", data_dir=tmp_path)
    machine = pd.read_parquet(tmp_path / "list.parquet")  # for programs: the machine names, full precision
    assert (machine["p_churn"] * 100 - listed["Churn risk (%)"]).abs().max() <= 0.05 + 1e-9  # rounded to 0.1 point
    planned = cli("target", "--budget", "20", "--out", "contacts.xlsx", data_dir=tmp_path)
    contacts = pd.read_excel(tmp_path / "contacts.xlsx")
    assert (
        "20 contacts" in planned.stdout
        and len(contacts) == 20
        and contacts["Expected gain after contact cost"].gt(0).all()
    )
    assert cli("target", "--out", "x.csv", data_dir=tmp_path, check=False).returncode == 2
    bad = cli("train", "--task", "churn", "--models", "deep_forest", data_dir=tmp_path, check=False)
    assert bad.returncode == 2 and "unknown model family 'deep_forest'" in bad.stderr
