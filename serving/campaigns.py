"""Campaigns: a contact list with a randomised control group, kept as a record so that its outcome can be measured.

``start_campaign`` takes the eligible, ranked contact plan (``serving.targeting.plan_contacts``) and holds out a
share of it at random, stratified by churn-risk decile and segment so that treated and control customers look
alike in each stratum. Drawing is seeded by the campaign's name and seed: the same campaign draws the same control
group. The record (name, as_of, horizon, model versions, figures) and every member (treated or control, with their
scores at the time) are stored in the store's ``campaigns`` and ``campaign_members`` tables; the contact list
never holds the control group, which a second list names for suppression in the CRM.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd

from features.errors import PropensityError
from features.store import has_table, transaction

MEMBER_COLUMNS = ["campaign", "customer_id", "group", "stratum", "p_churn", "expected_value", "segment"]


@dataclass(frozen=True)
class Campaign:
    name: str
    as_of: str
    horizon_days: int
    created_at: str
    holdout: float
    seed: int
    treated: int
    control: int
    cost_per_contact: float
    churn_model_version: int | None
    value_model_version: int | None
    expected: dict  # the plan's expected figures for the treated customers

    @property
    def readable_from(self) -> pd.Timestamp:
        """The last day of the horizon: the outcome can be read once the loaded log reaches it (a log is taken as
        complete through its last day, as for training labels)."""
        return pd.Timestamp(self.as_of) + pd.Timedelta(days=self.horizon_days - 1)


def strata(plan: pd.DataFrame) -> pd.Series:
    """Churn-risk decile (1 = riskiest tenth of the eligible population) and segment, e.g. "d1|At Risk"."""
    decile = 10 - np.minimum((plan["p_churn"].rank(method="first", pct=True) * 10).to_numpy() - 1e-9, 9).astype(int)
    segment = plan["rfm_segment"] if plan["rfm_segment"].notna().any() else plan["lifecycle"]
    return pd.Series([f"d{d}|{s}" for d, s in zip(decile, segment.fillna("none"), strict=True)], index=plan.index)


def draw_control(plan: pd.DataFrame, holdout: float, name: str, seed: int = 0) -> np.ndarray:
    """Which rows of the plan are held out: in each stratum a random ``holdout`` share (rounded at random so that
    the expected share is exact), from a generator seeded by the campaign's name and seed."""
    if not 0 < holdout < 1:
        raise PropensityError(f"The holdout is a share of the eligible customers in (0, 1), e.g. 0.1; got {holdout}.")
    digest = int.from_bytes(hashlib.sha256(f"{name}|{seed}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(digest)
    held = np.zeros(len(plan), dtype=bool)
    groups = strata(plan).to_numpy()
    for stratum in sorted(set(groups)):
        rows = np.flatnonzero(groups == stratum)
        k = int(np.floor(holdout * len(rows) + rng.uniform()))
        held[rng.permutation(rows)[:k]] = True
    return held


def name_taken(name: str) -> PropensityError:
    return PropensityError(
        f"There is already a campaign named {name!r}: its control group was drawn and may have been sent; choose "
        "another name."
    )


def campaign_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return has_table(con, "campaigns") and bool(
        con.execute("SELECT count(*) FROM campaigns WHERE name = ?", [name]).fetchall()[0][0]
    )


def save_campaign(con: duckdb.DuckDBPyConnection, campaign: Campaign, members: pd.DataFrame) -> None:
    """Store the record and its members in one transaction; a name is used once."""
    if campaign_exists(con, campaign.name):
        raise name_taken(campaign.name)
    record = pd.DataFrame([{**asdict(campaign), "expected": json.dumps(campaign.expected)}])
    with transaction(con, new_campaign=record, new_members=members[MEMBER_COLUMNS]):
        con.execute("CREATE TABLE IF NOT EXISTS campaigns AS SELECT * FROM new_campaign WHERE false")
        con.execute("CREATE TABLE IF NOT EXISTS campaign_members AS SELECT * FROM new_members WHERE false")
        con.execute("INSERT INTO campaigns BY NAME SELECT * FROM new_campaign")
        con.execute("INSERT INTO campaign_members BY NAME SELECT * FROM new_members")


def load_campaign(con: duckdb.DuckDBPyConnection, name: str) -> tuple[Campaign, pd.DataFrame]:
    if not campaign_exists(con, name):
        known = list_campaigns(con)["name"].tolist()
        raise PropensityError(
            f"There is no campaign named {name!r}; "
            + (f"the campaigns are {known}." if known else "none was started (propensity target --campaign NAME).")
        )
    row = con.execute("SELECT * FROM campaigns WHERE name = ?", [name]).df().iloc[0].to_dict()
    row["expected"] = json.loads(row["expected"])
    for key in ("churn_model_version", "value_model_version"):
        row[key] = None if pd.isna(row[key]) else int(row[key])
    members = con.execute("SELECT * FROM campaign_members WHERE campaign = ? ORDER BY customer_id", [name]).df()
    return Campaign(**row), members


def list_campaigns(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    columns = ["name", "as_of", "horizon_days", "treated", "control", "holdout", "created_at"]
    if not has_table(con, "campaigns"):
        return pd.DataFrame(columns=columns)
    return con.execute(f"SELECT {', '.join(columns)} FROM campaigns ORDER BY created_at, name").df()


def new_campaign(
    name: str, plan: pd.DataFrame, held: np.ndarray, horizon_days: int, holdout: float, seed: int, figures: dict
) -> tuple[Campaign, pd.DataFrame]:
    """The record and the members of a campaign drawn from ``plan`` (``held``: the control rows)."""
    if not name or not name.strip():
        raise PropensityError("A campaign needs a name (--campaign NAME).")
    if held.all() or not held.any():
        raise PropensityError(
            f"A holdout of {holdout:.0%} of {len(plan):,} eligible customers leaves "
            f"{'no one to contact' if held.all() else 'no control group'}: contact more customers or hold out more."
        )
    segment = plan["rfm_segment"] if plan["rfm_segment"].notna().any() else plan["lifecycle"]
    members = pd.DataFrame(
        {
            "campaign": name,
            "customer_id": plan["customer_id"].astype(str).to_numpy(),
            "group": np.where(held, "control", "treated"),
            "stratum": strata(plan).to_numpy(),
            "p_churn": plan["p_churn"].to_numpy(dtype=float),
            "expected_value": plan["expected_value"].to_numpy(dtype=float),
            "segment": segment.to_numpy(),
        }
    )

    def version(task: str) -> int | None:
        column = f"{task}_model_version"
        return int(plan[column].iloc[0]) if column in plan and plan[column].notna().any() else None

    campaign = Campaign(
        name=name,
        as_of=str(pd.Timestamp(plan["as_of"].iloc[0]).date()),
        horizon_days=int(horizon_days),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        holdout=float(holdout),
        seed=int(seed),
        treated=int((~held).sum()),
        control=int(held.sum()),
        cost_per_contact=float(figures.get("cost_per_contact", 0.0)),
        churn_model_version=version("churn"),
        value_model_version=version("value"),
        expected=figures,
    )
    return campaign, members
