"""Batch scoring: MLflow's ``spark_udf`` on pyspark ``local[2]`` next to the in-process batch scorer.

Runs in a worker process of its own (``python -m benchmarks.workers spark``). It fits a small
pipeline (augmenter → one-hot encoding → decision tree) on the benchmark's data, logs it with
:func:`fs_augment.mlflow.log_model` to a temporary sqlite tracking store, and scores spines of each
size in two ways, alternately:

* ``inprocess`` — :func:`fs_augment.mlflow.load_model` with ``mode="batch"``, ``predict`` of the
  whole pandas spine in this process (one batch lookup: chunked, pipelined ``MGET``);
* ``spark`` — ``mlflow.pyfunc.spark_udf(spark, uri, env_manager="local")`` over the same spine read
  from parquet, two Python workers, every Arrow batch (10,000 rows) looked up as a batch; the
  result written to Spark's ``noop`` sink, so every row is scored and nothing is collected.

Wall time covers the scoring only (the session, the workers' imports and the model's first load
are warmed up before). Afterwards one untimed pass per path at the smallest size runs under
``MONITOR`` (filtered to the benchmark's database): how many ``MGET`` commands each path sent and
the largest one, in keys; and the two paths' predictions are compared row by row.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

#: Spine sizes measured, by ``--size``.
SPARK_ROWS = {"full": (100_000, 1_000_000), "smoke": (2_000, 4_000)}
_QUOTED = re.compile(rb'"(?:[^"\\]|\\.)*"')
_STOP = "fs-augment-bench-monitor-stop"


def _pipeline(sizes: Any, env: str, config_dir: str) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeRegressor

    from benchmarks.data import RECIPE, spine
    from fs_augment import FeatureStoreAugmenter

    train = spine(sizes, 5000, seed=31)
    features = FeatureStoreAugmenter(RECIPE, env=env, config_dir=config_dir).fit_transform(train)
    y = (features["user_demographics__age"].fillna(40) * 3 + features["product_details__price"].fillna(100)
         + features["user_purchase_summary__ltv"].fillna(0) / 10).to_numpy()
    text = ["user_demographics__country_code", "user_demographics__gender", "product_details__category",
            "product_details__brand"]
    numbers = ["user_demographics__age", "user_purchase_summary__ltv", "user_purchase_summary__total_purchase_count",
               "product_details__price"]
    # unpinned: the logged model reads the environment where it runs (FS_AUGMENT_ENV)
    pipe = Pipeline([
        ("augment", FeatureStoreAugmenter(RECIPE, drop_entity_columns=True)),
        ("encode", ColumnTransformer([("text", OneHotEncoder(handle_unknown="ignore"), text),
                                      ("numbers", "passthrough", numbers)])),
        ("model", DecisionTreeRegressor(max_depth=10, random_state=0)),
    ])
    return pipe.fit(train, y)


class _Monitor:
    """``MONITOR`` of one Redis database in a thread: the key count of every ``MGET`` it sends."""

    def __init__(self, redis_url: str) -> None:
        import redis
        from redis.connection import parse_url

        self.url = redis_url
        self.db = int(parse_url(redis_url).get("db", 0))
        self.sizes: list[int] = []
        self._client = redis.Redis.from_url(redis_url)
        self._monitor = self._client.monitor()
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        connection = self._monitor.connection
        marker = f'[{self.db} '.encode()
        while True:
            line = connection.read_response()
            if not isinstance(line, bytes) or marker not in line[:40]:
                continue
            head = line.find(b'] "', 0, 80)
            tokens = _QUOTED.findall(line, head)
            if not tokens:
                continue
            name = tokens[0].upper()
            if name == b'"MGET"':
                self.sizes.append(len(tokens) - 1)
            elif name == b'"ECHO"' and _STOP.encode() in tokens[-1]:
                return

    def stop(self) -> list[int]:
        import redis

        client = redis.Redis.from_url(self.url)
        client.echo(_STOP)
        client.close()
        self._thread.join(60)
        self._monitor.__exit__(None, None, None)
        self._client.close()
        return self.sizes


def _session(env: str, config_dir: str) -> Any:
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = (SparkSession.builder.master("local[2]").appName("fs_augment-benchmark")
               .config("spark.ui.enabled", "false")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.driver.memory", "4g")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               # small parquet files are split too, so both cores score
               .config("spark.sql.files.openCostInBytes", str(64 * 1024))
               .config("spark.executorEnv.FS_AUGMENT_ENV", env)
               .config("spark.executorEnv.FS_AUGMENT_CONFIG_DIR", config_dir)
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


def spark(args: dict[str, Any]) -> dict[str, Any]:
    import mlflow
    import numpy as np
    from pyspark.sql import functions as F

    import fs_augment.mlflow as fs_mlflow
    from benchmarks.data import SIZES, spine

    sizes = SIZES[args["size"]]
    env, config_dir, redis_url = args["env"], args["config_dir"], args["redis_url"]
    work = Path(args.get("work") or tempfile.mkdtemp(prefix="fs_augment_spark_"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["FS_AUGMENT_ENV"], os.environ["FS_AUGMENT_CONFIG_DIR"] = env, config_dir
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    pipe = _pipeline(sizes, env, config_dir)
    with mlflow.start_run():
        info = fs_mlflow.log_model(pipe, "model", input_example=spine(sizes, 5, seed=32))
    model = fs_mlflow.load_model(info.model_uri, mode="batch")
    session = _session(env, config_dir)
    udf = mlflow.pyfunc.spark_udf(session, info.model_uri, env_manager="local", result_type="double")

    def spark_frame(frame: Any, name: str) -> Any:
        path = work / f"{name}.parquet"
        # row groups small enough for Spark to split the file between both cores
        frame.to_parquet(path, index=False, row_group_size=max(1000, len(frame) // 8))
        return session.read.parquet(str(path))

    def score_spark(data: Any) -> float:
        start = time.perf_counter()
        data.withColumn("prediction", udf(F.struct("user_id", "product_id"))).write.format("noop") \
            .mode("overwrite").save()
        return time.perf_counter() - start

    def score_inprocess(frame: Any) -> float:
        start = time.perf_counter()
        model.predict(frame)
        return time.perf_counter() - start

    warm = spine(sizes, 20_000, seed=33)  # the workers import everything and load the model once
    score_spark(spark_frame(warm, "warm"))
    score_inprocess(warm)

    rows_measured = SPARK_ROWS[args["size"]]
    out: dict[str, Any] = {"sizes": [], "arrow_batch_rows": int(session.conf.get(
        "spark.sql.execution.arrow.maxRecordsPerBatch"))}
    for index, rows in enumerate(rows_measured):
        frame = spine(sizes, rows, seed=40 + index)
        data = spark_frame(frame, f"spine_{rows}")
        runs = 3 if rows <= 200_000 else 2
        times: dict[str, list[float]] = {"spark": [], "inprocess": []}
        for run in range(runs):
            order = [("spark", score_spark, data), ("inprocess", score_inprocess, frame)]
            for key, function, argument in order if run % 2 == 0 else order[::-1]:
                times[key].append(function(argument))
        entry = {"rows": rows, "partitions": data.rdd.getNumPartitions(), "runs": runs}
        for key, seconds in times.items():
            median = statistics.median(seconds)
            entry[key] = {"median_s": median, "runs_s": seconds, "rows_per_s": rows / median}
        out["sizes"].append(entry)

    # untimed: the commands each path sends, and the predictions row by row, at the smallest size
    rows = rows_measured[0]
    frame = spine(sizes, rows, seed=40)
    data = spark_frame(frame.assign(row=np.arange(rows)), "check")
    monitor = _Monitor(redis_url)
    expected = np.asarray(model.predict(frame), dtype=float).ravel()
    inprocess_sizes = monitor.stop()
    monitor = _Monitor(redis_url)
    got = data.withColumn("prediction", udf(F.struct("user_id", "product_id"))).select("row", "prediction") \
        .toPandas().sort_values("row")["prediction"].to_numpy(dtype=float)
    spark_sizes = monitor.stop()
    session.stop()
    chunk = _chunk_size(env, config_dir)
    out["commands"] = {
        "rows": rows, "batch_chunk_size": chunk,
        "inprocess": {"mget_commands": len(inprocess_sizes), "largest_mget_keys": max(inprocess_sizes, default=0),
                      "keys": sum(inprocess_sizes)},
        "spark": {"mget_commands": len(spark_sizes), "largest_mget_keys": max(spark_sizes, default=0),
                  "keys": sum(spark_sizes)},
    }
    out["prediction_mismatches"] = int((got != expected).sum())
    first, last = out["sizes"][0], out["sizes"][-1]
    out["growth"] = {key: last[key]["median_s"] / first[key]["median_s"] for key in ("spark", "inprocess")}
    out["growth_rows"] = last["rows"] / first["rows"]
    return out


def _chunk_size(env: str, config_dir: str) -> int:
    from fs_augment.config import load_config

    return int(load_config(env, config_dir).feature_store.batch_chunk_size)
