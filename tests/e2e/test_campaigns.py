"""Campaigns end to end on a generated log with a simulated campaign of known, heterogeneous effect: `target
--campaign --holdout`, the later log loaded, `campaigns evaluate` and `campaigns uplift` (the real command)."""

from datetime import date

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import cli, point_mlflow_at

AS_OF = date(2023, 9, 1)


@pytest.fixture(scope="module")
def campaign(trained_store):
    """The trained champions score a larger generated log cut at AS_OF; half the eligible customers are held out."""
    from features.synthetic import SyntheticConfig, generate

    full = generate(SyntheticConfig(n_customers=3000, seed=11))
    pq.write_table(full, trained_store / "full.parquet")
    pq.write_table(full.filter(pc.less(full["ts"], pd.Timestamp(AS_OF))), trained_store / "cut.parquet")
    cli("ingest", "cut.parquet", data_dir=trained_store)
    cli("score", "--as-of", str(AS_OF), "--reasons-share", "0", data_dir=trained_store)
    started = cli(
        "target", "--out", "contacts.csv", "--budget", "100000", "--campaign", "sim", "--holdout", "50%",
        "--as-of", str(AS_OF), data_dir=trained_store,
    )  # fmt: skip
    return trained_store, started.stdout


def test_the_control_group_is_a_stratified_half_kept_out_of_the_contact_list(campaign):
    from features.store import store_connection
    from serving.campaigns import load_campaign

    folder, printed = campaign
    assert "held out as control (50%" in printed and "can detect an incremental retention of" in printed
    contacts = pd.read_csv(folder / "contacts.csv", dtype=str, encoding="utf-8-sig")
    control = pd.read_csv(folder / "contacts_control.csv", dtype=str, encoding="utf-8-sig")
    assert set(contacts["Customer"]).isdisjoint(control["Customer"])
    with store_connection(folder) as con:
        record, members = load_campaign(con, "sim")
    assert record.as_of == str(AS_OF) and record.horizon_days == 90 and record.churn_model_version is not None
    assert set(members.loc[members["group"] == "treated", "customer_id"]) == set(contacts["Customer"])
    assert set(members.loc[members["group"] == "control", "customer_id"]) == set(control["Customer"])
    held = members.groupby("stratum")["group"].agg(lambda g: ((g == "control").sum(), len(g)))
    assert all(abs(c - n / 2) <= 1 for c, n in held)  # half of every risk decile x segment, to the rounding
    again = cli("target", "--out", "again.csv", "--budget", "10", "--campaign", "sim", "--holdout", "10%",
                "--as-of", str(AS_OF), data_dir=folder, check=False)  # fmt: skip
    assert again.returncode == 2 and "already a campaign named 'sim'" in again.stderr
    assert not (folder / "again.csv").exists()


def test_evaluation_waits_for_the_horizon_then_recovers_the_simulated_effect_and_uplift_beats_risk(campaign):
    from features.synthetic_campaign import simulate_campaign
    from serving.campaign_jobs import evaluate_campaign, uplift_from_campaigns

    folder, _ = campaign
    early = cli("campaigns", "evaluate", "sim", data_dir=folder)
    assert "not readable yet" in early.stdout and "2023-11-29" in early.stdout
    treated = pd.read_csv(folder / "contacts.csv", dtype=str, encoding="utf-8-sig")["Customer"].tolist()
    later, truth = simulate_campaign(pq.read_table(folder / "full.parquet"), treated, AS_OF, 90, seed=1)
    assert len(truth) == len(treated) and set(truth["state"]) == {"at risk", "lost", "loyal"}
    pq.write_table(later, folder / "later.parquet")
    cli("ingest", "later.parquet", data_dir=folder)

    shown = cli("campaigns", "evaluate", "sim", data_dir=folder).stdout
    assert "Incremental retention" in shown and "By churn-risk decile" in shown and "By segment" in shown
    point_mlflow_at(folder)
    result = evaluate_campaign(folder, "sim")
    row = result.overall.iloc[0]
    true_effect = truth["effect"].mean()  # churn the contact took away from the treated, as simulated
    assert true_effect > 0.05
    assert row["retention low"] <= true_effect <= row["retention high"]
    assert row["retention low"] > 0  # large enough to be seen with these groups
    assert result.by_decile["treated"].sum() == row["treated"] and result.by_segment["control"].sum() == row["control"]

    uplift, shown = uplift_from_campaigns(folder, ["sim"])
    assert shown and uplift.qini[uplift.best] > uplift.qini["churn risk"]
    printed = cli("campaigns", "uplift", "sim", data_dir=folder).stdout
    assert f"The best uplift learner, {uplift.best}, beats ranking by churn risk" in printed
    assert "may be noise" not in printed

    # the registered uplift model now ranks the next list: it goes to the customers a contact rescues
    from features.synthetic_campaign import _states

    lines = pq.read_table(folder / "full.parquet").to_pandas().astype({"customer_id": str})
    state = _states(lines, pd.Timestamp(AS_OF), 5)
    shares = {}
    for ranking in ("uplift", "risk"):
        flags = ["--uplift"] if ranking == "uplift" else []
        cli("target", "--out", f"{ranking}.csv", "--budget", "300", "--as-of", str(AS_OF), *flags, data_dir=folder)
        chosen = pd.read_csv(folder / f"{ranking}.csv", dtype=str, encoding="utf-8-sig")["Customer"]
        shares[ranking] = state.reindex(chosen).value_counts(normalize=True)
    assert shares["uplift"]["at risk"] > shares["risk"]["at risk"]
    assert shares["uplift"].get("loyal", 0) < shares["risk"].get("loyal", 0)


def test_the_report_and_the_rest_service_show_the_campaign(campaign):
    from fastapi.testclient import TestClient

    from features.store import store_connection
    from serving.campaigns import load_campaign
    from serving.rest.app import create_app

    folder, _ = campaign
    cli("report", "--as-of", str(AS_OF), data_dir=folder)
    page = (folder / "reports" / str(AS_OF) / "report.html").read_text()
    assert "<h2>Campaigns</h2>" in page and "incremental retention (95% CI)" in page
    assert 'alt="Qini curve"' in page and "ranking by churn risk (0 = random)" in page  # the uplift run above
    with store_connection(folder) as con:
        _, members = load_campaign(con, "sim")
    point_mlflow_at(folder)
    with TestClient(create_app(folder)) as client:
        for group in ("treated", "control"):
            customer = members.loc[members["group"] == group, "customer_id"].iloc[0]
            answer = client.get(f"/campaigns/sim/customers/{customer}")
            assert answer.status_code == 200 and answer.json()["group"] == group
            assert answer.json()["contact"] is (group == "treated")
        assert client.get("/campaigns/sim/customers/nobody").json()["group"] == "not selected"
        unknown = client.get("/campaigns/winter/customers/x")
        assert unknown.status_code == 404 and "no campaign named 'winter'" in unknown.json()["detail"]
