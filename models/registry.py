"""MLflow tracking and registry: the embedded default, and loading a registered model by alias.

Default (no ``MLFLOW_TRACKING_URI``): a sqlite store ``<data dir>/mlflow.db`` and artifacts in
``<data dir>/mlartifacts``. With ``MLFLOW_TRACKING_URI`` set, the same code talks to that server.
Nothing is configured at import time: callers call ``configure_tracking`` first.
"""

from __future__ import annotations

import os
from pathlib import Path

from features.errors import PropensityError
from features.store import data_dir as resolve_data_dir

MODEL_NAMES = {"churn": "propensity-churn", "purchase": "propensity-purchase", "value": "propensity-value"}
ALIAS = "champion"
EXPERIMENT = "propensity"


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast with one sentence when an HTTP tracking server does not answer (MLflow would retry for minutes)."""
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return  # it answered (behind auth, or without /health): reachable
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PropensityError(
            f"Cannot reach the MLflow tracking server at {uri} ({reason}): start it, or unset MLFLOW_TRACKING_URI "
            "to use the local store."
        ) from None


def configure_tracking(data_dir: Path | None = None) -> str:
    """Point MLflow at the tracking store and make sure the experiment exists; return the URI."""
    import logging
    import warnings

    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bars in scheduler logs
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*CloudPickle.*")
    remote = os.environ.get("MLFLOW_TRACKING_URI")  # read first: mlflow.set_tracking_uri sets this variable
    uri = remote
    if remote:
        # a server that goes away mid-run: a few bounded retries, not MLflow's default of minutes
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        check_reachable(remote)
    root = resolve_data_dir(data_dir).resolve()
    if not uri:
        root.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if os.environ.get("MLFLOW_RUN_ID"):  # inside `mlflow run` (only its launcher sets this): the project's experiment
        from mlflow import MlflowClient

        mlflow.set_experiment(experiment_id=MlflowClient().get_run(os.environ["MLFLOW_RUN_ID"]).info.experiment_id)
        return uri
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = None if remote else (root / "mlartifacts").as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    return uri


def model_uri(task: str, version: int | None = None) -> str:
    if task not in MODEL_NAMES:
        raise PropensityError(f"Unknown task {task!r}: use churn or purchase.")
    name = MODEL_NAMES[task]
    return f"models:/{name}/{version}" if version else f"models:/{name}@{ALIAS}"


def load_model(task: str, version: int | None = None):
    """The registered PropensityModel for a task (the champion alias unless a version is given)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = model_uri(task, version)
    try:
        return mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except MlflowException:
        raise PropensityError(
            f"No registered model at {uri}: train one first with `propensity train --task {task}`."
        ) from None


def has_champion(task: str) -> bool:
    """Whether the task's registered model has a champion (the alias exists)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient().get_model_version_by_alias(MODEL_NAMES[task], ALIAS)
    except MlflowException:
        return False
    return True


def model_version_info(task: str, version: int | None = None) -> dict:
    """Name, version, training run and the typed record of a registered version (the champion by default)."""
    from mlflow import MlflowClient

    from models.record import RECORD_TAG, ModelRecord

    client = MlflowClient()
    name = MODEL_NAMES[task]
    mv = client.get_model_version(name, str(version)) if version else client.get_model_version_by_alias(name, ALIAS)
    if RECORD_TAG not in mv.tags:
        raise PropensityError(
            f"{name} version {mv.version} predates the model record: retrain it with `propensity train`."
        )
    record = ModelRecord.model_validate_json(mv.tags[RECORD_TAG])
    return {"name": name, "version": int(mv.version), "run_id": mv.run_id, "record": record, "tags": dict(mv.tags)}


def project_run():
    """Inside `mlflow run` (MLFLOW_RUN_ID set), resume the project's run so task runs nest under it."""
    import contextlib

    import mlflow

    if os.environ.get("MLFLOW_RUN_ID") and mlflow.active_run() is None:
        return mlflow.start_run()
    return contextlib.nullcontext()
