"""Everything the endpoints share, with no web framework: models, the latest batch scores, request scoring.

Models load once, at start-up. A request carries a customer's transaction lines (validated by the
same rules as ingest, computed by the same feature expression, compiled once for any as_of) or
ready feature rows, and is scored by ``serving.predictor.score_features``, the function batch
scoring uses, with segments placed against the latest batch population. One scoring thread scores
the requests that arrive together as one batch (``Batcher``).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future
from datetime import date
from pathlib import Path

import pandas as pd

from features.errors import PropensityError
from features.segments import load_segment_rules, segment_reference
from features.store import store_connection, store_path
from serving.predictor import (
    Models,
    load_models,
    score_features,
)
from serving.rest.batcher import Batcher
from serving.rest.requests import SLOT, RequestFeatures
from serving.rest.schemas import ScoredCustomer, ScoreRequest, ScoreResponse
from serving.schema import REASON_COLUMNS
from serving.score_store import scores_as_of


class UnknownCustomer(LookupError):
    """A customer id that is not in the loaded batch scores."""


def _plain(value):
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def records(frame: pd.DataFrame, skip: tuple[str, ...] = ()) -> list[dict]:
    """Scored rows as plain dicts (None for missing, ``as_of`` a date, the reason phrases as a list)."""
    columns = [c for c in ScoredCustomer.model_fields if c in frame.columns and c not in skip]
    values = {c: frame[c].tolist() for c in columns}
    values["as_of"] = [pd.Timestamp(v).date() for v in values["as_of"]]
    reasons = frame.reindex(columns=list(REASON_COLUMNS)).to_numpy(dtype=object)
    return [
        {**{c: _plain(values[c][i]) for c in columns}, "reasons": [r for r in reasons[i] if isinstance(r, str)]}
        for i in range(len(frame))
    ]


class Service:
    """Everything the endpoints share: models, the latest batch scores and their segment reference."""

    def __init__(self, data_dir: Path | None = None, models: Models | None = None):
        from models.registry import configure_tracking

        self.data_dir = data_dir
        configure_tracking(data_dir)
        self.models = models or load_models()
        for model in self.models.present:
            model.limit_threads(1)  # requests come a few rows at a time: threads would only fight the web server
        self.rules = load_segment_rules()
        self.features = RequestFeatures(self.models, self.rules)
        self.swap = threading.Lock()
        self.reload()
        self.batcher = Batcher(self.score_many)

    def reload(self) -> None:
        """Re-read the latest batch scores (after a scheduled run)."""
        scores = None
        if store_path(self.data_dir).exists():
            with store_connection(self.data_dir) as con:
                scores = scores_as_of(con)
        scores = scores if scores is not None else pd.DataFrame()
        by_id = scores.set_index("customer_id", drop=False) if len(scores) else scores
        reference = segment_reference(scores, self.rules) if len(scores) else None
        latest = pd.Timestamp(scores["as_of"].iloc[0]).date() if len(scores) else None
        with self.swap:  # the scoring thread reads reference and its date together
            self.scores, self.by_id, self.reference, self.scores_as_of = scores, by_id, reference, latest
            self.campaigns = self._campaigns()

    def _campaigns(self) -> dict[str, tuple[str, dict[str, str]]]:
        """Each stored campaign's as_of and its members' groups (treated or control)."""
        from serving.campaigns import list_campaigns

        if not store_path(self.data_dir).exists():
            return {}
        with store_connection(self.data_dir) as con:
            listed = list_campaigns(con)
            if listed.empty:
                return {}
            members = con.execute('SELECT campaign, customer_id, "group" FROM campaign_members').df()
        groups = {name: dict(zip(g["customer_id"], g["group"], strict=True)) for name, g in members.groupby("campaign")}
        return {row.name: (str(row.as_of), groups.get(row.name, {})) for row in listed.itertuples(index=False)}

    def decision(self, campaign: str, customer_id: str) -> dict:
        if campaign not in self.campaigns:
            known = sorted(self.campaigns)
            raise UnknownCustomer(
                f"There is no campaign named {campaign!r}" + (f"; the campaigns are {known}." if known else ".")
            )
        as_of, groups = self.campaigns[campaign]
        group = groups.get(customer_id, "not selected")
        return {
            "campaign": campaign,
            "as_of": as_of,
            "customer_id": customer_id,
            "group": group,
            "contact": group == "treated",
        }

    def score_many(self, requests: list[ScoreRequest]) -> list[ScoreResponse | PropensityError]:
        """Score several requests together: one validation and feature query per line-column set, one scoring call.

        Every row is scored on its own (segments against the batch population's reference, reasons
        from the model alone), so a request gets the same answer alone or in a batch.
        """
        frames: list[pd.DataFrame] = []
        errors: dict[int, PropensityError] = {}
        quarantined: dict[int, dict] = {}
        by_columns: dict[frozenset, dict[int, ScoreRequest]] = {}
        for k, request in enumerate(requests):
            if (
                request.transactions
            ):  # a missing column must not become nulls in a concatenation: one group per column set
                columns = frozenset(c for t in request.transactions for c in t.model_fields_set)
                by_columns.setdefault(columns, {})[k] = request
        with self.swap:
            reference, reference_as_of = self.reference, self.scores_as_of
        # no as_of given: the latest batch's (answers compare with the risk list), else today
        default_as_of, default_from = (reference_as_of, "latest batch") if reference_as_of else (date.today(), "today")
        groups = (
            [self.features.from_rows({k: r for k, r in enumerate(requests) if r.features}, default_as_of)]
            if any(r.features for r in requests)
            else []
        )
        groups += [self.features.from_lines(jobs, default_as_of) for jobs in by_columns.values()]
        keys, later = [], {}
        for frame, key, failed, *counts in groups:
            if frame is not None:
                frames.append(frame)
                keys.append(key)
            errors.update(failed)
            if counts:
                quarantined.update(counts[0])
                later.update(counts[1])
        answers: list[ScoreResponse | PropensityError | None] = [errors.get(k) for k in range(len(requests))]
        if frames:
            scored = score_features(
                frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True),
                self.models,
                reference,
                rules=self.rules,
            )
            owner = pd.concat(keys) if len(keys) > 1 else keys[0]
            owner = owner.reindex(scored["customer_id"])
            scored["customer_id"] = owner["customer_id"].to_numpy()
            mine: dict[int, list] = {}
            for slot, record in zip(owner[SLOT].tolist(), records(scored, skip=("rank",)), strict=True):
                mine.setdefault(int(slot), []).append(record)  # a batch rank means nothing to one request
            for k in range(len(requests)):
                if answers[k] is None:
                    answers[k] = ScoreResponse(
                        customers=mine.get(k, []),
                        quarantined=quarantined.get(k, {}),
                        segments_reference=reference_as_of,
                        as_of_from="request" if requests[k].as_of else default_from,
                        lines_on_or_after_as_of=later.get(k, 0),
                    )
        return answers

    def close(self) -> None:
        self.batcher.stop()
        self.features.close()

    def submit(self, request: ScoreRequest) -> Future:
        """Queue a request for the scoring thread (it joins whatever batch comes next)."""
        return self.batcher.submit(request)

    def score(self, request: ScoreRequest) -> ScoreResponse:
        """Score one request (through the scoring thread, like the endpoint)."""
        return self.submit(request).result()

    def customer(self, customer_id: str) -> dict:
        if not len(self.by_id) or customer_id not in self.by_id.index:
            where = (
                f"the batch scores as of {self.scores_as_of}"
                if self.scores_as_of
                else "any batch scores (none are loaded)"
            )
            raise UnknownCustomer(f"Customer {customer_id!r} is not in {where}.")
        return records(self.by_id.loc[[customer_id]])[0]

    def model_card(self) -> dict:
        """What each loaded model is: its registry version and its record (family, horizon, population,
        feature spec, the cutoffs that trained and calibrated it, its test figures)."""
        return {
            task: {"name": info["name"], "version": info["version"], **info["record"].model_dump()}
            for task, info in self.models.info.items()
        }
