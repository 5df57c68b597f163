"""The REST service (``propensity serve``): the batch scoring path behind FastAPI.

Models load once, at start-up. ``POST /score`` takes a customer's transaction lines (validated by
the same rules as ingest, computed by the same feature expression, compiled once per as_of) or
ready feature rows, and scores them with ``serving.predictor.score_features``, the function batch
scoring uses, with segments placed against the latest batch population. ``GET /customers/{id}`` and
``GET /risk-list`` read the latest batch scores. Set ``PROPENSITY_API_KEY`` to require an
``X-API-Key`` header on everything but ``/health`` and the OpenAPI pages.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections import OrderedDict
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal

import duckdb
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.build import CompiledFeatures, as_cutoff
from features.contract import load_mapping
from features.errors import PropensityError
from features.segments import load_segment_rules, segment_reference
from features.sources import Source
from features.store import connect_store, store_path
from features.validate import ingest
from serving.predictor import LIFECYCLE_INPUTS, Models, load_models, reference_columns, risk_list, score_features
from serving.reasons import REASON_COLUMNS

API_KEY_ENV = "PROPENSITY_API_KEY"
MAX_BODY_BYTES = 5_000_000
MAX_LINES = 20_000
MAX_FEATURE_ROWS = 1_000
MAX_LIST = 10_000
COMPILED_CACHE = 16


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
    segments_reference: date | None = Field(None, description="The batch run whose population the segments are placed against.")


def _records(frame: pd.DataFrame) -> list[dict]:
    frame = frame[[c for c in [*ScoredCustomer.model_fields, *REASON_COLUMNS] if c in frame.columns]]
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    frame["reasons"] = [[r for r in row if isinstance(r, str)] for row in frame.reindex(columns=list(REASON_COLUMNS)).itertuples(index=False)]
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


class Service:
    """Everything the endpoints share: models, the latest batch scores and their segment reference."""

    def __init__(self, data_dir: Path | None = None, models: Models | None = None):
        from models.registry import configure_tracking

        self.data_dir = data_dir
        configure_tracking(data_dir)
        self.models = models or load_models()
        self.rules = load_segment_rules()
        self.mapping = load_mapping("canonical")
        self.con = duckdb.connect(config={"threads": 1})  # one request's lines: threads only add scheduling
        self.lock = threading.Lock()
        self.compiled: OrderedDict = OrderedDict()
        self.reload()

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
        self.scores = scores if scores is not None else pd.DataFrame()
        self.by_id = self.scores.set_index("customer_id", drop=False) if len(self.scores) else self.scores
        self.reference = segment_reference(self.scores, self.rules) if len(self.scores) else None
        self.scores_as_of = pd.Timestamp(self.scores["as_of"].iloc[0]).date() if len(self.scores) else None

    def _features_query(self, cutoff: date) -> CompiledFeatures:
        key = (cutoff, tuple(row[0] for row in self.con.execute("DESCRIBE transactions").fetchall()))
        if key not in self.compiled:
            self.compiled[key] = CompiledFeatures(self.con, "transactions", cutoff)
            while len(self.compiled) > COMPILED_CACHE:
                self.compiled.popitem(last=False)
        self.compiled.move_to_end(key)
        return self.compiled[key]

    def features_from_lines(self, lines: list[Transaction], as_of: date | None) -> tuple[pd.DataFrame, dict]:
        rows = [t.model_dump(exclude_unset=True) for t in lines]
        frame = pd.DataFrame(rows)
        stamps = pd.to_datetime(frame["ts"], utc=True).dt.tz_localize(None)  # naive UTC, as the store keeps them
        frame["ts"] = stamps.astype("datetime64[us]")
        with self.lock:
            report = ingest(self.con, Source(frame=frame), self.mapping)
            if report.accepted_rows == 0:
                raise PropensityError(f"None of the {report.input_rows} lines passed validation: {report.by_reason}.")
            cutoff = as_cutoff(as_of) if as_of else report.last_ts.date() + pd.Timedelta(days=1)
            features = self._features_query(cutoff).run(self.con)
        if features.empty:
            raise PropensityError(f"None of these customers bought in the 365 days before {cutoff}: nothing to score.")
        return features, report.by_reason

    def features_from_rows(self, rows: list[dict], as_of: date | None) -> pd.DataFrame:
        frame = pd.DataFrame(rows)
        wanted = {"customer_id", "net_spend_total", "tenure_days", *LIFECYCLE_INPUTS, *reference_columns(self.rules),
                  *self.models.churn.feature_spec.columns, *self.models.purchase.feature_spec.columns}
        if self.models.churn.clusters:
            wanted |= set(self.models.churn.clusters["columns"])
        missing = sorted(wanted - set(frame.columns))
        if missing:
            raise PropensityError(f"The feature rows lack {missing}.")
        categorical = {*self.models.churn.feature_spec.categorical, *self.models.purchase.feature_spec.categorical, "customer_id"}
        for column in wanted - categorical:
            try:
                frame[column] = pd.to_numeric(frame[column]).astype(float)
            except (TypeError, ValueError):
                raise PropensityError(f"The feature {column!r} must be a number in every row.") from None
        frame["customer_id"] = frame["customer_id"].astype(str)
        frame["as_of"] = pd.Timestamp(as_cutoff(as_of) if as_of else date.today())
        return frame

    def score(self, request: ScoreRequest) -> ScoreResponse:
        quarantined = {}
        if request.transactions:
            features, quarantined = self.features_from_lines(request.transactions, request.as_of)
        else:
            features = self.features_from_rows(request.features, request.as_of)
        scored = score_features(features, self.models, self.reference).drop(columns=["rank"])
        return ScoreResponse(customers=_records(scored), quarantined=quarantined, segments_reference=self.scores_as_of)

    def customer(self, customer_id: str) -> dict:
        if not len(self.by_id) or customer_id not in self.by_id.index:
            where = f"the batch scores as of {self.scores_as_of}" if self.scores_as_of else "any batch scores (none are loaded)"
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
                "name": info["name"], "version": info["version"], "family": model.family, "horizon_days": model.horizon_days,
                "test_metrics": {k.removeprefix("champion_test_"): v for k, v in metrics.items() if k.startswith("champion_test_")},
                "feature_spec": model.feature_spec.to_dict(), "tags": info["tags"],
            }
        return out


def create_app(data_dir: Path | None = None, service: Service | None = None) -> FastAPI:
    service = service or Service(data_dir)
    app = FastAPI(title="Propensity", version="1", description="Churn and purchase propensity: scores, segments, reasons, actions.")
    app.state.service = service

    def require_key(request: Request) -> None:
        wanted = os.environ.get(API_KEY_ENV)
        if wanted and not secrets.compare_digest(request.headers.get("x-api-key", ""), wanted):
            raise HTTPException(401, "A valid X-API-Key header is required.")

    @app.middleware("http")
    async def bounded_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
            return JSONResponse({"detail": f"The request body is larger than {MAX_BODY_BYTES:,} bytes; send fewer lines per request."}, 413)
        return await call_next(request)

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
        return {"status": "ok", "models": {t: i["version"] for t, i in service.models.info.items()},
                "scores_as_of": service.scores_as_of, "customers": len(service.scores)}

    @app.get("/model", dependencies=auth)
    def model() -> dict:
        return service.model_card()

    @app.post("/score", dependencies=auth, response_model=ScoreResponse)
    def score(request: ScoreRequest) -> ScoreResponse:
        return service.score(request)

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
