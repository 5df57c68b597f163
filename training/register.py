"""Package the refit champion with its calibrator and record, and register it under the champion alias."""

from __future__ import annotations

import json

import mlflow

from features.clusters import fit_clusters
from features.customer_index import fit_index
from features.segments import load_segment_rules
from models.calibration import Calibrator
from models.packaged import PropensityModel
from models.record import RECORD_TAG, ModelRecord
from models.registry import ALIAS, MODEL_NAMES
from training.config import TrainingConfig
from training.dataset import TaskData


def model_record(data: TaskData, family: str, method: str, cfg: TrainingConfig, test_metrics: dict) -> ModelRecord:
    plan = data.plan
    return ModelRecord(
        task=data.task,
        family=family,
        horizon_days=cfg.horizons[data.task],
        lookback_days=cfg.lookback_days,
        calibration=method,
        numeric=data.spec.numeric,
        categorical=data.spec.categorical,
        data_first_ts=str(data.window[0]),
        data_last_ts=str(data.window[1]),
        train_cutoffs=tuple(str(c) for c in plan.refit),
        calibration_cutoffs=(str(plan.test.as_of),),
        test_cutoffs=(str(plan.test.as_of),),
        test_metrics={k: float(v) for k, v in test_metrics.items()},
    )


def _requirements() -> list[str]:
    """The installed versions of what a loaded model needs to run."""
    from importlib.metadata import PackageNotFoundError, version

    wanted = ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "xgboost-cpu", "lightgbm", "pydantic")
    found = []
    for name in wanted:
        try:
            found.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return found


def register_model(pipeline, calibrator: Calibrator, record: ModelRecord, data: TaskData) -> int:
    """Log the packaged model in the active run, register it and point the champion alias at it."""
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from models.spec import model_input

    X = model_input(data.rows(data.plan.refit), data.spec)
    population = data.rows(data.plan.refit[-1])  # the latest population, each customer once
    rules = load_segment_rules()
    clusters = fit_clusters(population, rules.clusters).to_dict()
    index = fit_index(population, rules.index).to_dict() if rules.index else None
    packaged = PropensityModel(
        pipeline, calibrator, record, PropensityModel.reference_row(X, data.spec), clusters, index
    )
    example = X.drop(columns=["customer_id"]).head(5)
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=packaged,
        signature=infer_signature(example, packaged.predict(None, example)),
        input_example=example,
        pip_requirements=_requirements(),  # inferring them imports every module in a subprocess (about 10 s)
        registered_model_name=MODEL_NAMES[record.task],
    )
    version = str(info.registered_model_version)
    client, name = MlflowClient(), MODEL_NAMES[record.task]
    client.set_model_version_tag(name, version, RECORD_TAG, record.model_dump_json())
    for key in ("family", "task", "horizon_days", "lookback_days", "calibration"):  # for people browsing the registry
        client.set_model_version_tag(name, version, key, str(getattr(record, key)))
    client.set_model_version_tag(name, version, "clusters_method", clusters["method"])  # read by the report
    if index:
        weights = dict(zip(index["indicators"], index["weights"], strict=True))
        client.set_model_version_tag(name, version, "index_weights", json.dumps(weights))
    client.update_model_version(
        name,
        version,
        description=(
            f"{record.family} for {record.task} in the next {record.horizon_days} days, refit on "
            f"{len(record.train_cutoffs)} cutoffs {record.train_cutoffs[0]}..{record.train_cutoffs[-1]}, "
            f"{record.calibration} calibration on {record.calibration_cutoffs[0]}."
        ),
    )
    client.set_registered_model_alias(name, ALIAS, version)
    return int(version)
