"""Score customers as of a date: churn and purchase probabilities, value at risk, segments, actions.

Uses the registered champion models and the one feature definition training used
(``features.build``), so batch scoring and training cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache, cached_property
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from features.build import build_features
from features.cutoffs import as_cutoff, data_window
from features.definitions import FEATURES
from features.errors import PropensityError
from features.segments import SegmentReference, SegmentRules, assign_segments, load_segment_rules
from features.transactions import TransactionLog
from models.explain import btyd_values, contributions
from models.packaged import PropensityModel
from models.spec import FeatureSpec, model_input
from serving.alerts import alerts, load_indicators
from serving.carried import cluster_labels, index_columns
from serving.reasons import REASON_COLUMNS, top_reasons
from serving.value import customer_value, with_scored_inputs

LIFECYCLE_INPUTS = ("recency_days", "tenure_days", "overdue_ratio", "frequency_days")


@cache
def load_actions() -> dict:
    return yaml.safe_load(resources.files("serving").joinpath("config/actions.yaml").read_text())


@dataclass
class Models:
    """The champions scoring uses: churn, purchase or both (a task without a model scores as missing)."""

    churn: PropensityModel | None
    purchase: PropensityModel | None
    info: dict = field(default_factory=dict)  # task -> registry name, version, run id, tags
    value: PropensityModel | None = None  # net spend in its horizon; without it, the historic rate (a warning)

    def __post_init__(self):
        if self.churn is None and self.purchase is None:
            raise PropensityError("No model to score with: train one with `propensity train --task churn`.")

    @property
    def present(self) -> list[PropensityModel]:
        return [m for m in (self.churn, self.purchase, self.value) if m is not None]

    @property
    def lead(self) -> PropensityModel:
        """The model that explains the ranking and carries the clusters: churn when there is one."""
        return self.churn or self.purchase

    @property
    def ranked_by(self) -> str:
        """The scored column the ranking sorts on: value at risk; P(churn) when no value can be known (models
        trained on an event log, without amounts, and no value model); P(purchase) without a churn model."""
        if not self.churn:
            return "p_purchase"
        return "value_at_risk" if self.value_known else "p_churn"

    @property
    def value_known(self) -> bool:
        """CLV can be computed: from the value model, or from the historic net spend rate (models trained
        with money features; not on an event log)."""
        return self.value is not None or "net_spend_total" in self.feature_spec.numeric

    @cached_property
    def reads(self) -> list[str]:
        """The columns the champions use (scoring asks for these only; a BG/NBD champion reads its BTYD summary)."""
        return list(dict.fromkeys(c for m in self.present for c in m.reads))

    @cached_property
    def feature_spec(self) -> FeatureSpec:
        """Every column any champion takes (computed once: the REST service asks on every request)."""
        return FeatureSpec.union(*(m.feature_spec for m in self.present))

    @property
    def lookback_days(self) -> int:
        """The population the models were trained on (it travels inside each model)."""
        days = {m.lookback_days for m in self.present}
        if len(days) > 1:
            found = ", ".join(f"{m.task} {m.lookback_days}" for m in self.present)
            raise PropensityError(
                f"The champions were trained on different populations (lookback days: {found}): retrain them with "
                "one lookback."
            )
        return days.pop()


def load_models(
    churn_version: int | None = None, purchase_version: int | None = None, value_version: int | None = None
) -> Models:
    """The champion models (by alias) from the MLflow registry, or the given versions.

    A task with no champion registered is left out (its columns score as missing; without a value
    model, value is the historic rate); a version asked for that does not exist, or no churn or
    purchase champion at all, is an error.
    """
    from models.registry import has_champion, load_model, model_version_info

    versions = {"churn": churn_version, "purchase": purchase_version, "value": value_version}
    wanted = [t for t, v in versions.items() if v is not None or has_champion(t)]
    if not {"churn", "purchase"} & set(wanted):
        wanted = ["churn", "purchase"]  # the registry's own sentence says what is missing
    loaded = {t: load_model(t, versions[t]) for t in wanted}
    info = {t: model_version_info(t, versions[t]) for t in loaded}
    return Models(loaded.get("churn"), loaded.get("purchase"), info, loaded.get("value"))


def default_as_of(log: TransactionLog) -> date:
    """The day after the last transaction: everything in the log is history."""
    _, last_ts = data_window(log.table)
    return last_ts.date() + timedelta(days=1)


def reference_columns(rules: SegmentRules) -> list[str]:
    """The columns a segment reference (and the lifecycle rule) reads: kept in the scores table. Features, or
    predicted value and CLV where a rule names them (``serving.value.SCORED_RULE_INPUTS``)."""
    r, vm = rules.rfm, rules.value_matrix
    wanted = [r.recency, r.frequency, r.monetary, vm.frequency, vm.order_value, rules.abc.value, *LIFECYCLE_INPUTS]
    return list(dict.fromkeys(wanted))


def kept_columns(rules: SegmentRules) -> list[str]:
    """The feature columns the scores table keeps: what the segment rules and the alerts read (the report counts
    the alerts from them)."""
    return list(dict.fromkeys([*reference_columns(rules), *(i.column for i in load_indicators().values())]))


def require_model_inputs(features: pd.DataFrame, models: Models) -> None:
    """Refuse feature rows without a feature either model takes (say which transaction column it comes from)."""
    missing = [c for c in models.reads if c not in features.columns]
    if missing:
        sources = sorted({col for f in FEATURES if f.name in missing for col in f.requires})
        hint = f": they come from the transaction column(s) {sources}, which these lines lack" if sources else ""
        raise PropensityError(f"The models need the features {missing}{hint}.")


def _looked_up(values: np.ndarray, table: dict, default: str) -> tuple[np.ndarray, np.ndarray]:
    """``table``'s entry for each value (``default`` for a value it lacks), and where the value was missing."""
    codes, uniques = pd.factorize(values)
    labels = np.array([*(table.get(u, default) for u in uniques), default], dtype=object)
    return labels[codes], codes == -1  # code -1 (a missing value) takes the last label, the default


def _actions(segments: np.ndarray, lifecycle: np.ndarray) -> np.ndarray:
    """The configured action per RFM segment (the default for a segment the table lacks); without a segment (an event
    log), the action of the lifecycle stage, when the table has ``by_lifecycle``."""
    actions = load_actions()
    chosen, unsegmented = _looked_up(segments, actions["actions"], actions["default"])
    if actions.get("by_lifecycle") and unsegmented.any():
        by_stage, _ = _looked_up(lifecycle, actions["by_lifecycle"], actions["default"])
        chosen = np.where(unsegmented, by_stage, chosen)
    return chosen


def score_features(
    features: pd.DataFrame,
    models: Models,
    reference: SegmentReference | None = None,
    reasons_share: float = 1.0,
    reasons_from_value_at_risk: float | None = None,
    rules: SegmentRules | None = None,
) -> pd.DataFrame:
    """Score feature rows: the one scoring path batch scoring, Spark and the REST service share.

    Ranked by value at risk (highest first). Segments are placed against ``reference`` (default: the
    rows' own population per as_of); reasons are written for the top ``reasons_share`` of the ranking,
    or, when ``reasons_from_value_at_risk`` is given, for every row with at least that value at risk (that
    P(purchase) without a churn model: the ranking is then by P(purchase), see ``Models.ranked_by``).
    Columns are computed as arrays and the result is built once: the REST service scores one
    customer at a time, and each pandas operation costs it a fixed ~0.1 ms whatever the row count.
    """
    rules = rules or load_segment_rules()  # the configured ones unless given
    require_model_inputs(features, models)
    if unread := [c for c in models.feature_spec.columns if c not in features.columns]:
        features = features.assign(**dict.fromkeys(unread, np.nan))  # inputs no champion uses: absent is fine
    X = model_input(features, models.feature_spec)  # each model takes its columns
    missing = np.full(len(features), np.nan)
    p_churn = models.churn.predict_proba(X) if models.churn else missing
    p_purchase = models.purchase.predict_proba(X) if models.purchase else missing
    spend, value = customer_value(features, X, models)
    at_risk = p_churn * value
    ranked_by = {"value_at_risk": at_risk, "p_churn": p_churn, "p_purchase": p_purchase}[models.ranked_by]
    ids = features["customer_id"].array
    order = np.lexsort((np.asarray(ids, dtype=object), -ranked_by))  # descending (missing last), then id
    rule_inputs = with_scored_inputs(features, reference_columns(rules), spend, value)
    segments = assign_segments(rule_inputs, rules, reference, keys=False)
    index = index_columns(features, models.lead)
    columns = {
        "customer_id": ids.take(order),
        "as_of": features["as_of"].to_numpy()[order],
        "rank": np.arange(1, len(features) + 1),
        **{c: features[c].to_numpy()[order] for c in kept_columns(rules) if c in features.columns},
        "p_churn": p_churn[order],
        "p_purchase": p_purchase[order],
        "predicted_value": spend[order],
        "expected_value": value[order],
        "value_at_risk": at_risk[order],
        **{c: segments[c].to_numpy()[order] for c in segments.columns},
        "cluster": cluster_labels(features, models.lead)[order],
        **{name: values[order] for name, values in index.items()},
        "action": _actions(segments["rfm_segment"].to_numpy()[order], segments["lifecycle"].to_numpy()[order]),
        "alerts": alerts(features)[order],
    }
    explained = int(np.ceil(len(features) * reasons_share))
    if reasons_from_value_at_risk is not None:
        explained = int((ranked_by >= reasons_from_value_at_risk).sum())
    top = order[:explained]
    X_top = X.take(top)
    values = pd.concat([features.take(top), btyd_values(models.lead, X_top)], axis=1)
    risk_sign = 1.0 if models.lead.task == "churn" else -1.0  # a purchase model's drivers, read as churn risk
    reasons = top_reasons(contributions(models.lead, X_top), values, typical=models.lead.reference, risk_sign=risk_sign)
    for name in REASON_COLUMNS:
        column = np.full(len(features), None, dtype=object)
        column[:explained] = reasons[name].to_numpy()
        columns[name] = pd.array(column, dtype="string")
    return pd.DataFrame(columns)


def score_customers(log: TransactionLog, as_of: date | str, models: Models, reasons_share: float = 1.0) -> pd.DataFrame:
    """One row per eligible customer as of a date (the models' population), ranked by value at risk."""
    as_of = as_cutoff(as_of)
    lookback_days = models.lookback_days
    features = build_features(log.source, [as_of], lookback_days)
    if features.empty:
        raise PropensityError(f"No customer bought in the {lookback_days} days before {as_of}: nothing to score.")
    return score_features(features, models, reasons_share=reasons_share)
