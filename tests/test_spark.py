"""Batch scoring on Spark: the logged model under MLflow's own ``spark_udf``, pyspark ``local[2]``.

A private redis-server holds the features, so every command the Python workers send can be counted
(``SLOWLOG`` with a threshold of 0 records each command and how many arguments it had). The
workers get their environment only from ``spark.executorEnv.*``: the driver process, from which the
JVM inherits its environment, names another environment whose store holds other values.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeRegressor

import fs_augment
import fs_augment.mlflow as fs_mlflow
from fs_augment import FeatureStoreAugmenter
from fs_augment.writer import write_namespace
from tests.support.redis_servers import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.mlflow, pytest.mark.spark]

ROWS = 3000
USERS = 1000
PRODUCTS = 100
#: Keys per command the scoring environment allows (``batch_chunk_size``).
CHUNK = 500
#: Rows per Arrow batch: 3,000 rows in two partitions give batches of 1,200 (over ONLINE_MAX_ROWS,
#: looked up in batch) and 300 (under it, looked up online): both paths are exercised.
ARROW_BATCH = 1200
RECIPE = {"augmenter": {"features": [
    {"feature_namespace": "user_demographics", "features": ["age", "country_code"]},
    {"feature_namespace": "user_purchase_summary", "features": ["ltv"]},
    {"feature_namespace": "product_details", "features": ["price", "category"]},
]}}
FEATURES_PER_ROW = 5
_MORE = re.compile(rb"^\.\.\. \((\d+) more arguments\)$")


def write_features(client: redis.Redis, shift: int) -> None:
    """Users u0..u899 and products p0..p89 (the rest have no features); ``shift`` changes every value."""
    rng = np.random.default_rng(7 + shift)
    users = pd.DataFrame({
        "user_id": [f"u{i}" for i in range(USERS - 100)],
        "age": rng.integers(18, 80, USERS - 100) + shift,
        "country_code": rng.choice(["KR", "US", "DE", "JP"], USERS - 100),
    })
    write_namespace(users, "user_demographics", client)
    write_namespace(pd.DataFrame({"user_id": users["user_id"], "ltv": rng.gamma(2.0, 300.0, len(users)) + shift}),
                    "user_purchase_summary", client)
    write_namespace(pd.DataFrame({
        "product_id": [f"p{i}" for i in range(PRODUCTS - 10)],
        "price": np.round(rng.uniform(1, 500, PRODUCTS - 10), 2) + shift,
        "category": rng.choice(["shoes", "books", "games"], PRODUCTS - 10),
    }), "product_details", client)


def spine(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "row": np.arange(rows),
        "user_id": [f"u{i}" for i in rng.integers(0, USERS, rows)],
        "product_id": [f"p{i}" for i in rng.integers(0, PRODUCTS, rows)],
    })


def fitted_pipeline(adapter: Any) -> Pipeline:
    train = spine(2000, seed=1)
    with fs_augment.use(adapter):
        features = FeatureStoreAugmenter(RECIPE).fit_transform(train)
    y = (features["user_demographics__age"].fillna(40) * 3 + features["product_details__price"].fillna(100)
         + features["user_purchase_summary__ltv"].fillna(0) / 10).to_numpy()
    pipe = Pipeline([
        ("augment", FeatureStoreAugmenter(RECIPE, drop_entity_columns=True)),
        ("encode", ColumnTransformer([
            ("categories", OneHotEncoder(handle_unknown="ignore"),
             ["user_demographics__country_code", "product_details__category"]),
            ("numbers", "passthrough",
             ["user_demographics__age", "user_purchase_summary__ltv", "product_details__price"]),
        ])),
        ("model", DecisionTreeRegressor(max_depth=10, random_state=0)),
    ])
    with fs_augment.use(adapter):
        return pipe.fit(train[["user_id", "product_id"]], y)


def mget_sizes(server: RedisServer) -> list[int]:
    """Keys of every MGET in the server's slow log (all commands are logged), oldest first."""
    client = redis.Redis(**server.client_kwargs())
    try:
        entries = client.execute_command("SLOWLOG", "GET", -1)
    finally:
        client.close()
    sizes = []
    for entry in reversed(entries):
        args = entry[3]
        if args[0].upper() != b"MGET":
            continue
        more = _MORE.match(args[-1])
        sizes.append(len(args) - 2 + int(more.group(1)) if more else len(args) - 1)
    return sizes


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A private server: database 0 is environment ``score``, database 1 environment ``elsewhere``."""
    with RedisServer.start(tmp_path_factory.mktemp("spark-redis")) as server:
        folder = tmp_path_factory.mktemp("spark-project") / "config"
        folder.mkdir()
        host = f"127.0.0.1:{server.port}"
        base = {"feature_store": {"provider": "redis", "connection_timeout": 5000, "retry_attempts": 1,
                                  "batch_chunk_size": CHUNK,
                                  "connection_info": {"redis_host": host, "redis_mode": "standalone"}}}
        (folder / "base.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
        for env, db in (("score", 0), ("elsewhere", 1)):
            (folder / f"{env}.yaml").write_text(
                yaml.safe_dump({"feature_store": {"connection_info": {"redis_db": db}}}), encoding="utf-8")
            client = redis.Redis(**server.client_kwargs(), db=db)
            write_features(client, shift=0 if env == "score" else 1000)
            client.close()
        yield {"server": server, "config_dir": folder}


@pytest.fixture(scope="module")
def spark(store: dict[str, Any]) -> Iterator[Any]:
    """``local[2]`` whose Python workers run this interpreter in environment ``score``.

    The JVM (and so every Python worker it starts) inherits the driver's environment, which names
    ``elsewhere``: only ``spark.executorEnv.*`` makes the workers score in ``score``.
    """
    from pyspark.sql import SparkSession

    saved = {name: os.environ.get(name) for name in
             ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "FS_AUGMENT_ENV", "FS_AUGMENT_CONFIG_DIR", "SPARK_LOCAL_IP")}
    os.environ.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                      FS_AUGMENT_ENV="elsewhere", FS_AUGMENT_CONFIG_DIR=str(store["config_dir"]),
                      SPARK_LOCAL_IP="127.0.0.1")
    try:
        session = (SparkSession.builder.master("local[2]").appName("fs_augment-test")
                   .config("spark.ui.enabled", "false")
                   .config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.sql.shuffle.partitions", "2")
                   .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                   .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH))
                   .config("spark.executorEnv.FS_AUGMENT_ENV", "score")
                   .config("spark.executorEnv.FS_AUGMENT_CONFIG_DIR", str(store["config_dir"]))
                   .getOrCreate())
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def model(store: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The pipeline fitted and logged in environment ``score``; the in-process batch predictions of a spine."""
    import mlflow

    tracking = tmp_path_factory.mktemp("spark-mlflow")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tracking / 'mlflow.db'}")
    try:
        with fs_augment.connect("score", store["config_dir"]) as adapter:
            pipe = fitted_pipeline(adapter)
            frame = spine(ROWS, seed=2)
            with fs_augment.use(adapter), mlflow.start_run():
                info = fs_mlflow.log_model(pipe, "model", input_example=frame[["user_id", "product_id"]].head(5))
            with fs_augment.use(adapter):
                expected = fs_mlflow.load_model(info.model_uri, mode="batch").predict(frame)
        # the same model scores other values in the other environment: the test can tell them apart
        with fs_augment.connect("elsewhere", store["config_dir"]) as adapter, fs_augment.use(adapter):
            elsewhere = pipe.predict(frame[["user_id", "product_id"]])
        assert (np.asarray(elsewhere) != np.asarray(expected)).mean() > 0.5
        yield {"uri": info.model_uri, "spine": frame, "expected": np.asarray(expected, dtype=float)}
    finally:
        mlflow.set_tracking_uri(previous)


def score(spark: Any, server: RedisServer, uri: str, frame: pd.DataFrame, **udf_options: Any) -> dict[str, Any]:
    """Score ``frame`` with ``spark_udf``; the predictions in row order and what the server saw meanwhile."""
    import mlflow
    from pyspark.sql import functions as F

    data = spark.createDataFrame(frame)
    assert data.rdd.getNumPartitions() == 2
    udf = mlflow.pyfunc.spark_udf(spark, uri, env_manager="local", **udf_options)
    server.command("CONFIG", "SET", "slowlog-log-slower-than", "0")
    server.command("CONFIG", "SET", "slowlog-max-len", "100000")
    server.command("SLOWLOG", "RESET")
    connections = int(server.info("stats")["total_connections_received"])
    rows = data.withColumn("prediction", udf(F.struct("user_id", "product_id"))).select("row", "prediction").collect()
    opened = int(server.info("stats")["total_connections_received"]) - connections - 1  # our INFO
    sizes = mget_sizes(server)
    server.command("CONFIG", "SET", "slowlog-log-slower-than", "10000")
    got = pd.DataFrame(rows, columns=["row", "prediction"]).sort_values("row")
    assert got["row"].tolist() == list(range(len(frame)))
    return {"predictions": np.array([scalar(p) for p in got["prediction"]]), "mget_sizes": sizes,
            "connections": opened}


def scalar(prediction: Any) -> float:
    """One row's prediction: a number, or the one-element array of an output schema that is a tensor."""
    if isinstance(prediction, list):
        assert len(prediction) == 1, prediction
        (prediction,) = prediction
    return float(prediction)


def expected_mgets(frame: pd.DataFrame) -> list[int]:
    """The MGET sizes for ``frame`` in two partitions: each Arrow batch's distinct keys, in chunks of CHUNK."""
    sizes = []
    for part in np.array_split(np.arange(len(frame)), 2):
        for start in range(0, len(part), ARROW_BATCH):
            batch = frame.iloc[part[start:start + ARROW_BATCH]]
            keys = batch["user_id"].nunique() * 3 + batch["product_id"].nunique() * 2
            sizes += [CHUNK] * (keys // CHUNK) + ([keys % CHUNK] if keys % CHUNK else [])
    return sorted(sizes)


def test_spark_udf_scores_like_the_in_process_batch_with_bounded_commands(spark, store, model) -> None:
    frame = model["spine"]
    got = score(spark, store["server"], model["uri"], frame)

    # the predictions of the environment given to the executors, row by row
    np.testing.assert_array_equal(got["predictions"], model["expected"])
    # each Arrow batch as a batch: chunks of at most batch_chunk_size keys, never a command per row
    sizes = got["mget_sizes"]
    assert sizes, "no MGET reached the scoring environment's server"
    assert max(sizes) <= CHUNK
    assert len(sizes) < ROWS / 100
    assert sorted(sizes) == expected_mgets(frame)
    # one connection per Python worker (the shared adapter of the process), not one per batch or model load
    assert 1 <= got["connections"] <= 2


def test_spark_udf_with_batch_lookups_for_every_arrow_batch(spark, store, model) -> None:
    """MLflow's ``model_config`` reaches the workers' model: ``lookup_mode="batch"`` scores the same."""
    frame = model["spine"]
    got = score(spark, store["server"], model["uri"], frame, model_config={"lookup_mode": "batch"})
    np.testing.assert_array_equal(got["predictions"], model["expected"])
    assert max(got["mget_sizes"]) <= CHUNK


def test_the_spark_example_runs_and_agrees_with_the_in_process_scorer(store) -> None:
    import subprocess

    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FS_AUGMENT_", "PYSPARK_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(root / "examples" / "spark_scoring.py"), "--rows", "3000", "--chunk", "2000",
         "--redis-url", f"redis://127.0.0.1:{store['server'].port}/2"],
        cwd=root, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "predictions that differ from the in-process ones: 0 of 3,000" in proc.stdout
