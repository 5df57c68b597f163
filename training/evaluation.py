"""What a training run records beside the leaderboard: margins over the baselines, per-family runs, plots,
importance and the per-segment calibration table."""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow
import mlflow.data
import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from training.config import TrainingConfig
from training.dataset import TaskData
from training.metrics import decile_table, paired_bootstrap_se, ranking_metrics, segment_metrics, task_metrics
from training.plots import plot_all, plot_importance, plot_value_deciles

BASELINES_TO_BEAT = ("recency_rule", "bgnbd", "historic_rate", "bgnbd_gamma_gamma")


def margins_over_baselines(
    champion: dict, p_cal: np.ndarray, y_test, results: list[dict], cfg: TrainingConfig, task: str = "churn"
):
    """Champion minus each baseline: on the latest origin (with paired SEs), and averaged over the origins."""
    baselines = [r for base in BASELINES_TO_BEAT for r in results if r["name"] == base and r is not champion]
    ranking = ranking_metrics(task)
    test = task_metrics(task)(y_test, p_cal)
    margins = {f"{r['name']}_{m}": test[m] - r["test"][m] for r in baselines for m in ranking}
    margin_se = {}
    for m in ranking:  # paired bootstrap over the test customers, one pass for both baselines
        scores = {"champion": p_cal, **{r["name"]: r["p_test"] for r in baselines}}
        se = paired_bootstrap_se(y_test, scores, "champion", m, cfg.bootstrap_resamples, cfg.seed)
        margin_se.update({f"{name}_{m}": v for name, v in se.items()})
    mine = pd.DataFrame(champion["per_origin"]).set_index("origin")
    mean_margins = {
        f"{r['name']}_{m}": float((mine[m] - pd.DataFrame(r["per_origin"]).set_index("origin")[m]).mean())
        for r in baselines
        for m in ranking
    }
    return margins, margin_se, mean_margins


def log_dataset(data: TaskData, fingerprint: dict) -> None:
    """The training table as the run's MLflow dataset input (its schema, row count and digest: the run's lineage
    names the data it learned from; the rows themselves stay in the store)."""
    name = f"{data.task}-{fingerprint['data_first_ts'][:10]}..{fingerprint['data_last_ts'][:10]}"
    columns = ["customer_id", "as_of", *data.spec.columns, data.label]
    with warnings.catch_warnings():  # MLflow's hint that integer columns cannot hold missing values: they do not
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(data.table[columns], name=name, targets=data.label)
        mlflow.log_input(dataset, context="training", tags={"content_sha1": fingerprint["content_sha1"]})


def log_family(r: dict, metric: str) -> None:
    """The family's child run, with a grandchild run for each of its tuning trials."""
    with mlflow.start_run(run_name=r["name"], nested=True):
        for trial in r["trials"]:
            with mlflow.start_run(run_name=f"{r['name']}-trial-{trial.number}", nested=True):
                mlflow.log_params(trial.params)
                mlflow.log_metric(f"backtest_{metric}", trial.score)
        mlflow.log_params({"family": r["name"], **{f"param_{k}": v for k, v in r["params"].items()}})
        mlflow.log_metrics({f"backtest_{k}": v for k, v in r["backtest"].items() if np.isfinite(v)})
        mlflow.log_metrics({f"test_{k}": v for k, v in r["test"].items() if np.isfinite(v)})
        for row in r["per_origin"]:
            mlflow.log_metrics({f"origin_{row['origin']}_{k}": row[k] for k in row if k not in ("family", "origin")})
        mlflow.log_metric("fit_s", r["fit_s"])


def log_leaderboard(board: pd.DataFrame, folder: Path) -> None:
    board.to_csv(folder / "leaderboard.csv", index=False)
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in board.itertuples(index=False)]
    lines = ["| " + " | ".join(board.columns) + " |", "|" + "---|" * len(board.columns)]
    (folder / "leaderboard.md").write_text("\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells]) + "\n")


def value_artifacts(data: TaskData, results, champion, folder: Path) -> None:
    """The value task's test origin: predicted vs realised per decile of each family's prediction, and the chart."""
    test = champion["scores"][-1]
    tables = []
    for r in results:
        table = decile_table(test.y, r["p_test"]).assign(family=r["name"])
        tables.append(table)
    deciles = pd.concat(tables, ignore_index=True)
    deciles.to_csv(folder / "deciles_test.csv", index=False)
    plot_value_deciles(deciles[deciles["family"] == champion["name"]], f"value @ {test.origin.as_of}", folder)
    segments = data.rows(test.origin.as_of)["rfm_segment"].to_numpy()
    frame = pd.DataFrame({"segment": segments, "predicted": test.p, "realised": test.y})
    by_segment = frame.groupby("segment").agg(customers=("realised", "size"), predicted=("predicted", "sum"))
    by_segment["realised"] = frame.groupby("segment")["realised"].sum()
    by_segment.reset_index().to_csv(folder / "segments_test.csv", index=False)


def evaluation_artifacts(data: TaskData, results, champion, p_cal, folder: Path, cfg: TrainingConfig) -> None:
    if data.task == "value":
        value_artifacts(data, results, champion, folder)
        return
    test = champion["scores"][-1]
    X_te, y_te = data.xy(test.origin.as_of)
    plot_all(
        y_te,
        {r["name"]: r["p_test"] for r in results},
        champion["name"],
        p_cal,
        f"{data.task} @ {test.origin.as_of}",
        folder,
    )
    sample = min(len(y_te), 3000)
    imp = permutation_importance(
        test.model,
        X_te.iloc[:sample],
        y_te[:sample],
        scoring="average_precision",
        n_repeats=3,
        random_state=cfg.seed,
        n_jobs=cfg.workers,  # the columns side by side; the permutations are drawn up front, so the same figures
    )
    importance = pd.Series(imp.importances_mean, index=X_te.columns).drop(labels="customer_id", errors="ignore")
    importance.sort_values(ascending=False).to_csv(folder / "importance.csv")
    plot_importance(importance, data.task, folder)
    segments = data.rows(test.origin.as_of)["rfm_segment"]
    segment_metrics(y_te, p_cal, segments).to_csv(folder / "segments_test.csv", index=False)  # calibration by segment
