"""Training end to end on small generated data against a temporary tracking store."""

import os
from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.contract import load_mapping
from features.errors import PropensityError
from features.sources import Source
from features.synthetic import SyntheticConfig, generate
from features.transactions import TransactionLog
from features.validate import ingest
from models.baselines import fit_bgnbd
from models.spec import model_input
from training.backtest import plan_backtest
from training.config import load_config


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "log.parquet"
    pq.write_table(generate(SyntheticConfig(n_customers=1500, seed=11)), path)
    con = duckdb.connect()
    ingest(con, Source(path), load_mapping("canonical"))
    return TransactionLog.on(con)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    from models.registry import configure_tracking

    folder = tmp_path_factory.mktemp("mlflow")
    old = os.environ.pop("MLFLOW_TRACKING_URI", None)
    uri = configure_tracking(folder)
    yield uri
    if old:
        os.environ["MLFLOW_TRACKING_URI"] = old


def test_origins_train_only_on_cutoffs_whose_label_window_closed_by_the_origin():
    plan = plan_backtest(datetime(2010, 12, 1, 8), datetime(2011, 12, 9, 12), 90)
    h = timedelta(days=90)
    assert plan.grid[0] == date(2011, 1, 1) and plan.grid[-1] == date(2011, 9, 1)
    assert [o.as_of for o in plan.origins] == [date(2011, 7, 1), date(2011, 8, 1), date(2011, 9, 1)]
    for origin in plan.origins:
        assert origin.train and all(c + h <= origin.as_of for c in origin.train)
        assert set(origin.train) == {c for c in plan.grid if c + h <= origin.as_of}  # everything closed is used
    assert plan.test.as_of == plan.grid[-1] and plan.backtest == plan.origins[:-1]
    assert plan.refit == plan.grid and plan.refit[-1] + h <= date(2011, 12, 10)  # the latest closed window
    assert not plan.warnings
    weekly = plan_backtest(datetime(2010, 12, 1, 8), datetime(2011, 12, 9, 12), 30, grid="weekly")
    assert all(c.weekday() == 0 for c in weekly.grid) and len(weekly.grid) > 4 * len(plan.grid)
    gaps = [(b.as_of - a.as_of).days for a, b in zip(weekly.origins, weekly.origins[1:], strict=False)]
    assert all(g >= 28 for g in gaps)


def test_a_nine_month_log_trains_churn_at_90_days_with_fewer_origins_or_a_warning():
    plan = plan_backtest(datetime(2010, 12, 1, 8), datetime(2011, 9, 9, 12), 90)
    assert (
        len(plan.origins) == 3 and plan.test.as_of == date(2011, 6, 1) and plan.origins[0].train == (date(2011, 1, 1),)
    )
    shorter = plan_backtest(datetime(2010, 12, 1, 8), datetime(2011, 7, 20, 12), 90)
    assert len(shorter.origins) == 1 and len(shorter.warnings) == 2 and "optimistic" in shorter.warnings[1]


def test_a_log_too_short_for_one_training_and_one_later_window_says_how_many_days_it_needs():
    with pytest.raises(PropensityError, match=r"too short for a 90-day horizon: .* about 241 days"):
        plan_backtest(datetime(2021, 1, 1), datetime(2021, 6, 1), 90)
    with pytest.raises(PropensityError, match="365-day horizon"):  # a year is refused, never silently shortened
        plan_backtest(datetime(2010, 12, 1, 8), datetime(2011, 12, 9, 12), 365)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"models": ["deep_forest"]}, "unknown model family 'deep_forest'"),
        ({"metric": "accuracy"}, "metric"),
        ({"calibration": "magic"}, "calibration"),
    ],
)
def test_bad_config_is_one_clear_error(overrides, message):
    with pytest.raises(PropensityError, match=message):
        load_config(**overrides)


def test_bgnbd_recovers_known_parameters_from_simulation():
    # Simulate BG/NBD with the published CDNOW estimates (Fader, Hardie & Lee 2005), 39-week windows.
    rng = np.random.default_rng(0)
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    n = 20_000
    T = rng.uniform(27, 39, n)
    lam, p = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T[i]:
                break
            x[i], t_x[i] = x[i] + 1, t
            if rng.random() < p[i]:
                break
    est = fit_bgnbd(x, t_x, T)
    assert est[0] == pytest.approx(r, rel=0.1) and est[1] == pytest.approx(alpha, rel=0.1)
    assert est[2] == pytest.approx(a, rel=0.25) and est[3] == pytest.approx(b, rel=0.25)


@pytest.mark.slow
def test_train_register_load_by_alias_predict(log, tracking):
    from models.registry import load_model, model_version_info
    from training.dataset import prepare_task
    from training.train import train_task

    # the trial count alone bounds tuning (no timeout): the determinism check below cannot depend on machine load
    cfg = load_config(profile="quick", models=["decision_tree", "neural_network"], tuning={"n_trials": 2})
    data = prepare_task(log, "churn", cfg)
    result = train_task(log, "churn", cfg)
    families = {"decision_tree", "neural_network", "logistic", "recency_rule", "bgnbd"}
    assert set(result.leaderboard["family"]) == families
    assert set(result.origins["origin"]) == {str(o.as_of) for o in data.plan.origins} and len(data.plan.origins) == 3
    assert len(result.origins) == 3 * len(families)
    assert result.version == 1 and 0.5 < result.champion_test["roc_auc"] <= 1
    model = load_model("churn")
    record = model_version_info("churn")["record"]
    assert record == model.record and record.family == result.champion and "recency_days" in record.numeric
    # the registered model was refit on every closed cutoff, the latest included, and calibrated on the latest origin
    assert record.train_cutoffs == tuple(str(c) for c in data.plan.grid)
    assert record.calibration_cutoffs == (str(data.plan.test.as_of),) and record.lookback_days == cfg.lookback_days
    test_rows = data.rows(data.plan.test.as_of)
    p = model.predict_proba(model_input(test_rows, model.feature_spec))
    assert p.shape == (len(test_rows),) and np.all((p >= 0) & (p <= 1))

    assert result.selection["champion"] == result.champion and result.champion in result.selection["within"]
    assert result.margin_se.keys() == result.margins.keys() == result.mean_margins.keys()
    assert all(0 < v < 0.2 for v in result.margin_se.values())
    # directional behaviour: a repeat buyer who bought yesterday vs one silent for most of a year, otherwise identical
    # (the BTYD inputs move too: the BG/NBD baseline, a possible champion, reads only those)
    row = test_rows[(test_rows["btyd_frequency"] >= 2) & (test_rows["btyd_T"] >= 300)].iloc[[0]].copy()
    fresh, stale = row.copy(), row.copy()
    fresh["recency_days"], stale["recency_days"] = 1.0, 290.0
    fresh["overdue_ratio"], stale["overdue_ratio"] = 0.1, 20.0
    fresh["invoices_30d"], stale["invoices_30d"] = 1, 0
    fresh["btyd_recency"], stale["btyd_recency"] = row["btyd_T"] - 1, row["btyd_T"] - 290
    p_fresh, p_stale = model.predict_proba(model_input(pd.concat([fresh, stale]), model.feature_spec))
    assert p_fresh < p_stale

    # same config and seed: the same leaderboard (to a tolerance far below any difference that could change a choice)
    again = train_task(log, "churn", cfg, register=False)
    pd.testing.assert_frame_equal(
        result.leaderboard.drop(columns=["fit_s"]), again.leaderboard.drop(columns=["fit_s"]), rtol=1e-9, atol=1e-12
    )
    assert again.champion == result.champion


def test_loading_an_unregistered_model_is_one_clear_error(tracking):
    from models.registry import load_model

    with pytest.raises(PropensityError, match="No registered model"):
        load_model("purchase")


def test_embedded_tracking_keeps_artifacts_in_the_data_dir(tmp_path, monkeypatch):
    import mlflow

    from models.registry import configure_tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = configure_tracking(tmp_path / "data")
    assert uri == f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}"
    assert mlflow.get_experiment_by_name("propensity").artifact_location == (tmp_path / "data" / "mlartifacts").as_uri()


def test_under_mlflow_run_task_runs_nest_under_the_project_run(tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    from models.registry import configure_tracking, project_run

    uri = f"sqlite:///{tmp_path / 'proj.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("project", artifact_location=(tmp_path / "art").as_uri())
    project = client.create_run(experiment)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_RUN_ID", project.info.run_id)
    configure_tracking(tmp_path)
    with project_run(), mlflow.start_run(run_name="train-churn", nested=mlflow.active_run() is not None) as child:
        pass
    got = client.get_run(child.info.run_id)
    assert got.data.tags["mlflow.parentRunId"] == project.info.run_id and got.info.experiment_id == experiment


def test_the_one_se_rule_takes_the_simplest_family_within_noise_of_the_best():
    from training.select import choose_champion

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    signal = y + rng.normal(0, 1.0, len(y))

    def result(name, p):
        from training.metrics import score_metrics

        return {"name": name, "p_backtest": p, "backtest": score_metrics(y, p)}

    squash = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    svm = result("svm", squash(signal))
    logistic = result("logistic", squash(signal + rng.normal(0, 0.05, len(y))))  # a hair worse
    rule = result("recency_rule", squash(rng.normal(0, 1, len(y))))  # no signal at all
    cfg = load_config(profile="quick")
    assert svm["backtest"]["pr_auc"] > logistic["backtest"]["pr_auc"]
    chosen, how = choose_champion([svm, logistic, rule], y, cfg)
    assert chosen["name"] == "logistic" and how["best_on_backtest"] == "svm" and how["within"] == ["logistic", "svm"]
    assert 0 < how["deficit"]["logistic"] <= how["paired_se"]["logistic"] < how["deficit"]["recency_rule"]
    best, _ = choose_champion([svm, logistic, rule], y, load_config(profile="quick", champion_rule="best"))
    assert best["name"] == "svm"
    far = result("logistic", squash(y + rng.normal(0, 3.0, len(y))))  # clearly worse: outside one SE
    assert choose_champion([svm, far, rule], y, cfg)[0]["name"] == "svm"
