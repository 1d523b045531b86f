"""Score a Spark DataFrame with the logged model: MLflow's ``spark_udf``, features from Redis.

Run from the repository root, with ``pip install -e '.[mlflow,spark]'``, Java 17 and a Redis server::

    python examples/spark_scoring.py --redis-url redis://127.0.0.1:6379/13 --rows 50000

It writes the demo project into a temporary folder, copies its features into that Redis database
(``materialize``; the database's other keys are left alone), fits a pipeline and logs it with
``fs_augment.mlflow.log_model`` (sqlite tracking store in the folder), then scores a spine on
pyspark ``local[2]`` with ``mlflow.pyfunc.spark_udf(spark, model_uri, env_manager="local")``. The
Python workers run this interpreter (``PYSPARK_PYTHON``) and learn their environment from
``spark.executorEnv.FS_AUGMENT_ENV`` / ``FS_AUGMENT_CONFIG_DIR``. The Spark predictions are
compared with the same model's in-process batch predictions, row by row.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from redis.connection import parse_url
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import fs_augment
import fs_augment.mlflow as fs_mlflow
from fs_augment import FeatureStoreAugmenter
from fs_augment.demo import write_demo_data
from fs_augment.writer import materialize

RECIPE = {"augmenter": {"features": [
    {"feature_namespace": "user_demographics", "features": ["age", "country_code", "gender"]},
    {"feature_namespace": "user_purchase_summary", "features": ["ltv", "total_purchase_count"]},
    {"feature_namespace": "product_details", "features": ["price", "category", "brand"]},
]}}
ENV = "spark_demo"


def write_environment(config_dir: Path, redis_url: str, chunk: int) -> None:
    """``config/spark_demo.yaml``: the Redis database, and the demo's parquet folder as offline store."""
    parts = parse_url(redis_url)
    (config_dir / f"{ENV}.yaml").write_text(
        "feature_store:\n"
        "  provider: redis\n"
        f"  batch_chunk_size: {chunk}\n"
        "  connection_info:\n"
        f"    redis_host: \"{parts.get('host', '127.0.0.1')}:{parts.get('port', 6379)}\"\n"
        f"    redis_db: {int(parts.get('db', 0))}\n"
        "    redis_mode: standalone\n"
        "    offline_store_uri: \"file://./local_features\"\n",
        encoding="utf-8",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--rows", type=int, default=50_000, help="rows of the spine scored on Spark")
    parser.add_argument("--chunk", type=int, default=10_000, help="batch_chunk_size: keys per MGET at most")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="fs_augment_spark_"))
    project = write_demo_data(folder)
    config_dir = str(project.config_dir)
    write_environment(project.config_dir, args.redis_url, args.chunk)
    print("keys written:", materialize(RECIPE, env=ENV, config_dir=config_dir))

    # the driver: fit and log (the augmenter is not pinned, so the model reads FS_AUGMENT_ENV where it runs)
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    views = pd.read_parquet(project.data_lake / "product_views.parquet")
    X, y = views[["user_id", "product_id"]], views["purchased"].astype(int)
    pipe = Pipeline([
        ("augment", FeatureStoreAugmenter(RECIPE, drop_entity_columns=True)),
        ("encode", ColumnTransformer([
            ("text", OneHotEncoder(handle_unknown="ignore", sparse_output=False), [
                "user_demographics__country_code", "user_demographics__gender",
                "product_details__category", "product_details__brand"]),
        ], remainder="passthrough")),
        ("model", HistGradientBoostingClassifier(max_iter=50, random_state=0)),
    ])
    with fs_augment.connect(ENV, config_dir) as adapter, fs_augment.use(adapter), mlflow.start_run():
        pipe.fit(X, y)
        info = fs_mlflow.log_model(pipe, "model", input_example=X.head(5))
        rng = np.random.default_rng(1)
        spine = X.iloc[rng.integers(0, len(X), args.rows)].reset_index(drop=True).assign(row=np.arange(args.rows))
        start = time.perf_counter()
        expected = fs_mlflow.load_model(info.model_uri, mode="batch").predict(spine)
        print(f"in process: {args.rows:,} rows in {time.perf_counter() - start:.2f} s")

    # the executors: this interpreter, and the environment given with spark.executorEnv.*
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (SparkSession.builder.master("local[2]").appName("fs_augment-spark-scoring")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.executorEnv.FS_AUGMENT_ENV", ENV)
             .config("spark.executorEnv.FS_AUGMENT_CONFIG_DIR", config_dir)
             .getOrCreate())
    try:
        data = spark.createDataFrame(spine)
        predict = mlflow.pyfunc.spark_udf(spark, info.model_uri, env_manager="local", result_type="long",
                                          model_config={"lookup_mode": "batch"})
        start = time.perf_counter()
        scored = data.withColumn("prediction", predict(F.struct("user_id", "product_id")))
        got = scored.select("row", "prediction").toPandas().sort_values("row")["prediction"].to_numpy()
        print(f"spark_udf, local[2]: {args.rows:,} rows in {time.perf_counter() - start:.2f} s "
              f"(including the workers' start)")
    finally:
        spark.stop()
    mismatches = int((got != np.asarray(expected)).sum())
    print(f"predictions that differ from the in-process ones: {mismatches} of {args.rows:,}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
