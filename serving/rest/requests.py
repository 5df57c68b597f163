"""Requests to feature rows: a customer's transaction lines (validated by the ingest rules, computed by the
one feature expression compiled once) or ready feature rows, several requests at a time.

Each (request, customer) pair is keyed by an opaque request key in the feature query, so that the same
customer in two requests of a batch stays two customers; the keys table maps it back to its request
slot and customer id.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from features.compiled import CompiledFeatures
from features.contract import load_mapping
from features.cutoffs import as_cutoff
from features.definitions import MONEY
from features.errors import PropensityError
from features.segments import SegmentRules
from features.sources import Source
from features.validate import ingest
from serving.predictor import LIFECYCLE_INPUTS, Models, reference_columns, require_model_inputs
from serving.rest.schemas import ScoreRequest
from serving.value import SCORED_RULE_INPUTS

COMPILED_CACHE = 8
ACCEPTED = "accepted"  # the validated lines of a batch
SLOT = "request_slot"  # the key column that says which request of a batch a line or a row belongs to
_KEYS = itertools.count()


def _request_keys(n: int) -> list[str]:
    """Opaque keys for (request, customer) pairs of a batch: the feature query's customer key."""
    return [f"r{next(_KEYS)}" for _ in range(n)]


class RequestFeatures:
    """The feature rows of a batch of requests, on a private one-thread DuckDB connection."""

    def __init__(self, models: Models, rules: SegmentRules):
        self.models, self.rules = models, rules
        self.mapping = load_mapping("canonical")
        self.con = duckdb.connect(config={"threads": 1})  # a batch of requests' lines: threads only add scheduling
        self.compiled: OrderedDict = OrderedDict()
        self.names = itertools.count()

    def close(self) -> None:
        self.con.close()

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

    def from_lines(
        self, jobs: dict[int, ScoreRequest], default_as_of: date
    ) -> tuple[pd.DataFrame | None, pd.DataFrame | None, dict[int, PropensityError], dict[int, dict], dict[int, int]]:
        """Features of several requests' lines (with the same columns) in one validation and one query.

        Each line carries its request's slot through validation. The feature query then keys each
        (slot, customer) pair by an opaque request key, so that the same customer in two requests
        stays two customers; ``keys`` maps it back. Returns the feature rows of every request (each at
        its own cutoff, keyed by request key), the keys, the errors of requests with nothing to score,
        each request's quarantine counts, and how many of its valid lines fall on or after its cutoff
        (``default_as_of`` for a request without one).
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
            return None, None, errors, quarantined, {}
        cutoffs = {k: as_cutoff(jobs[k].as_of) if jobs[k].as_of else default_as_of for k in accepted}
        values = ", ".join(f"({k}, TIMESTAMP '{c}')" for k, c in cutoffs.items())
        later = dict(
            self.con.execute(
                f"SELECT a.{SLOT}, count(*) FROM {ACCEPTED} a JOIN (VALUES {values}) c(slot, cutoff) "
                f"ON a.{SLOT} = c.slot WHERE a.ts >= c.cutoff GROUP BY 1"
            ).fetchall()
        )
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
                future = f" ({later[k]} of the lines are on or after it: give a later as_of)" if later.get(k) else ""
                errors[k] = PropensityError(
                    f"None of these customers bought in the {self.models.lookback_days} days before {cutoff}: "
                    f"nothing to score{future}."
                )
        try:
            require_model_inputs(features, self.models)  # the same columns for every request of this group
        except PropensityError as exc:
            return None, None, {**errors, **dict.fromkeys(found, exc)}, quarantined, later
        return features, keys, errors, quarantined, later

    def _wanted_columns(self) -> set[str]:
        wanted = {
            "customer_id",
            "tenure_days",
            *LIFECYCLE_INPUTS,
            *(
                c
                for c in reference_columns(self.rules)
                if c not in SCORED_RULE_INPUTS and (c not in MONEY or c in self.models.feature_spec.numeric)
            ),
            *self.models.reads,
        }
        if self.models.lead.clusters:
            wanted |= set(self.models.lead.clusters["columns"])
        if index := getattr(self.models.lead, "index", None):
            wanted |= set(index["indicators"])
        if self.models.ranked_by == "value_at_risk" and self.models.value is None:  # CLV from the historic rate
            wanted.add("net_spend_total")
        return wanted

    def from_rows(
        self, jobs: dict[int, ScoreRequest], default_as_of: date
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
        categorical = {*self.models.feature_spec.categorical, "customer_id"}
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
                        parts = [self.from_rows({k: job}, default_as_of) for k, job in good.items()]
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
        as_of = {k: np.datetime64(as_cutoff(job.as_of) if job.as_of else default_as_of, "s") for k, job in good.items()}
        data["as_of"] = np.array([as_of[k] for k in slots.tolist()], dtype="datetime64[s]")
        return pd.DataFrame(data), keys, errors
