"""Per-customer drivers: exact TreeSHAP for trees (checked by additivity), occlusion for the rest, phrases."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from features.build import build_training_table
from features.cutoffs import Horizons, monthly_cutoffs
from models.calibration import Calibrator
from models.explain import contributions
from models.families import get_family
from models.packaged import PropensityModel
from models.record import ModelRecord
from models.spec import model_input, spec_for_columns
from serving.reasons import reason_text, top_reasons


@pytest.fixture(scope="module")
def table(small_synthetic):
    tx = small_synthetic[0]
    return build_training_table(tx, monthly_cutoffs("2022-07-01", "2022-10-01"), Horizons(60, 30))


def _record(spec, family: str) -> ModelRecord:
    return ModelRecord(
        task="churn",
        family=family,
        horizon_days=60,
        lookback_days=365,
        numeric=spec.numeric,
        categorical=spec.categorical,
    )


PARAMS = {
    "decision_tree": {"max_depth": 4, "min_samples_leaf": 10},
    "random_forest": {"n_estimators": 30, "max_depth": 5, "min_samples_leaf": 5, "max_features": 0.5},
    "xgboost": {"n_estimators": 40, "max_depth": 3},
    "lightgbm": {"n_estimators": 40, "num_leaves": 7},
    "logistic": {},
}


@pytest.mark.parametrize("family", list(PARAMS))
def test_contributions_add_up_to_the_score(table, family):
    spec = spec_for_columns(table.columns)
    X, y = model_input(table, spec), table["churn"].to_numpy()
    estimator = get_family(family).build(spec, PARAMS[family], 0).fit(X, y)
    model = PropensityModel(estimator, None, _record(spec, family), PropensityModel.reference_row(X, spec))
    phi = contributions(model, X.head(60))
    assert len(phi) == 60 and set(phi.columns) <= {
        *spec.columns,
        "bgnbd_p_alive",
        "bgnbd_p_purchase_30d",
        "bgnbd_p_purchase_90d",
    }
    p = np.clip(model.predict_proba(X.head(60)), 1e-12, 1 - 1e-12)
    if family in ("xgboost", "lightgbm"):  # log-odds space: score = bias + sum of contributions
        residual = logit(p) - phi.sum(axis=1)
    elif family in ("decision_tree", "random_forest"):  # probability space
        residual = p - phi.sum(axis=1)
    else:  # occlusion: setting a feature to its median removes exactly its contribution
        assert np.isfinite(phi.to_numpy()).all() and (phi.abs().sum(axis=1) > 0).all()
        return
    assert np.ptp(residual) < 1e-4  # a constant (the model's base value) for every row


def test_reason_phrases_compare_with_the_customers_habit_or_the_typical_customer():
    assert (
        reason_text("recency_days", {"recency_days": 120.4, "gap_mean_days": 30.0})
        == "no purchase for 120 days; usually buys every 30"
    )
    assert (
        reason_text("recency_days", {"recency_days": 120.4, "gap_mean_days": np.nan})
        == "no purchase for 120 days, after a single purchase day"
    )
    assert reason_text("monetary_total", {"monetary_total": 50.0}, 310.0) == "spent 50 in all (typical customer: 310)"
    assert reason_text("monetary_total", {"monetary_total": 50.0}) == "spent 50 in all"  # no typical value known
    assert reason_text("spend_trend", {"spend_trend": -0.6}) == "spend -60% on the quarter before"
    assert reason_text("some_new_feature", {}) == "some new feature"


def test_top_reasons_put_what_raises_the_risk_first_and_say_which_way_each_pushes():
    contrib = pd.DataFrame({"recency_days": [2.0, -1.0], "monetary_total": [0.5, -3.0], "weekend_share": [-0.1, 0.2]})
    values = pd.DataFrame(
        {
            "recency_days": [200.0, 5.0],
            "gap_mean_days": [20.0, 30.0],
            "monetary_total": [50.0, 9000.0],
            "weekend_share": [0.1, 0.5],
        }
    )
    reasons = top_reasons(contrib, values, typical={"monetary_total": 400.0})
    assert reasons.iloc[0].tolist() == [
        "no purchase for 200 days; usually buys every 20 — raises risk",
        "spent 50 in all (typical customer: 400) — raises risk",
        "orders at weekends: 10% — lowers risk",
    ]
    assert reasons.iloc[1].tolist() == [
        "orders at weekends: 50% — raises risk",
        "spent 9,000 in all (typical customer: 400) — lowers risk",
        "no purchase for 5 days; usually buys every 30 — lowers risk",
    ]
    # a purchase model explained: what raises P(purchase) lowers the churn risk
    flipped = top_reasons(contrib, values, typical={"monetary_total": 400.0}, risk_sign=-1.0)
    assert flipped.iloc[0, :2].tolist() == [
        "orders at weekends: 10% — raises risk",
        "no purchase for 200 days; usually buys every 20 — lowers risk",
    ]


def test_inputs_of_one_group_are_one_reason_told_by_the_member_pushing_hardest():
    contrib = pd.DataFrame({"spend_90d": [0.3], "spend_365d": [0.2], "monetary_total": [-0.1], "recency_days": [0.35]})
    values = pd.DataFrame(
        {"spend_90d": [0.0], "spend_365d": [800.0], "monetary_total": [900.0], "recency_days": [40.0]}
    )
    reasons = top_reasons(contrib, values)
    # spend: 0.3 + 0.2 - 0.1 = 0.4 > recency's 0.35, told by its strongest member; one spend reason, not three
    assert reasons.iloc[0].tolist()[:2] == [
        "spent 0 in the last 90 days (last year: 800) — raises risk",
        "no purchase for 40 days, after a single purchase day — raises risk",
    ]
    assert reasons.iloc[0, 2] != reasons.iloc[0, 2]  # two groups, two reasons


@pytest.mark.parametrize("family", ["lightgbm", "logistic"])
def test_each_reasons_direction_agrees_with_the_sign_of_its_contribution(table, family):
    """TreeSHAP (LightGBM) and occlusion (logistic regression): a phrase says 'raises risk' exactly where its
    inputs' contribution to that customer's churn score is positive, and those phrases come first."""
    from serving.reasons import load_reason_texts

    spec = spec_for_columns(table.columns)
    X, y = model_input(table, spec), table["churn"].to_numpy()
    fitted = get_family(family).build(spec, PARAMS.get(family, {"C": 1.0}), 0).fit(X, y)
    model = PropensityModel(fitted, None, _record(spec, family), PropensityModel.reference_row(X, spec))
    rows = table.sample(300, random_state=3).reset_index(drop=True)
    phi = contributions(model, model_input(rows, spec))
    reasons = top_reasons(phi, rows, typical=model.reference)
    texts = load_reason_texts()
    up, down = (texts["directions"][k] for k in ("up", "down"))
    group_of = {c: (texts.get(c) or {}).get("group", c) for c in phi.columns}
    checked = 0
    for i in range(len(rows)):
        totals = phi.iloc[i].groupby(group_of).sum()
        values = rows.iloc[i].to_dict()
        raising = {reason_text(c, values, model.reference.get(c)): totals[group_of[c]] > 0 for c in phi.columns}
        said = [p.rsplit(" — ", 1) for p in reasons.iloc[i] if isinstance(p, str)]
        for text, direction in said:
            assert direction == (up if raising[text] else down), (text, direction)
            checked += 1
        directions = [d for _, d in said]
        assert directions == sorted(directions, key=lambda d: d != up)  # what raises the risk first
        assert directions.count(up) == min(3, int((totals > 0).sum()))
    assert checked == 3 * len(rows) and (reasons == reasons).all().all()
    assert reasons.stack().str.endswith(up).any() and reasons.stack().str.endswith(down).any()


@pytest.mark.parametrize("family", ["xgboost", "svm"])
def test_calibrated_champions_are_explained_through_their_pipeline(table, family):
    from models.explain import btyd_values

    spec = spec_for_columns(table.columns)
    X, y = model_input(table, spec), table["churn"].to_numpy()
    params = {"svm": {"C": 1.0, "gamma": 0.1, "n_components": 50}}.get(family, PARAMS.get(family))
    fitted = get_family(family).build(spec, params, 0).fit(X, y)
    calibrator = Calibrator("sigmoid").fit(fitted.predict_proba(X)[:, 1], y)
    model = PropensityModel(fitted, calibrator, _record(spec, family), PropensityModel.reference_row(X, spec))
    phi = contributions(model, X.head(20))
    assert phi.shape[0] == 20 and np.isfinite(phi.to_numpy()).all()
    values = btyd_values(model, X.head(20))
    # every learner's pipeline has one BG/NBD step to read (the SVM's too: only its kernel part is cross-fitted)
    assert list(values.columns) == ["bgnbd_p_alive", "bgnbd_p_purchase_30d", "bgnbd_p_purchase_90d"]
    assert values.notna().all().all() and values.to_numpy().min() >= 0 and values.to_numpy().max() <= 1
    if family == "xgboost":  # the drivers of the pipeline's score: the calibrator on top changes no ranking
        bare = PropensityModel(fitted, None, _record(spec, family))
        pd.testing.assert_frame_equal(phi, contributions(bare, X.head(20)))


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("family", [*PARAMS, "svm", "bgnbd", "recency_rule"])
def test_packaged_model_is_its_calibrator_over_its_pipeline(table, family, method):
    """p = calibrator(pipeline(X)) for every family; one row scores as it does in a batch (to a stated tolerance:
    BLAS may sum a different number of rows in a different order); thread limits reach the learner."""
    import pickle

    spec = spec_for_columns(table.columns)
    X, y = model_input(table, spec), table["churn"].to_numpy()
    params = {
        "svm": {"C": 1.0, "gamma": 0.1, "n_components": 50},
        "bgnbd": {"horizon_days": 60, "target": "churn"},
    }.get(family, PARAMS.get(family, {}))
    fitted = get_family(family).build(spec, params, 0).fit(X, y)
    calibrator = Calibrator(method).fit(fitted.predict_proba(X)[:, 1], y)
    model = PropensityModel(fitted, calibrator, _record(spec, family)).limit_threads(1)
    rows = X.sample(200, random_state=1)
    rows.iloc[:5, [rows.columns.get_loc(c) for c in spec.numeric[1:5]]] = np.nan  # missing inputs (recency never is)
    want = calibrator.predict(fitted.predict_proba(rows[[*spec.columns, "customer_id"]])[:, 1])
    got = model.predict_proba(rows)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(rows.head(1)), got[:1], rtol=0, atol=1e-9)
    assert np.all((got >= 0) & (got <= 1))
    steps = fitted.steps if hasattr(fitted, "steps") else [("model", fitted)]
    assert all(getattr(step, "n_jobs", None) in (None, 1) for _, step in steps)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_proba(rows), got)  # the same fitted parts after a round trip
    assert again.record.lookback_days == 365 and again.horizon_days == 60


def test_sigmoid_calibration_keeps_a_calibrated_score_and_fixes_a_shifted_one():
    rng = np.random.default_rng(0)
    p_true = rng.uniform(0.02, 0.98, 20_000)
    y = (rng.random(len(p_true)) < p_true).astype(int)
    same = Calibrator("sigmoid").fit(p_true, y)
    assert same.slope_ == pytest.approx(1, abs=0.05) and same.intercept_ == pytest.approx(0, abs=0.05)
    shifted = np.clip(p_true * 0.5, 1e-6, 1)  # every score half the truth
    fixed = Calibrator("sigmoid").fit(shifted, y).predict(shifted)
    assert abs(fixed.mean() - y.mean()) < 0.01
    iso = Calibrator("isotonic").fit(shifted, y).predict(shifted)
    assert abs(iso.mean() - y.mean()) < 0.01 and np.all(np.diff(iso[np.argsort(shifted)]) >= 0)


def _origin_scores(p, y):
    from types import SimpleNamespace

    return SimpleNamespace(p=p, y=y)


def test_auto_calibration_keeps_a_calibrated_score_when_the_fitting_window_churned_more():
    from training.config import load_config
    from training.select import choose_calibration

    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.95, 20_000)
    y_next = (rng.random(len(p)) < p).astype(int)  # the window judged: the score is right there
    y_fit = (rng.random(len(p)) < np.clip(p + 0.15, 0, 1)).astype(int)  # the window before churned 15 points more
    method, losses = choose_calibration([(_origin_scores(p, y_fit), _origin_scores(p, y_next))], load_config())
    assert method == "none" and set(losses) == {"none", "sigmoid", "isotonic"}
    shifted = np.clip(p * 0.5, 1e-6, 1)  # a score half the truth in both windows: recalibrating pays
    y_a, y_b = ((rng.random(len(p)) < p).astype(int) for _ in range(2))
    method, _ = choose_calibration([(_origin_scores(shifted, y_a), _origin_scores(shifted, y_b))], load_config())
    assert method in ("sigmoid", "isotonic")
    np.testing.assert_array_equal(Calibrator("none").fit(p, y_next).predict(p), p)


def test_scoring_asks_only_for_the_inputs_a_champion_reads(table):
    """A BG/NBD champion reads its BTYD summary and the recency rule recency: feature rows with only those (no
    country, no channel, no money) score the same; a learner still needs its whole spec."""
    from features.errors import PropensityError
    from serving.predictor import Models, require_model_inputs

    spec = spec_for_columns(table.columns)
    X, y = model_input(table, spec), table["churn"].to_numpy()
    fitted = {
        name: get_family(name).build(spec, params, 0).fit(X, y)
        for name, params in (("bgnbd", {"horizon_days": 60, "target": "churn"}), ("recency_rule", {}))
    }
    churn = PropensityModel(fitted["bgnbd"], None, _record(spec, "bgnbd"))
    purchase_record = _record(spec, "recency_rule").model_copy(update={"task": "purchase"})
    purchase = PropensityModel(fitted["recency_rule"], None, purchase_record)
    models = Models(churn, purchase)
    assert churn.reads == ("btyd_frequency", "btyd_recency", "btyd_T") and purchase.reads == ("recency_days",)
    assert models.reads == ["btyd_frequency", "btyd_recency", "btyd_T", "recency_days"]
    few = table[["customer_id", *models.reads]].head(50)
    require_model_inputs(few, models)  # nothing else is asked for
    np.testing.assert_allclose(churn.predict_proba(few), churn.predict_proba(X.head(50)), rtol=0, atol=1e-12)
    with pytest.raises(PropensityError, match="btyd_T"):
        require_model_inputs(few.drop(columns=["btyd_T"]), models)
    learner = PropensityModel(
        get_family("lightgbm").build(spec, PARAMS["lightgbm"], 0).fit(X, y), None, _record(spec, "lightgbm")
    )
    with pytest.raises(PropensityError, match="lack"):
        learner.predict_proba(few)


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_boosted_trees_on_every_core_score_and_explain_as_on_one(table, family):
    """Batch scoring runs the boosted trees on every core (``use_cores``); each row is still scored and explained
    by one thread, so the numbers are those of one thread."""
    from models.packaged import cores

    spec = spec_for_columns(table.columns)
    X, y = model_input(table, spec), table["churn"].to_numpy()
    estimator = get_family(family).build(spec, PARAMS[family], 0).fit(X, y)
    model = PropensityModel(estimator, None, _record(spec, family), PropensityModel.reference_row(X, spec))
    model.limit_threads(1)
    alone, phi_alone = model.predict_proba(X), contributions(model, X)
    assert model.use_cores() is model and model.pipeline[-1].n_jobs == cores()
    np.testing.assert_allclose(model.predict_proba(X), alone, rtol=1e-12, atol=0)  # exact in practice
    np.testing.assert_allclose(contributions(model, X).to_numpy(), phi_alone.to_numpy(), rtol=1e-12, atol=1e-15)


def test_a_forest_keeps_its_trained_threads_for_a_batch(table):
    """A forest adds its trees' votes in the order its threads finish: it is not spread over more cores."""
    spec = spec_for_columns(table.columns)
    X, y = model_input(table, spec), table["churn"].to_numpy()
    estimator = get_family("random_forest").build(spec, PARAMS["random_forest"], 0).fit(X, y)
    model = PropensityModel(estimator, None, _record(spec, "random_forest"), PropensityModel.reference_row(X, spec))
    model.limit_threads(1)
    assert model.use_cores().pipeline[-1].n_jobs == 1


def test_a_bgnbd_champion_tells_a_lapsed_frequent_buyer_that_the_silence_raises_the_risk(table):
    """BG/NBD is occluded over visits, their span and the silence since (T = span + silence): its own inputs would
    set a customer's first purchase to the typical one's and keep their last, and told a buyer of 8 days in 5 weeks,
    silent for half a year, that their first purchase raised the risk and their last lowered it."""
    spec = spec_for_columns(table.columns)
    X, y = model_input(table, spec), table["churn"].to_numpy()
    fitted = get_family("bgnbd").build(spec, {"horizon_days": 60, "target": "churn"}, 0).fit(X, y)
    # a typical customer: three return visits over a month, last seen 20 days ago
    typical = {**PropensityModel.reference_row(X, spec), "btyd_frequency": 3.0, "btyd_recency": 30.0}
    typical |= {"btyd_T": 50.0, "recency_days": 19.4}
    model = PropensityModel(fitted, None, _record(spec, "bgnbd"), typical)
    rows = X.head(2).copy()
    rows[["btyd_frequency", "btyd_recency", "btyd_T"]] = [[7.0, 37.0, 227.0], [7.0, 210.0, 227.0]]  # lapsed, active
    rows["recency_days"] = [189.5, 16.5]
    phi = contributions(model, rows)
    assert list(phi.columns) == spec.columns
    silence = phi["recency_days"].to_numpy()
    assert silence[0] > 0 and silence[1] < 0  # 190 silent days raise the risk, 17 lower it
    assert silence[0] == phi.iloc[0].max()  # and are the strongest driver of the lapsed buyer's
    assert (phi.drop(columns=["recency_days", "btyd_frequency", "btyd_recency"]) == 0).all().all()
    # each value is what the score loses when that one input takes the typical value, the other two kept
    p = model.predict_proba(rows.iloc[[0]])[0]
    alive = rows.iloc[[0]].assign(btyd_T=37.0 + 20.0)  # the typical silence, in whole days: 20
    assert silence[0] == pytest.approx(p - model.predict_proba(alive)[0], abs=1e-12)
    span = rows.iloc[[0]].assign(btyd_recency=30.0, btyd_T=30.0 + 190.0)
    assert phi["btyd_recency"].iloc[0] == pytest.approx(p - model.predict_proba(span)[0], abs=1e-12)
    visits = rows.iloc[[0]].assign(btyd_frequency=3.0)
    assert phi["btyd_frequency"].iloc[0] == pytest.approx(p - model.predict_proba(visits)[0], abs=1e-12)
    single = rows.iloc[[0]].assign(btyd_frequency=0.0, btyd_recency=0.0, btyd_T=190.0)  # one purchase day only
    assert contributions(model, single)["btyd_recency"].iloc[0] == 0  # no visits, no span to blame
    values = rows[["recency_days", "btyd_frequency", "btyd_recency"]].assign(gap_mean_days=[5.0, 30.0])
    reasons = top_reasons(phi, values, typical=typical)
    assert reasons.iloc[0, 0] == "no purchase for 190 days; usually buys every 5 — raises risk"
