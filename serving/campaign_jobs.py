"""The campaign jobs the CLI calls: start a campaign (contact list, control list, record), list and evaluate them."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from features.cutoffs import data_window
from features.errors import PropensityError
from features.store import require_table, store_connection
from serving.campaign_eval import Evaluation, evaluate, minimum_detectable_effect
from serving.campaigns import (
    Campaign,
    campaign_exists,
    draw_control,
    list_campaigns,
    load_campaign,
    name_taken,
    new_campaign,
    save_campaign,
)
from serving.exports import write_list
from serving.schema import LIST_COLUMNS


@dataclass(frozen=True)
class Started:
    campaign: Campaign
    contacts: Path
    control: Path
    mde: float  # the smallest incremental retention this holdout detects (80% power, 5% two-sided)


def control_path(out: Path) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}_control{out.suffix}")


def start_campaign(
    out: Path,
    name: str,
    holdout: float,
    data_dir: Path | None = None,
    as_of: date | str | None = None,
    seed: int = 0,
    **targeting,
) -> Started:
    """Plan the contacts (``serving.targeting.plan_contacts``), hold out a stratified random control group, write
    the contact list (treated only) and the control list beside it, store the campaign and log it in MLflow."""
    from models.registry import configure_tracking, model_version_info
    from serving.jobs import stored_scores
    from serving.targeting import PLAN_COLUMNS, plan_contacts

    scores = stored_scores(data_dir, as_of)
    with store_connection(data_dir) as con:  # a name is used once: refuse before writing any list
        if campaign_exists(con, name):
            raise name_taken(name)
    if targeting.pop("by_uplift", False):
        from serving.uplift_scoring import uplift_of

        targeting["uplift"] = uplift_of(data_dir, scores)
    chosen, plan = plan_contacts(scores, **targeting)
    held = draw_control(chosen, holdout, name, seed)
    configure_tracking(data_dir)
    horizon = model_version_info("churn", int(chosen["churn_model_version"].iloc[0]))["record"].horizon_days
    treated = chosen[~held]
    figures = {
        "cost_per_contact": float(targeting.get("cost_per_contact", 0.0)),
        "ranked_by_uplift": float("uplift" in targeting),
        "success_rate": plan.success_rate,
        "expected_saves": float(treated["expected_save"].sum()),
        "expected_value_saved": float(treated["expected_value_saved"].sum()),
        "expected_net": float(treated["expected_gain"].sum()),
    }
    campaign, members = new_campaign(name, chosen, held, horizon, holdout, seed, figures)
    columns = [*(c for c in LIST_COLUMNS if c in chosen.columns), *PLAN_COLUMNS]
    contacts = write_list(treated[columns].reset_index(drop=True), out)
    control = write_list(chosen.loc[held, [c for c in LIST_COLUMNS if c in chosen.columns]], control_path(out))
    with store_connection(data_dir, read_only=False) as con:
        save_campaign(con, campaign, members)
    _log_campaign(campaign)
    mde = minimum_detectable_effect(float(chosen["p_churn"].mean()), campaign.treated, campaign.control)
    return Started(campaign, contacts, control, mde)


def _log_campaign(campaign: Campaign) -> None:
    import mlflow

    with mlflow.start_run(run_name=f"campaign-{campaign.name}", nested=mlflow.active_run() is not None):
        mlflow.set_tags({"kind": "campaign", "campaign": campaign.name, "as_of": campaign.as_of})
        record = asdict(campaign)
        expected = record.pop("expected")
        mlflow.log_params({k: v for k, v in record.items() if v is not None})
        mlflow.log_metrics({f"expected_{k}" if not k.startswith("expected") else k: v for k, v in expected.items()})


def campaigns_table(data_dir: Path | None = None) -> pd.DataFrame:
    with store_connection(data_dir) as con:
        return list_campaigns(con)


def evaluate_campaign(data_dir: Path | None, name: str, seed: int = 0) -> Evaluation:
    """The campaign's outcome in the loaded log (``readable=False`` before its horizon has passed)."""
    from features.transactions import TransactionLog

    with store_connection(data_dir) as con:
        require_table(con, "transactions")
        campaign, members = load_campaign(con, name)
        log = TransactionLog.on(con)
        return evaluate(log.source, pd.Timestamp(data_window(log.table)[1]), campaign, members, seed)


def uplift_from_campaigns(data_dir: Path | None, names: list[str], seed: int = 0):
    """Learn the contact's uplift on retention from evaluated campaigns: each learner's Qini on held-out members
    against the churn-risk ranking, logged as an MLflow run (``models.uplift``); and whether any of the campaigns
    showed an overall effect (its interval excludes zero), without which the Qini figures may be noise."""
    from features.build import build_features
    from features.transactions import TransactionLog
    from models.registry import configure_tracking
    from models.spec import FeatureSpec, model_input, spec_for_columns
    from models.uplift import compare_uplift

    frames, shown = [], False
    with store_connection(data_dir) as con:
        require_table(con, "transactions")
        log = TransactionLog.on(con)
        last_ts = pd.Timestamp(data_window(log.table)[1])
        for name in names:
            campaign, members = load_campaign(con, name)
            result = evaluate(log.source, last_ts, campaign, members, seed)
            if not result.readable:
                raise PropensityError(
                    f"Campaign {name!r} has no outcome yet: the loaded log must reach {campaign.readable_from.date()}."
                )
            overall = result.overall.iloc[0]
            shown |= bool(overall["retention low"] > 0 or overall["retention high"] < 0)
            rows = build_features(log.source, [pd.Timestamp(campaign.as_of).date()], scoring_features=False)
            rows["customer_id"] = rows["customer_id"].astype(str)
            frames.append(result.outcomes.merge(rows, on="customer_id", how="inner"))
    data = pd.concat(frames, ignore_index=True)
    numeric = spec_for_columns(data.columns).numeric
    # a feature no member has (the year-ago season in a log shorter than a year) tells the learners nothing
    spec = FeatureSpec(
        tuple(c for c in numeric if c not in ("p_churn", "expected_value", "spend") and data[c].notna().any()), ()
    )
    treated = (data["group"] == "treated").to_numpy()
    if treated.sum() < 50 or (~treated).sum() < 50:
        raise PropensityError(
            f"An uplift model needs at least 50 treated and 50 control customers with outcomes; these campaigns have "
            f"{int(treated.sum())} and {int((~treated).sum())}."
        )
    X = model_input(data, spec)[list(spec.numeric)]
    retained = ~data["churned"].to_numpy(dtype=bool)
    result = compare_uplift(X, treated, retained, data["p_churn"].to_numpy(float), spec, seed)
    configure_tracking(data_dir)
    _log_uplift(names, result)
    return result, shown


def _log_uplift(names: list[str], result) -> None:
    import mlflow

    from models.uplift import register_uplift
    from serving.report_parts import qini_chart

    with mlflow.start_run(run_name=f"uplift-{'+'.join(names)}", nested=mlflow.active_run() is not None):
        mlflow.set_tags({"kind": "uplift", "campaigns": ",".join(names), "best": result.best})
        mlflow.log_params({"train_members": result.train_members, "test_members": result.test_members})
        mlflow.log_metrics({f"qini_{k.replace(' ', '_')}": v for k, v in result.qini.items()})
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "qini.png"
            path.write_bytes(qini_chart(result.curves, result.test_members))
            mlflow.log_artifact(str(path))
        register_uplift(result, names)
