"""The REST service (``propensity serve``): the batch scoring path behind FastAPI.

Models load once, at start-up. ``POST /score`` takes a customer's transaction lines (validated by
the same rules as ingest, computed by the same feature expression, compiled once for any as_of) or
ready feature rows, and scores them with ``serving.predictor.score_features``, the function batch
scoring uses, with segments placed against the latest batch population. One scoring thread per
process scores the requests that arrive together as one batch (``Batcher``). ``GET /customers/{id}`` and
``GET /risk-list`` read the latest batch scores. Set ``PROPENSITY_API_KEY`` to require an
``X-API-Key`` header on everything but ``/health`` and the OpenAPI pages.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import math
import os
import queue
import secrets
import sys
import threading
from collections import OrderedDict
from concurrent.futures import Future
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import duckdb
import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.build import CompiledFeatures, as_cutoff
from features.contract import load_mapping
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
    risk_list,
    score_features,
)
from serving.reasons import REASON_COLUMNS

API_KEY_ENV = "PROPENSITY_API_KEY"
MAX_BODY_BYTES = 5_000_000
MAX_LINES = 20_000
MAX_FEATURE_ROWS = 1_000
MAX_LIST = 10_000
COMPILED_CACHE = 8
MAX_BATCH_REQUESTS = 64
SWITCH_INTERVAL = 0.001  # seconds: how long the event loop may wait for the GIL the scoring thread holds
ACCEPTED = "accepted"  # the validated lines of a batch, before their ids are tagged with the request
TAG = "request_slot"  # the source column that tags each line with its request in a batch
SEP = "\x1f"  # request slot + SEP + customer id: customers of different requests never mix


class Transaction(BaseModel):
    """One transaction line, in the canonical columns (give amount, or quantity and unit_price)."""

    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=200)
    invoice_id: str | None = Field(None, max_length=200)
    ts: datetime
    quantity: float | None = None
    unit_price: float | None = None
    amount: float | None = None
    product_id: str | None = Field(None, max_length=200)
    country: str | None = Field(None, max_length=200)
    channel: str | None = Field(None, max_length=200)


class ScoreRequest(BaseModel):
    """Either ``transactions`` (features are computed as of ``as_of``) or ready ``features`` rows."""

    model_config = ConfigDict(extra="forbid")
    as_of: date | None = Field(None, description="Default: the day after the last transaction given (features: today).")
    transactions: list[Transaction] | None = Field(None, max_length=MAX_LINES)
    features: list[dict[str, float | int | str | None]] | None = Field(None, max_length=MAX_FEATURE_ROWS)

    @model_validator(mode="after")
    def _one_payload(self):
        if bool(self.transactions) == bool(self.features):
            raise ValueError("give either a non-empty `transactions` list or a non-empty `features` list, not both")
        return self


class ScoredCustomer(BaseModel):
    customer_id: str
    as_of: date
    p_churn: float
    p_purchase: float
    expected_value: float
    value_at_risk: float
    rfm_segment: str | None = None
    rfm_code: str | None = None
    r_score: int | None = None
    f_score: int | None = None
    m_score: int | None = None
    lifecycle: str | None = None
    value_matrix: str | None = None
    abc_tier: str | None = None
    cluster: int | None = None
    action: str | None = None
    reasons: list[str] = []
    rank: int | None = Field(None, description="Rank in the batch run (stored scores only).")


class ScoreResponse(BaseModel):
    customers: list[ScoredCustomer]
    quarantined: dict[str, int] = Field(default_factory=dict, description="Lines rejected by validation, by reason.")
    segments_reference: date | None = Field(
        None, description="The batch run whose population the segments are placed against."
    )


def _slots(ids: pd.Series) -> np.ndarray:
    """The request slot each tagged customer id (slot + SEP + id) belongs to."""
    return np.array([int(i.split(SEP, 1)[0]) for i in ids], dtype=np.int64)


def _plain(value):
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _records(frame: pd.DataFrame, skip: tuple[str, ...] = ()) -> list[dict]:
    """Scored rows as plain dicts (None for missing, ``as_of`` a date, the reason phrases as a list)."""
    columns = [c for c in ScoredCustomer.model_fields if c in frame.columns and c not in skip]
    values = {c: frame[c].tolist() for c in columns}
    values["as_of"] = [pd.Timestamp(v).date() for v in values["as_of"]]
    reasons = frame.reindex(columns=list(REASON_COLUMNS)).to_numpy(dtype=object)
    return [
        {**{c: _plain(values[c][i]) for c in columns}, "reasons": [r for r in reasons[i] if isinstance(r, str)]}
        for i in range(len(frame))
    ]


class Batcher:
    """One scoring thread. Requests that arrive while it works are scored together in its next batch.

    A batch pays the fixed costs (validation and feature SQL in DuckDB, the models' and pandas'
    per-call overhead) once, so throughput rises with load while a lone request waits for nothing.
    ``work`` takes a list of items and returns one result (or exception) per item; when it fails
    as a whole, the items are retried one by one so that one bad request cannot fail the others.
    """

    def __init__(self, work, max_items: int = MAX_BATCH_REQUESTS):
        self.work = work
        self.max_items = max_items
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="propensity-scorer", daemon=True)
        self.thread.start()

    def submit(self, item) -> Future:
        future: Future = Future()
        self.queue.put((item, future))
        return future

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        self.queue.put(None)
        self.thread.join()

    def _loop(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_items:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            items = [item for item, _ in batch]
            try:
                results = self.work(items)
            except Exception:  # noqa: BLE001 - isolate the failing request below
                results = []
                for item in items:
                    try:
                        results.append(self.work([item])[0])
                    except Exception as exc:  # noqa: BLE001 - handed to the waiting request
                        results.append(exc)
            for (_, future), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)


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
                self.con, f"(SELECT * EXCLUDE ({TAG}) FROM {ACCEPTED})", f"lines{next(self.names)}"
            )
            while len(self.compiled) > COMPILED_CACHE:
                self.compiled.popitem(last=False)[1].close(self.con)
        self.compiled.move_to_end(key)
        return self.compiled[key]

    def features_from_lines(
        self, jobs: dict[int, ScoreRequest]
    ) -> tuple[pd.DataFrame | None, dict[int, PropensityError], dict[int, dict]]:
        """Features of several requests' lines (with the same columns) in one validation and one query.

        Each line carries its request's slot through validation; customer ids become slot + SEP + id,
        so that the same customer in two requests stays two customers. Returns the feature rows of
        every request (each at its own cutoff), the errors of requests with nothing to score, and
        each request's quarantine counts.
        """
        rows = [{**t.model_dump(exclude_unset=True), TAG: k} for k, job in jobs.items() for t in job.transactions]
        frame = pd.DataFrame(rows)
        stamps = pd.to_datetime(frame["ts"], utc=True).dt.tz_localize(None)  # naive UTC, as the store keeps them
        frame["ts"] = stamps.astype("datetime64[us]")
        ingest(self.con, Source(frame=frame), self.mapping, keep=(TAG,), table=ACCEPTED)
        quarantined: dict[int, dict] = {k: {} for k in jobs}
        for slot, reason, n in self.con.execute(
            f"SELECT {TAG}, reason, count(*) FROM quarantine GROUP BY ALL ORDER BY 3 DESC, 2"
        ).fetchall():
            quarantined[int(slot)][reason] = n
        accepted = {
            int(k): last.date()
            for k, last in self.con.execute(f"SELECT {TAG}, max(ts) FROM {ACCEPTED} GROUP BY 1").fetchall()
        }
        errors = {
            k: PropensityError(f"None of the {len(job.transactions)} lines passed validation: {quarantined[k]}.")
            for k, job in jobs.items()
            if k not in accepted
        }
        if not accepted:
            return None, errors, quarantined
        cutoffs = {
            k: as_cutoff(jobs[k].as_of) if jobs[k].as_of else last + timedelta(days=1) for k, last in accepted.items()
        }
        query = self._features_query()
        query.load(
            self.con,
            f"SELECT * EXCLUDE ({TAG}) REPLACE (CAST({TAG} AS VARCHAR) || chr(31) || customer_id AS customer_id) FROM {ACCEPTED}",
        )
        query.set_cutoffs(self.con, list(cutoffs.values()))
        features = query.run(self.con)
        slots = _slots(features["customer_id"])
        wanted = np.full(
            max(slots.max(initial=0), *cutoffs) + 1, np.datetime64("NaT"), dtype="datetime64[ns]"
        )  # NaT: no cutoff, no row
        wanted[list(cutoffs)] = [np.datetime64(c, "ns") for c in cutoffs.values()]
        mine = features["as_of"].to_numpy() == wanted[slots]  # each request at its own cutoff
        features, found = features[mine].reset_index(drop=True), set(slots[mine].tolist())
        for k, cutoff in cutoffs.items():
            if k not in found:
                errors[k] = PropensityError(
                    f"None of these customers bought in the 365 days before {cutoff}: nothing to score."
                )
        try:
            require_model_inputs(features, self.models)  # the same columns for every request of this group
        except PropensityError as exc:
            return None, {**errors, **dict.fromkeys(found, exc)}, quarantined
        return features, errors, quarantined

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
    ) -> tuple[pd.DataFrame | None, dict[int, PropensityError]]:
        """Several requests' feature rows as one frame (ids tagged with the request), and the errors of those refused."""
        wanted, errors, good = self._wanted_columns(), {}, {}
        for k, job in jobs.items():
            missing = sorted(wanted - set().union(*job.features))
            if missing:
                errors[k] = PropensityError(f"The feature rows lack {missing}.")
            else:
                good[k] = job
        if not good:
            return None, errors
        records = [row for job in good.values() for row in job.features]
        slots = np.repeat(list(good), [len(job.features) for job in good.values()])
        categorical = {
            *self.models.churn.feature_spec.categorical,
            *self.models.purchase.feature_spec.categorical,
            "customer_id",
        }
        data = {}
        for column in dict.fromkeys(
            c for row in records for c in row
        ):  # typed column by column: one frame, no per-column astype
            values = [row.get(column) for row in records]
            if column in wanted and column not in categorical:
                try:
                    data[column] = np.array(values, dtype=float)
                except (TypeError, ValueError):
                    if len(good) > 1:  # find the request at fault
                        parts = [self.features_from_rows({k: job}) for k, job in good.items()]
                        frames = [f for f, _ in parts if f is not None]
                        return (pd.concat(frames, ignore_index=True) if frames else None), {
                            **errors,
                            **{k: e for _, err in parts for k, e in err.items()},
                        }
                    return None, {
                        **errors,
                        **dict.fromkeys(
                            good, PropensityError(f"The feature {column!r} must be a number in every row.")
                        ),
                    }
            else:
                data[column] = pd.Series(values, dtype=object)
        data["customer_id"] = pd.Series(
            [f"{k}{SEP}{i}" for k, i in zip(slots.tolist(), data["customer_id"])], dtype=object
        )
        as_of = {k: np.datetime64(as_cutoff(job.as_of) if job.as_of else date.today(), "s") for k, job in good.items()}
        data["as_of"] = np.array([as_of[k] for k in slots.tolist()], dtype="datetime64[s]")
        return pd.DataFrame(data), errors

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
        for frame, failed, *counts in groups:
            if frame is not None:
                frames.append(frame)
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
            mine: dict[int, list] = {}
            for record in _records(scored, skip=("rank",)):  # a batch rank means nothing to one request
                slot, record["customer_id"] = record["customer_id"].split(SEP, 1)
                mine.setdefault(int(slot), []).append(record)
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
            raise HTTPException(404, f"Customer {customer_id!r} is not in {where}.")
        return _records(self.by_id.loc[[customer_id]])[0]

    def model_card(self) -> dict:
        from mlflow import MlflowClient

        client = MlflowClient()
        out = {}
        for task, info in self.models.info.items():
            model = getattr(self.models, task)
            metrics = client.get_run(info["run_id"]).data.metrics
            out[task] = {
                "name": info["name"],
                "version": info["version"],
                "family": model.family,
                "horizon_days": model.horizon_days,
                "test_metrics": {
                    k.removeprefix("champion_test_"): v for k, v in metrics.items() if k.startswith("champion_test_")
                },
                "feature_spec": model.feature_spec.to_dict(),
                "tags": info["tags"],
            }
        return out


class BoundedBody:
    """Refuse a body larger than ``MAX_BODY_BYTES`` (by its Content-Length) before it is read or parsed.

    Plain ASGI: Starlette's ``BaseHTTPMiddleware`` would add a task group to every request.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            size = next((v for k, v in scope["headers"] if k == b"content-length"), None)
            if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
                refusal = f"The request body is larger than {MAX_BODY_BYTES:,} bytes; send fewer lines per request."
                await JSONResponse({"detail": refusal}, 413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(data_dir: Path | None = None, service: Service | None = None) -> FastAPI:
    owned = service is None
    service = service or Service(data_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Start-up leaves a large heap (models, MLflow, pandas, the batch scores) that never becomes garbage:
        # freezing it keeps the collector's full passes from scanning it mid-request (they cost 100+ ms).
        gc.freeze()
        # The scoring thread holds the GIL for milliseconds at a time; the event loop, after each socket call,
        # waits up to the switch interval to get it back. 1 ms (default 5) keeps that wait off every response.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        yield
        sys.setswitchinterval(switch)
        if owned:  # a service handed in belongs to the caller
            service.close()

    app = FastAPI(
        title="Propensity",
        version="1",
        description="Churn and purchase propensity: scores, segments, reasons, actions.",
        lifespan=lifespan,
    )
    app.state.service = service

    async def require_key(request: Request) -> None:
        wanted = os.environ.get(API_KEY_ENV)
        if wanted and not secrets.compare_digest(request.headers.get("x-api-key", ""), wanted):
            raise HTTPException(401, "A valid X-API-Key header is required.")

    app.add_middleware(BoundedBody)

    @app.exception_handler(PropensityError)
    async def user_error(request: Request, exc: PropensityError):
        return JSONResponse({"detail": str(exc)}, 422)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        """Say where and what, without echoing the (possibly large) input back."""
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        more = f" (and {len(exc.errors()) - 5} more)" if len(exc.errors()) > 5 else ""
        return JSONResponse({"detail": "; ".join(problems) + more}, 422)

    auth = [Depends(require_key)]

    @app.get("/health")
    def health() -> dict:
        return {
            "status": "ok",
            "models": {t: i["version"] for t, i in service.models.info.items()},
            "scores_as_of": service.scores_as_of,
            "customers": len(service.scores),
        }

    @app.get("/model", dependencies=auth)
    def model() -> dict:
        return service.model_card()

    @app.post("/score", dependencies=auth, response_model=ScoreResponse)
    async def score(request: ScoreRequest) -> Response:
        result = await asyncio.wrap_future(service.submit(request))
        return Response(
            result.model_dump_json(), media_type="application/json"
        )  # already validated: skip a second pass

    @app.get("/customers/{customer_id}", dependencies=auth, response_model=ScoredCustomer)
    def customer(customer_id: str) -> dict:
        return service.customer(customer_id)

    @app.get("/risk-list", dependencies=auth, response_model=list[ScoredCustomer])
    def risk(
        top: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
        by: Literal["risk", "value-at-risk"] = "value-at-risk",
        segment: Annotated[list[str] | None, Query()] = None,
        min_value: float = 0.0,
    ) -> list[dict]:
        if not len(service.scores):
            raise HTTPException(404, "No batch scores are loaded: run `propensity score`, then POST /reload.")
        return _records(risk_list(service.scores, top, by, segment, min_value))

    @app.post("/reload", dependencies=auth)
    def reload() -> dict:
        service.reload()
        return {"scores_as_of": service.scores_as_of, "customers": len(service.scores)}

    return app


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory`` (several worker processes): the data dir comes from ``$PROPENSITY_DATA_DIR``."""
    return create_app(None)
