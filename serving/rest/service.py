"""Everything the endpoints share, with no web framework: models, the latest batch scores, request scoring.

Models load once, at start-up. A request carries a customer's transaction lines (validated by the
same rules as ingest, computed by the same feature expression, compiled once for any as_of) or
ready feature rows, and is scored by ``serving.predictor.score_features``, the function batch
scoring uses, with segments placed against the latest batch population. One scoring thread scores
the requests that arrive together as one batch (``Batcher``).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import OrderedDict
from concurrent.futures import Future
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from features.compiled import CompiledFeatures
from features.contract import load_mapping
from features.cutoffs import as_cutoff
from features.errors import PropensityError
from features.segments import load_segment_rules, segment_reference
from features.sources import Source
from features.store import connect_store, store_path
from features.validate import ingest
from serving.predictor import (
    LIFECYCLE_INPUTS,
    Models,
    load_models,
    reference_columns,
    require_model_inputs,
    score_features,
)
from serving.rest.batcher import Batcher
from serving.rest.schemas import ScoredCustomer, ScoreRequest, ScoreResponse
from serving.schema import REASON_COLUMNS

COMPILED_CACHE = 8
ACCEPTED = "accepted"  # the validated lines of a batch
SLOT = "request_slot"  # the key column that says which request of a batch a line or a row belongs to


_KEYS = itertools.count()


def _request_keys(n: int) -> list[str]:
    """Opaque keys for (request, customer) pairs of a batch: the feature query's customer key."""
    return [f"r{next(_KEYS)}" for _ in range(n)]


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
        for model in (self.models.churn, self.models.purchase):
            model.limit_threads(1)  # requests come a few rows at a time: threads would only fight the web server
        self.rules = load_segment_rules()
        self.mapping = load_mapping("canonical")
        self.con = duckdb.connect(config={"threads": 1})  # a batch of requests' lines: threads only add scheduling
        self.compiled: OrderedDict = OrderedDict()
        self.names = itertools.count()
        self.swap = threading.Lock()
        self.reload()
        self.batcher = Batcher(self.score_many)

    def reload(self) -> None:
        """Re-read the latest batch scores (after a scheduled run)."""
        from serving.batch import scores_as_of

        path = store_path(self.data_dir)
        scores = None
        if path.exists():
            con = connect_store(path, read_only=True)
            try:
                scores = scores_as_of(con)
            finally:
                con.close()
        scores = scores if scores is not None else pd.DataFrame()
        by_id = scores.set_index("customer_id", drop=False) if len(scores) else scores
        reference = segment_reference(scores, self.rules) if len(scores) else None
        scores_as_of = pd.Timestamp(scores["as_of"].iloc[0]).date() if len(scores) else None
        with self.swap:  # the scoring thread reads reference and its date together
            self.scores, self.by_id, self.reference, self.scores_as_of = scores, by_id, reference, scores_as_of

    def _features_query(self) -> CompiledFeatures:
        """The prepared feature query for the columns the accepted lines have (one per column set, any as_of)."""
        key = tuple(row[:2] for row in self.con.execute(f"DESCRIBE {ACCEPTED}").fetchall())
        if key not in self.compiled:
            self.compiled[key] = CompiledFeatures(
                self.con,
                f"(SELECT * EXCLUDE ({SLOT}) FROM {ACCEPTED})",
                f"lines{next(self.names)}",
                self.models.lookback_days,
            )
            while len(self.compiled) > COMPILED_CACHE:
                self.compiled.popitem(last=False)[1].close(self.con)
        self.compiled.move_to_end(key)
        return self.compiled[key]

    def features_from_lines(
        self, jobs: dict[int, ScoreRequest]
    ) -> tuple[pd.DataFrame | None, pd.DataFrame | None, dict[int, PropensityError], dict[int, dict]]:
        """Features of several requests' lines (with the same columns) in one validation and one query.

        Each line carries its request's slot through validation. The feature query then keys each
        (slot, customer) pair by an opaque request key, so that the same customer in two requests
        stays two customers; ``keys`` maps it back. Returns the feature rows of every request (each at
        its own cutoff, keyed by request key), the keys, the errors of requests with nothing to score,
        and each request's quarantine counts.
        """
        rows = [{**t.model_dump(exclude_unset=True), SLOT: k} for k, job in jobs.items() for t in job.transactions]
        frame = pd.DataFrame(rows)
        stamps = pd.to_datetime(frame["ts"], utc=True).dt.tz_localize(None)  # naive UTC, as the store keeps them
        frame["ts"] = stamps.astype("datetime64[us]")
        ingest(self.con, Source(frame=frame), self.mapping, keep=(SLOT,), table=ACCEPTED)
        quarantined: dict[int, dict] = {k: {} for k in jobs}
        for slot, reason, n in self.con.execute(
            f"SELECT {SLOT}, reason, count(*) FROM quarantine GROUP BY ALL ORDER BY 3 DESC, 2"
        ).fetchall():
            quarantined[int(slot)][reason] = n
        accepted = {
            int(k): last.date()
            for k, last in self.con.execute(f"SELECT {SLOT}, max(ts) FROM {ACCEPTED} GROUP BY 1").fetchall()
        }
        errors = {
            k: PropensityError(f"None of the {len(job.transactions)} lines passed validation: {quarantined[k]}.")
            for k, job in jobs.items()
            if k not in accepted
        }
        if not accepted:
            return None, None, errors, quarantined
        cutoffs = {
            k: as_cutoff(jobs[k].as_of) if jobs[k].as_of else last + timedelta(days=1) for k, last in accepted.items()
        }
        keys = self.con.execute(f"SELECT DISTINCT {SLOT}, customer_id FROM {ACCEPTED} ORDER BY 1, 2").df()
        keys["request_key"] = _request_keys(len(keys))
        self.con.register("request_keys", keys)
        query = self._features_query()
        query.load(
            self.con,
            f"SELECT a.* EXCLUDE ({SLOT}) REPLACE (k.request_key AS customer_id) FROM {ACCEPTED} a "
            f"JOIN request_keys k ON a.{SLOT} = k.{SLOT} AND a.customer_id = k.customer_id",
        )
        self.con.unregister("request_keys")
        query.set_cutoffs(self.con, list(cutoffs.values()))
        features = query.run(self.con)
        keys = keys.set_index("request_key")
        slots = keys[SLOT].reindex(features["customer_id"]).to_numpy(dtype=np.int64)
        wanted = np.full(
            max(slots.max(initial=0), *cutoffs) + 1, np.datetime64("NaT"), dtype="datetime64[ns]"
        )  # NaT: no cutoff, no row
        wanted[list(cutoffs)] = [np.datetime64(c, "ns") for c in cutoffs.values()]
        mine = features["as_of"].to_numpy() == wanted[slots]  # each request at its own cutoff
        features, found = features[mine].reset_index(drop=True), set(slots[mine].tolist())
        for k, cutoff in cutoffs.items():
            if k not in found:
                errors[k] = PropensityError(
                    f"None of these customers bought in the {self.models.lookback_days} days before {cutoff}: "
                    "nothing to score."
                )
        try:
            require_model_inputs(features, self.models)  # the same columns for every request of this group
        except PropensityError as exc:
            return None, None, {**errors, **dict.fromkeys(found, exc)}, quarantined
        return features, keys, errors, quarantined

    def _wanted_columns(self) -> set[str]:
        wanted = {
            "customer_id",
            "net_spend_total",
            "tenure_days",
            *LIFECYCLE_INPUTS,
            *reference_columns(self.rules),
            *self.models.churn.feature_spec.columns,
            *self.models.purchase.feature_spec.columns,
        }
        if self.models.churn.clusters:
            wanted |= set(self.models.churn.clusters["columns"])
        return wanted

    def features_from_rows(
        self, jobs: dict[int, ScoreRequest]
    ) -> tuple[pd.DataFrame | None, pd.DataFrame | None, dict[int, PropensityError]]:
        """Several requests' feature rows as one frame (keyed by request key), the keys, and the errors of those
        refused."""
        wanted, errors, good = self._wanted_columns(), {}, {}
        for k, job in jobs.items():
            missing = sorted(wanted - set().union(*job.features))
            if missing:
                errors[k] = PropensityError(f"The feature rows lack {missing}.")
            else:
                good[k] = job
        if not good:
            return None, None, errors
        given = [row for job in good.values() for row in job.features]
        slots = np.repeat(list(good), [len(job.features) for job in good.values()])
        categorical = {
            *self.models.churn.feature_spec.categorical,
            *self.models.purchase.feature_spec.categorical,
            "customer_id",
        }
        data = {}
        for column in dict.fromkeys(
            c for row in given for c in row
        ):  # typed column by column: one frame, no per-column astype
            values = [row.get(column) for row in given]
            if column in wanted and column not in categorical:
                try:
                    data[column] = np.array(values, dtype=float)
                except (TypeError, ValueError):
                    if len(good) > 1:  # find the request at fault
                        parts = [self.features_from_rows({k: job}) for k, job in good.items()]
                        frames, keys = (
                            [f for f, _, _ in parts if f is not None],
                            [k for _, k, _ in parts if k is not None],
                        )
                        if not frames:
                            return None, None, {**errors, **{k: e for *_, err in parts for k, e in err.items()}}
                        return (
                            pd.concat(frames, ignore_index=True),
                            pd.concat(keys),
                            {**errors, **{k: e for *_, err in parts for k, e in err.items()}},
                        )
                    return (
                        None,
                        None,
                        {
                            **errors,
                            **dict.fromkeys(
                                good, PropensityError(f"The feature {column!r} must be a number in every row.")
                            ),
                        },
                    )
            else:
                data[column] = pd.Series(values, dtype=object)
        ids = data["customer_id"].to_numpy()
        keys = pd.DataFrame({SLOT: slots, "customer_id": ids}, index=_request_keys(len(slots)))
        data["customer_id"] = pd.Series(keys.index, dtype=object)
        as_of = {k: np.datetime64(as_cutoff(job.as_of) if job.as_of else date.today(), "s") for k, job in good.items()}
        data["as_of"] = np.array([as_of[k] for k in slots.tolist()], dtype="datetime64[s]")
        return pd.DataFrame(data), keys, errors

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
        groups = (
            [self.features_from_rows({k: r for k, r in enumerate(requests) if r.features})]
            if any(r.features for r in requests)
            else []
        )
        groups += [self.features_from_lines(jobs) for jobs in by_columns.values()]
        keys = []
        for frame, key, failed, *counts in groups:
            if frame is not None:
                frames.append(frame)
                keys.append(key)
            errors.update(failed)
            for count in counts:
                quarantined.update(count)
        with self.swap:
            reference, reference_as_of = self.reference, self.scores_as_of
        answers: list[ScoreResponse | PropensityError | None] = [errors.get(k) for k in range(len(requests))]
        if frames:
            scored = score_features(
                frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True), self.models, reference
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
                    )
        return answers

    def close(self) -> None:
        self.batcher.stop()
        self.con.close()

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
