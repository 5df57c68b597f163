"""Training end to end on a generated log: backtest, refit, register, load by alias, reproduce."""

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.contract import load_mapping
from features.sources import Source
from features.synthetic import SyntheticConfig, generate
from features.transactions import TransactionLog
from features.validate import ingest
from models.spec import model_input
from training.config import load_config


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "log.parquet"
    pq.write_table(generate(SyntheticConfig(n_customers=1500, seed=11)), path)
    con = duckdb.connect()
    ingest(con, Source(path), load_mapping("canonical"))
    return TransactionLog.on(con)


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
    assert record.train_cutoffs == tuple(str(c) for c in data.plan.refit) and data.plan.refit[-1] == data.plan.grid[-1]
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

    # each tuning trial is a run under its family's run (the families ran in worker processes)
    import mlflow

    inputs = mlflow.get_run(result.run_id).inputs.dataset_inputs  # lineage: the data the run learned from
    tags = {t.key: t.value for t in inputs[0].tags}
    assert [i.dataset.name.split("-")[0] for i in inputs] == ["churn"] and tags["mlflow.data.context"] == "training"
    assert tags["content_sha1"] == data.fingerprint()["content_sha1"]

    trials = mlflow.search_runs(
        search_all_experiments=True, filter_string="tags.mlflow.runName LIKE 'decision_tree-trial-%'"
    )
    family_run = mlflow.search_runs(search_all_experiments=True, filter_string="tags.mlflow.runName = 'decision_tree'")
    assert len(trials) == 2 and set(trials["tags.mlflow.parentRunId"]) == set(family_run["run_id"])

    # same config and seed: the same leaderboard (to a tolerance far below any difference that could change a choice),
    # whether the families ran side by side (2 workers, the default) or one after another
    assert cfg.workers == 2
    again = train_task(log, "churn", cfg.model_copy(update={"workers": 1}), register=False)
    pd.testing.assert_frame_equal(
        result.leaderboard.drop(columns=["fit_s"]), again.leaderboard.drop(columns=["fit_s"]), rtol=1e-9, atol=1e-12
    )
    assert again.champion == result.champion
