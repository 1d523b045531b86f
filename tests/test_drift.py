"""Serving drift: a served model's rolling statistics against its training values (fs_augment.drift).

Features live in the suite's real Redis; a model is logged with fs_augment.mlflow and loaded
through ``mlflow.pyfunc.load_model``, and once served with ``mlflow models serve`` whose
monitoring payload reaches a local endpoint. The shifted traffic moves one feature (ages + 20)
and leaves the others as at training.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from fs_augment import FeatureStoreAugmenter
from fs_augment.connections import close_all, get_adapter
from fs_augment.drift import DriftMonitor, category_shift, psi, reference
from fs_augment.keys import encode_value, feature_key
from tests.support.stores import redis_host_and_db

RECIPE = {"augmenter": {"features": [
    {"feature_namespace": "user_demographics", "features": ["age", "country_code"]},
    {"feature_namespace": "product_details", "features": ["price"]},
]}}
AGE, COUNTRY, PRICE = "user_demographics__age", "user_demographics__country_code", "product_details__price"
USERS = 400
PRODUCTS = 50


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def population(seed: int = 0) -> tuple[dict[str, float], dict[str, str], dict[str, float]]:
    rng = np.random.default_rng(seed)
    ages = {f"u{i}": float(round(rng.normal(40, 10), 1)) for i in range(USERS)}
    countries = {f"u{i}": str(c) for i, c in enumerate(rng.choice(["KR", "US", "DE", "FR"], USERS,
                                                                    p=[0.4, 0.3, 0.2, 0.1]))}
    prices = {f"p{i}": float(round(rng.uniform(5, 100), 2)) for i in range(PRODUCTS)}
    return ages, countries, prices


def write(client, ages: dict, countries: dict, prices: dict) -> None:
    pipe = client.pipeline(transaction=False)
    for user, age in ages.items():
        pipe.set(feature_key("user_demographics", "age", user), encode_value(age))
        pipe.set(feature_key("user_demographics", "country_code", user), encode_value(countries[user]))
    for product, price in prices.items():
        pipe.set(feature_key("product_details", "price", product), encode_value(price))
    pipe.execute()


def requests(rows: int, seed: int, unknown: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    users = [f"u{i}" for i in rng.integers(0, USERS, rows)]
    users = [f"nobody{i}" if rng.random() < unknown else u for i, u in enumerate(users)]
    return pd.DataFrame({"user_id": users, "product_id": [f"p{i}" for i in rng.integers(0, PRODUCTS, rows)]})


@pytest.fixture
def store(redis_client, redis_config_dir, monkeypatch):
    """The population in Redis, environment ``test`` the default one."""
    ages, countries, prices = population()
    write(redis_client, ages, countries, prices)
    monkeypatch.setenv("FS_AUGMENT_ENV", "test")
    monkeypatch.setenv("FS_AUGMENT_CONFIG_DIR", str(redis_config_dir))
    close_all()
    yield {"client": redis_client, "ages": ages, "countries": countries, "prices": prices,
           "config_dir": redis_config_dir}
    close_all()


def fitted() -> FeatureStoreAugmenter:
    """Fitted on 2000 rows, looking features up online (as served)."""
    return FeatureStoreAugmenter(RECIPE, mode="batch").fit(requests(2000, seed=1)).set_params(mode="online")


def shift_ages(store, by: float = 20.0) -> None:
    write(store["client"], {u: a + by for u, a in store["ages"].items()}, store["countries"], store["prices"])


def serve_one_by_one(transform, frame: pd.DataFrame) -> None:
    for i in range(len(frame)):
        transform(frame.iloc[[i]].reset_index(drop=True))


# --- the statistics --------------------------------------------------------------------------
def test_fit_records_bins_of_numbers_and_categories_of_text(store):
    aug = fitted()
    bins = aug.feature_stats_[AGE]["bins"]
    assert len(bins["edges"]) == 9 and len(bins["shares"]) == 10
    assert sum(bins["shares"]) == pytest.approx(1.0)
    assert all(s == pytest.approx(0.1, abs=0.02) for s in bins["shares"])  # deciles of continuous values
    assert set(aug.feature_stats_[COUNTRY]["categories"]) == {"KR", "US", "DE", "FR"}
    assert "bins" not in aug.feature_stats_[COUNTRY] and "categories" not in aug.feature_stats_[PRICE]


def test_reference_is_taken_before_the_recipes_defaults():
    assert reference([None, None, 1.0, 2.0], "float", bins=2) == {"bins": {"edges": [1.5], "shares": [0.5, 0.5]}}
    assert reference([None, None], "float") == {} and reference([[1], None], "object") == {}
    assert reference([7, 7, 7], "int") == {"bins": {"edges": [7.0], "shares": [1.0, 0.0]}}


def test_psi_uses_an_epsilon_for_empty_bins_and_the_shift_is_a_distance():
    assert np.isfinite(psi(np.array([0, 10]), np.array([1.0, 0.0])))
    assert psi(np.array([0, 10]), np.array([1.0, 0.0])) > 5
    assert category_shift(np.array([3, 1, 0]), np.array([0.75, 0.25, 0.0])) == 0.0
    assert category_shift(np.array([1, 1, 2]), np.array([0.5, 0.5, 0.0])) == pytest.approx(0.5)


def test_the_window_forgets_traffic_older_than_it():
    clock = Clock()
    stats = {"x": {"missing_rate": 0.0, "bins": {"edges": [0.0], "shares": [0.5, 0.5]}}}
    monitor = DriftMonitor(["x"], {"x": "float"}, stats, window=60, sub_windows=6, clock=clock)
    monitor.observe({"x": np.array([-1.0] * 30)}, 30)
    clock.now += 30
    monitor.observe_row([1.0])
    assert monitor.report()["x"]["rows"] == 31
    clock.now += 35  # the first sub-window left the window, the second did not
    assert monitor.report()["x"]["rows"] == 1
    clock.now += 3600  # a long silence clears the ring
    assert monitor.report()["x"] == {"rows": 0, "missing_rate": 0.0, "training_missing_rate": 0.0, "psi": None,
                                     "category_shift": None}


def test_buffered_one_row_updates_land_in_the_sub_window_they_were_served_in():
    clock = Clock()
    stats = {"x": {"missing_rate": 0.0, "bins": {"edges": [0.0], "shares": [0.5, 0.5]}}}
    monitor = DriftMonitor(["x"], {"x": "float"}, stats, window=60, sub_windows=6, clock=clock)
    for i in range(5000):  # more than one buffer's worth
        monitor.observe_row([-1.0 if i % 2 else None])
    clock.now += 30
    for _ in range(10):
        monitor.observe_row([1.0])
    assert monitor.report()["x"]["rows"] == 5010
    clock.now += 35  # the first 5000 rows left the window
    assert monitor.report()["x"] == {"rows": 10, "missing_rate": 0.0, "training_missing_rate": 0.0,
                                     "psi": pytest.approx(psi(np.array([0, 10]), np.array([0.5, 0.5]))),
                                     "category_shift": None}


def test_one_row_and_batch_updates_count_the_same():
    stats = {"x": {"missing_rate": 0.1, "bins": {"edges": [0.0, 1.0], "shares": [0.2, 0.3, 0.5]}},
             "c": {"missing_rate": 0.0, "categories": {"a": 0.25, "b": 0.25}},
             "o": {"missing_rate": 0.0}}
    kinds = {"x": "float", "c": "str", "o": "object"}
    rows = [[-1.0, "a", [1]], [0.5, "z", None], [None, None, [2]], [float("nan"), "b", [3]], [2, "a", None]]
    one, batch = DriftMonitor(list(kinds), kinds, stats), DriftMonitor(list(kinds), kinds, stats)
    for row in rows:
        one.observe_row(row)
    columns = {"x": np.array([r[0] for r in rows], dtype=float),
               "c": pd.array([r[1] for r in rows], dtype="object"),
               "o": pd.Series([r[2] for r in rows], dtype=object)}
    batch.observe(columns, len(rows))
    assert one.report() == batch.report()
    report = one.report()
    assert report["x"]["missing_rate"] == 0.4 and report["c"]["missing_rate"] == 0.2
    assert report["o"]["missing_rate"] == 0.4 and report["o"]["psi"] is None
    assert report["c"]["category_shift"] == pytest.approx(0.25)  # served a .5, b .25, other .25 vs .25 .25 .5


# --- served models -----------------------------------------------------------------------------
def pipeline() -> tuple[Pipeline, pd.DataFrame]:
    X = requests(2000, seed=1)
    ages = population()[0]
    y = np.array([int(ages[u] > 40) for u in X["user_id"]])
    pipe = Pipeline([
        ("augment", FeatureStoreAugmenter(RECIPE, drop_entity_columns=True)),
        ("encode", ColumnTransformer([
            ("categories", OneHotEncoder(handle_unknown="ignore"), [COUNTRY]),
            ("numbers", "passthrough", [AGE, PRICE]),
        ])),
        ("model", DecisionTreeClassifier(random_state=0, max_depth=3)),
    ])
    return pipe.fit(X, y), X


@pytest.fixture
def logged_model(store, tmp_path, monkeypatch):
    import mlflow

    import fs_augment.mlflow as fs_mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    pipe, X = pipeline()
    with mlflow.start_run():
        info = fs_mlflow.log_model(pipe, "model", input_example=X.head(3))
    return info.model_uri


@pytest.mark.mlflow
def test_a_served_model_reports_psi_for_the_shifted_feature_only(store, logged_model):
    import mlflow

    model = mlflow.pyfunc.load_model(logged_model)
    shift_ages(store)
    serve_one_by_one(model.predict, requests(600, seed=2))  # the one-row path
    model.predict(requests(1400, seed=3))  # the general path
    drift = model.unwrap_python_model().drift()
    assert drift[AGE]["rows"] == 2000
    assert drift[AGE]["psi"] > 0.2
    assert drift[PRICE]["psi"] < 0.1
    assert drift[COUNTRY]["category_shift"] < 0.1 and drift[COUNTRY]["psi"] is None
    assert drift[AGE]["missing_rate"] == 0.0 == drift[AGE]["training_missing_rate"]
    # the same figures in the adapter's metrics snapshot, which the monitoring payload carries
    published = get_adapter().metrics.snapshot()["drift"]
    assert published[AGE]["rows"] == 2000 and published[AGE]["psi"] == pytest.approx(drift[AGE]["psi"])


@pytest.mark.mlflow
def test_drift_can_be_turned_off_where_the_model_loads(store, logged_model):
    import fs_augment.mlflow as fs_mlflow

    model = fs_mlflow.load_model(logged_model)
    assert model.unwrap_python_model().drift_monitors
    import mlflow

    off = mlflow.pyfunc.load_model(logged_model, model_config={"drift": False})
    off.predict(requests(5, seed=4))
    assert off.unwrap_python_model().drift() == {}


@pytest.mark.mlflow
@pytest.mark.slow
def test_mlflow_models_serve_pushes_drift_in_its_monitoring_payload(store, logged_model, make_config_dir, tmp_path):
    from tests.test_mlflow import Server
    from tests.test_monitoring import Endpoint

    host, db = redis_host_and_db(store["client"])
    endpoint = Endpoint()
    try:
        config_dir = make_config_dir(serve={"feature_store": {
            "provider": "redis", "connection_timeout": 2000, "retry_attempts": 1,
            "connection_info": {"redis_host": host, "redis_db": db, "redis_mode": "standalone"},
            "enable_monitoring": True, "monitoring_endpoint": endpoint.url}})
        shift_ages(store)
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "FS_AUGMENT_ENV": "serve",
               "FS_AUGMENT_CONFIG_DIR": str(config_dir),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        server = Server(logged_model, env, tmp_path / "serve.log")
        try:
            for seed in range(4):
                frame = requests(500, seed=10 + seed)
                server.invoke({"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}})
            for row in requests(20, seed=20).to_dict("records"):
                server.invoke({"dataframe_records": [row]})
            payloads = endpoint.wait_for(1, timeout=30)
            drift = {}
            while drift.get(AGE, {}).get("rows", 0) < 2020:
                drift = payloads[-1]["snapshots"][-1]["drift"]
                if drift.get(AGE, {}).get("rows", 0) < 2020:
                    payloads = endpoint.wait_for(len(payloads) + 1, timeout=30)
        finally:
            server.stop()
    finally:
        endpoint.close()
    assert drift[AGE]["psi"] > 0.2
    assert drift[PRICE]["psi"] < 0.1 and drift[COUNTRY]["category_shift"] < 0.1


# --- missing rates, warnings, threads, pickles -----------------------------------------------------
def test_a_missing_rate_shift_is_reported_and_warned(store, caplog):
    clock = Clock()
    aug = fitted()
    monitor = aug.monitor_drift(clock=clock)
    with caplog.at_level(logging.WARNING, logger="fs_augment.drift"):
        aug.transform(requests(1000, seed=5, unknown=0.3))
        clock.now += 10
        aug.transform(requests(1, seed=6))
    report = monitor.report()
    assert report[AGE]["missing_rate"] == pytest.approx(0.3, abs=0.07)
    assert report[AGE]["training_missing_rate"] == 0.0
    assert report[PRICE]["missing_rate"] == 0.0
    assert report[AGE]["psi"] < 0.1  # the ages that are there are as at training
    warned = [r for r in caplog.records if r.name == "fs_augment.drift"]
    assert len(warned) == 1
    assert "user_demographics__age: missing rate" in warned[0].getMessage()
    assert "product_details__price" not in warned[0].getMessage()


def test_the_warning_comes_at_most_once_a_minute(store, caplog):
    clock = Clock()
    aug = fitted()
    aug.monitor_drift(clock=clock)
    shift_ages(store)
    frame = requests(200, seed=7)
    with caplog.at_level(logging.WARNING, logger="fs_augment.drift"):
        for _ in range(12):  # two minutes of shifted traffic, every ten seconds
            clock.now += 10
            aug.transform(frame)
            aug.transform(frame.iloc[[0]])
    warned = [r for r in caplog.records if r.name == "fs_augment.drift"]
    assert len(warned) == 2  # at 10 s and at 70 s; not at 20, 30 ... 60 s, nor at 80 ... 120 s
    assert all("user_demographics__age: PSI" in r.getMessage() for r in warned)


def test_no_warning_before_min_rows(store, caplog):
    clock = Clock()
    aug = fitted()
    aug.monitor_drift(clock=clock, min_rows=1000)
    shift_ages(store)
    with caplog.at_level(logging.WARNING, logger="fs_augment.drift"):
        clock.now += 10
        aug.transform(requests(200, seed=8))
    assert not [r for r in caplog.records if r.name == "fs_augment.drift"]


def test_threads_share_one_monitor_without_losing_counts(store):
    aug = fitted()
    monitor = aug.monitor_drift()
    frames = [requests(40, seed=100 + t, unknown=0.1) for t in range(8)]
    start = threading.Barrier(8)

    def work(t: int) -> None:
        start.wait()
        for _ in range(3):
            aug.transform(frames[t])
            serve_one_by_one(aug.transform, frames[t].head(10))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    report = monitor.report()
    assert report[AGE]["rows"] == 8 * 3 * 50
    expected_missing = sum(3 * (f["user_id"].str.startswith("nobody").sum()
                                + f.head(10)["user_id"].str.startswith("nobody").sum()) for f in frames)
    assert report[AGE]["missing_rate"] == pytest.approx(expected_missing / (8 * 3 * 50))


def test_pickles_carry_the_reference_but_not_the_monitor(store):
    aug = fitted()
    aug.monitor_drift()
    aug.transform(requests(10, seed=9))
    copy = pickle.loads(pickle.dumps(aug))
    assert "_drift_monitor" not in vars(copy) and "_drift_monitor" in vars(aug)
    assert copy.feature_stats_ == aug.feature_stats_
    pd.testing.assert_frame_equal(copy.transform(requests(10, seed=9)), aug.transform(requests(10, seed=9)))
    assert copy.monitor_drift().report()[AGE]["rows"] == 0
    aug.fit(requests(50, seed=1))  # a refit drops the monitor: its training values changed
    assert "_drift_monitor" not in vars(aug)


def test_an_augmenter_fitted_before_the_reference_reports_null_psi(store):
    aug = fitted()
    state = pickle.loads(pickle.dumps(aug))
    for stats in state.feature_stats_.values():  # as pickled before fit recorded bins and categories
        stats.pop("bins", None)
        stats.pop("categories", None)
    old = pickle.loads(pickle.dumps(state))
    monitor = old.monitor_drift()
    old.transform(requests(100, seed=10))
    report = monitor.report()
    assert report[AGE]["psi"] is None and report[PRICE]["psi"] is None
    assert report[COUNTRY]["category_shift"] is not None  # the summary's top values stand in
    assert report[AGE]["rows"] == 100


def test_monitor_drift_needs_a_fitted_augmenter_and_can_be_turned_off(store):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FeatureStoreAugmenter(RECIPE).monitor_drift()
    aug = fitted()
    assert aug.monitor_drift() is not None
    assert aug.monitor_drift(False) is None and "_drift_monitor" not in vars(aug)
    with pytest.raises(ValueError, match="window"):
        aug.monitor_drift(window=0)
