from __future__ import annotations

import io
import os
from pathlib import Path

import duckdb
import ibis
import pandas as pd
import pytest

from features.contract import load_mapping
from features.sources import Source
from features.validate import ingest

ROOT = Path(__file__).resolve().parents[1]
E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config, items):
    """Tests by kind: tests/unit (exact fixtures, properties), tests/model (behaviour of trained models) and
    tests/e2e (training runs, the CLI, uvicorn, Spark, the notebook, real data), which are all `slow`."""
    for item in items:
        if E2E in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True, scope="session")
def _compiled_queries_kept_apart(tmp_path_factory):
    """Compiled feature queries (features.query_cache) go to this run's own folder, not the user's cache; CLI
    processes started by tests inherit it."""
    os.environ["PROPENSITY_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.pop("PROPENSITY_SQL_CACHE", None)


SHARED_RETAIL = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.parquet"

# The hand-written fixture: 12 lines, 5 customers. Dates: 2021-01-04, 01-18, 02-15 and 03-01 are
# Mondays; 2020-12-05 is a Saturday and 2020-11-15 a Sunday.
DOZEN_CSV = """customer_id,invoice_id,ts,quantity,unit_price,product_id,country
A,1,2021-01-04 10:00:00,2,5.0,x,UK
A,1,2021-01-04 10:00:00,1,2.0,y,UK
A,2,2021-01-18 12:00:00,3,1.0,x,UK
A,3,2021-02-15 09:00:00,1,20.0,z,UK
A,C4,2021-02-20 09:00:00,-1,5.0,x,UK
A,5,2021-03-05 10:00:00,1,5.0,x,UK
B,6,2020-12-05 15:30:00,4,2.5,w,DE
B,7,2021-03-01 00:00:00,1,3.0,w,DE
C,8,2020-06-01 11:00:00,1,100.0,v,FR
C,9,2020-11-15 11:00:00,2,50.0,v,FR
D,10,2019-12-01 10:00:00,1,1.0,v,UK
E,11,2021-03-30 12:00:00,1,1.0,v,UK
"""


def canonical_log(frame: pd.DataFrame, tmp_path: Path, name: str = "log.csv", preset: str = "canonical"):
    """Validate a frame through the real CSV ingest path; return (ibis table, report)."""
    path = tmp_path / name
    frame.to_csv(path, index=False)
    con = duckdb.connect()
    report = ingest(con, Source(path), load_mapping(preset))
    return ibis.duckdb.from_connection(con).table("transactions"), report


@pytest.fixture
def dozen(tmp_path):
    frame = pd.read_csv(io.StringIO(DOZEN_CSV), dtype=str)
    return canonical_log(frame, tmp_path)


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory):
    """A small generated log loaded through the canonical ingest path."""
    import pyarrow.parquet as pq

    from features.synthetic import SyntheticConfig, generate

    path = tmp_path_factory.mktemp("synthetic") / "log.parquet"
    pq.write_table(generate(SyntheticConfig(n_customers=400, seed=7)), path)
    con = duckdb.connect()
    report = ingest(con, Source(path), load_mapping("canonical"))
    return ibis.duckdb.from_connection(con).table("transactions"), report, path


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """A fresh embedded tracking store for one test module."""
    from models.registry import configure_tracking

    folder = tmp_path_factory.mktemp("mlflow")
    old = os.environ.pop("MLFLOW_TRACKING_URI", None)
    uri = configure_tracking(folder)
    yield uri
    if old:
        os.environ["MLFLOW_TRACKING_URI"] = old


def point_mlflow_at(folder: Path) -> None:
    """Use the tracking store in ``folder`` (MLflow keeps the URI in the environment: clear what earlier tests left)."""
    import os

    from models.registry import configure_tracking

    for leaked in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
        os.environ.pop(leaked, None)
    configure_tracking(folder)


@pytest.fixture(scope="module")
def trained_store(_trained_template, tmp_path_factory):
    """A data dir of its own for each test module (a copy of the session's trained one): tests change their store."""
    import shutil

    folder = tmp_path_factory.mktemp("trained_copy") / "data"
    shutil.copytree(_trained_template, folder)
    return folder


@pytest.fixture(scope="session")
def _trained_template(tmp_path_factory):
    """A data dir with a generated log in the store, quick-trained champions registered, and one batch scoring run.

    The MLflow artifacts stay in this folder (copies read the registered models from here)."""
    import os

    import pyarrow.parquet as pq

    from features.store import connect_store, store_path
    from features.synthetic import SyntheticConfig, generate
    from features.transactions import TransactionLog, ingest_into_store, open_store_log
    from models.registry import configure_tracking
    from serving.batch import run_batch
    from serving.predictor import load_models
    from training.config import load_config
    from training.train import train_task

    folder = tmp_path_factory.mktemp("trained")
    pq.write_table(generate(SyntheticConfig(n_customers=800, seed=5)), folder / "log.parquet")
    ingest_into_store(store_path(folder), Source(folder / "log.parquet"), load_mapping("canonical"))
    old = os.environ.pop("MLFLOW_TRACKING_URI", None)
    configure_tracking(folder)
    cfg = load_config(profile="quick", models=["lightgbm"], value_models=["lightgbm_tweedie"], tuning={"n_trials": 1})
    log = open_store_log(store_path(folder))
    for task in ("churn", "purchase", "value"):
        train_task(log, task, cfg)
    log.close()
    con = connect_store(store_path(folder))
    run_batch(TransactionLog.on(con), load_models(), folder / "exports")
    con.close()
    for leaked in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_ID",
    ):  # mlflow.set_* wrote these; keep them out of subprocesses
        os.environ.pop(leaked, None)
    yield folder
    if old:
        os.environ["MLFLOW_TRACKING_URI"] = old


def cli(*args, data_dir: Path, check=True):
    """Run the real `propensity` command in a subprocess on ``data_dir``; fail with its output unless it exits 0."""
    import os
    import subprocess
    import sys

    env = {
        k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")
    }  # in-process tests point MLflow elsewhere
    env.update(PROPENSITY_DATA_DIR=str(data_dir), COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-m", "propensity.cli", *args], capture_output=True, text=True, env=env, cwd=data_dir
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc
