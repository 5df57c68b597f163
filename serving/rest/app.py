"""The FastAPI app: routes, API-key auth, error mapping (a user's mistake is a 4xx), the body-size limit.

Set ``PROPENSITY_API_KEY`` to require an ``X-API-Key`` header on everything but ``/health`` (liveness
only) and the OpenAPI pages. A key that is set but blank is refused at start-up: it would look like
protection and be none.
"""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from features.errors import PropensityError
from features.segments import load_segment_rules
from serving.exports import risk_list
from serving.rest.schemas import CampaignDecision, Problem, ScoredCustomer, ScoreRequest, ScoreResponse
from serving.rest.service import Service, UnknownCustomer, records

API_KEY_ENV = "PROPENSITY_API_KEY"
MAX_BODY_BYTES = 5_000_000
MAX_LIST = 10_000
SegmentName = Literal[tuple(load_segment_rules().rfm.segments.values())]  # the 8 RFM segments the rules name
SWITCH_INTERVAL = 0.001  # seconds: how long the event loop may wait for the GIL the scoring thread holds


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


def _check_key_setting() -> None:
    key = os.environ.get(API_KEY_ENV)
    if key is not None and not key.strip():
        raise PropensityError(f"{API_KEY_ENV} is set but blank: set a real key, or unset it to serve without one.")


DOCS_ASSETS = "/docs-assets"


def _offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from the assets fastapi-offline installs, so that they work without internet."""
    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"), name="docs-assets")

    def where(request: Request) -> tuple[str, str]:  # behind a proxy, under its root path
        root = request.scope.get("root_path", "")
        return root + app.openapi_url, root + DOCS_ASSETS

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request):
        spec, assets = where(request)
        js, css, icon = (f"{assets}/{name}" for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"))
        return get_swagger_ui_html(
            openapi_url=spec,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=js,
            swagger_css_url=css,
            swagger_favicon_url=icon,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request):
        spec, assets = where(request)
        js, icon = f"{assets}/redoc.standalone.js", f"{assets}/favicon.png"
        title = f"{app.title} - ReDoc"
        return get_redoc_html(
            openapi_url=spec, title=title, redoc_js_url=js, redoc_favicon_url=icon, with_google_fonts=False
        )


def create_app(data_dir: Path | None = None, service: Service | None = None) -> FastAPI:
    _check_key_setting()
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

    problem = {"model": Problem}
    app = FastAPI(
        title="Propensity",
        version="1",
        description="Churn and purchase propensity: scores, segments, reasons, actions.",
        lifespan=lifespan,
        docs_url=None,  # served below from files installed with the package: FastAPI's pages load them from a CDN
        redoc_url=None,
        # The answers a client can get besides 200, each a Problem (422 replaces FastAPI's list-shaped default).
        responses={
            400: problem | {"description": "The body is not JSON."},
            401: problem | {"description": "A valid X-API-Key header is required."},
            422: problem | {"description": "The request is not one the service can answer; `detail` says why."},
        },
    )
    app.state.service = service
    _offline_docs(app)

    async def require_key(request: Request) -> None:
        wanted = os.environ.get(API_KEY_ENV)  # read per request: a rotated key applies at once
        if wanted is not None and (
            not wanted.strip() or not secrets.compare_digest(request.headers.get("x-api-key", ""), wanted)
        ):  # a key blanked after start-up closes the service rather than opening it
            raise HTTPException(401, "A valid X-API-Key header is required.")

    app.add_middleware(BoundedBody)

    @app.exception_handler(PropensityError)
    async def user_error(request: Request, exc: PropensityError):
        return JSONResponse({"detail": str(exc)}, 422)

    @app.exception_handler(UnknownCustomer)
    async def unknown_customer(request: Request, exc: UnknownCustomer):
        return JSONResponse({"detail": str(exc)}, 404)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        """Say where and what, without echoing the (possibly large) input back."""
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        more = f" (and {len(exc.errors()) - 5} more)" if len(exc.errors()) > 5 else ""
        return JSONResponse({"detail": "; ".join(problems) + more}, 422)

    auth = [Depends(require_key)]

    @app.get("/health")
    def health() -> dict:
        """Liveness only: it needs no key, so it tells nothing about the models or the customers."""
        return {"status": "ok"}

    @app.get("/status", dependencies=auth)
    def status() -> dict:
        return {
            "status": "ok",
            "models": {t: i["version"] for t, i in service.models.info.items()},
            "scores_as_of": service.scores_as_of,
            "customers": len(service.scores),
        }

    @app.get("/model", dependencies=auth)
    def model() -> dict:
        return service.model_card()

    @app.post("/score", dependencies=auth, response_model=ScoreResponse, responses={413: problem})
    async def score(request: ScoreRequest) -> Response:
        result = await asyncio.wrap_future(service.submit(request))
        return Response(
            result.model_dump_json(), media_type="application/json"
        )  # already validated: skip a second pass

    @app.get("/customers/{customer_id}", dependencies=auth, response_model=ScoredCustomer, responses={404: problem})
    def customer(customer_id: str) -> dict:
        return service.customer(customer_id)

    @app.get("/risk-list", dependencies=auth, response_model=list[ScoredCustomer], responses={404: problem})
    def risk(
        top: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
        by: Literal["risk", "value-at-risk", "index"] = "value-at-risk",
        segment: Annotated[list[SegmentName] | None, Query()] = None,
        min_value: float = 0.0,
    ) -> list[dict]:
        if not len(service.scores):
            raise HTTPException(404, "No batch scores are loaded: run `propensity score`, then POST /reload.")
        return records(risk_list(service.scores, top, by, segment, min_value))

    @app.get(
        "/campaigns/{campaign}/customers/{customer_id}",
        dependencies=auth,
        response_model=CampaignDecision,
        responses={404: problem},
    )
    def treatment(campaign: str, customer_id: str) -> dict:
        """The treatment decision: contact the treated, never the control group held out to measure the campaign."""
        return service.decision(campaign, customer_id)

    @app.post("/reload", dependencies=auth)
    def reload() -> dict:
        service.reload()
        return {"scores_as_of": service.scores_as_of, "customers": len(service.scores)}

    return app


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory`` (several workers): the data dir comes from ``$PROPENSITY_DATA_DIR``."""
    return create_app(None)


def serve(data_dir: Path | None = None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the service under uvicorn (several workers start from an import string and read the data dir from
    the environment)."""
    import uvicorn

    from features.store import data_dir as resolve_data_dir

    _check_key_setting()  # before any worker starts: one sentence, not a traceback per worker
    if workers > 1:
        os.environ["PROPENSITY_DATA_DIR"] = str(resolve_data_dir(data_dir).resolve())
        uvicorn.run(
            "serving.rest.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
        return
    uvicorn.run(create_app(data_dir), host=host, port=port, log_level="warning")
