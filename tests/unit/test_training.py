"""Training units: the backtest plan, the config, BG/NBD, the one-SE rule, tracking set-up."""

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from features.errors import PropensityError
from models.baselines import fit_bgnbd
from training.backtest import plan_backtest
from training.config import load_config


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


def test_the_test_origin_is_calibrated_only_from_labels_known_at_it():
    plan = plan_backtest(datetime(2010, 12, 1, 8), datetime(2011, 12, 9, 12), 90)
    h = timedelta(days=90)
    for origin in plan.origins:
        calibration = plan.calibration_origin(origin)
        assert calibration.as_of + h <= origin.as_of  # its labels were known at the origin
        assert calibration.train and all(c + h <= calibration.as_of for c in calibration.train)
        assert calibration.as_of == max(c for c in plan.grid if c + h <= origin.as_of)
    assert plan.calibration_origin(plan.test).as_of == date(2011, 6, 1)
    monthly = plan_backtest(datetime(2010, 12, 1, 8), datetime(2011, 12, 9, 12), 30)  # the previous origin serves
    assert monthly.calibration_origin(monthly.test) == monthly.origins[-2]
    short = plan_backtest(datetime(2010, 12, 1, 8), datetime(2011, 9, 9, 12), 90)
    assert short.calibration_origin(short.test) is None  # nine months: no cutoff closed at June has training rows


def test_a_rolling_window_trains_on_the_latest_closed_cutoffs_only():
    plan = plan_backtest(datetime(2010, 12, 1, 8), datetime(2011, 12, 9, 12), 30, window=4)
    assert all(len(o.train) <= 4 for o in plan.origins)
    for origin in plan.origins:
        closed = [c for c in plan.grid if c + timedelta(days=30) <= origin.as_of]
        assert list(origin.train) == closed[-4:]
    assert plan.refit == plan.grid[-4:] and "refit on the latest 4" in plan.describe()


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


def test_a_user_config_file_overrides_the_shipped_one_key_by_key(tmp_path):
    shipped = load_config()
    path = tmp_path / "mine.yaml"
    path.write_text("horizons:\n  churn: 60\nmodels: [lightgbm]\ntuning:\n  max_rows: 5000\n")
    mine = load_config(path)
    assert mine.horizons == {**shipped.horizons, "churn": 60}  # purchase and value as shipped
    assert mine.models == ["lightgbm"] and mine.baselines == shipped.baselines  # a list replaces
    assert mine.tuning.max_rows == 5000 and mine.tuning.n_trials == shipped.tuning.n_trials  # a mapping merges
    quick = load_config(path, "quick")  # the shipped profiles stay available
    assert quick.horizons["churn"] == 60 and quick.tuning.n_trials == load_config(profile="quick").tuning.n_trials


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("horizons: [60\n", "not valid YAML"),
        ("- churn\n", "must be a mapping"),
        ("horizons:\n  churn: 0\n", "horizons"),
        ("horizon:\n  churn: 60\n", "horizon"),  # a misspelt key is refused, not ignored
    ],
)
def test_a_bad_user_config_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(PropensityError, match=message):
        load_config(path)


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


def test_an_unreachable_tracking_server_is_one_sentence_within_seconds(monkeypatch):
    import socket
    import time

    from models.registry import configure_tracking

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    t0 = time.perf_counter()
    with pytest.raises(PropensityError, match=rf"Cannot reach the MLflow tracking server at http://127.0.0.1:{port}"):
        configure_tracking()
    assert time.perf_counter() - t0 < 10


def test_backtest_fits_run_each_learner_on_one_thread_and_the_refit_keeps_the_familys_threads():
    from models.families import get_family
    from models.pipeline import set_threads
    from models.spec import FeatureSpec

    spec = FeatureSpec(numeric=("recency_days",), categorical=())
    for name in ("random_forest", "xgboost", "lightgbm", "lightgbm_tweedie", "xgboost_tweedie"):
        model = get_family(name).build(spec, {}, 0)
        threads = {k: v for k, v in model.get_params().items() if k.endswith("n_jobs") and v is not None}
        assert set(threads.values()) == {2}, name  # the registered model's setting: batch scoring uses both cores
        set_threads(model, 1)
        assert all(model.get_params()[k] == 1 for k in threads), name
    logistic = get_family("logistic").build(spec, {"C": 1.0}, 0)
    before = logistic.get_params()
    set_threads(logistic, 1)  # nothing set, nothing changed (scikit-learn deprecates n_jobs there)
    assert logistic.get_params().keys() == before.keys() and all(
        logistic.get_params()[k] is None for k in before if k.endswith("n_jobs")
    )
