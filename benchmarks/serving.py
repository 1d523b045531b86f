"""A served MLflow model's request latency against the same pipeline with the features passed in.

Runs in a worker process of its own (``python -m benchmarks.workers serving``) so MLflow is never
imported into the process that times the lookups. It fits a small pipeline (augmenter → one-hot
encoding → decision tree), logs it with :func:`fs_augment.mlflow.log_model` to a temporary sqlite
tracking store, logs the same fitted pipeline *without* the augmenter with ``mlflow.sklearn``, serves
both with ``mlflow models serve --env-manager local``, and times 1-row requests, interleaved:

* ``served_augmented`` — entity keys in, the served model looks the 8 features up online;
* ``served_direct`` — the same fitted encoder and tree served, the 8 features in the request;
* ``inprocess_direct`` — that pipeline's ``predict`` in process on the pre-augmented row;
* ``inprocess_pyfunc`` — the logged model loaded with :func:`fs_augment.mlflow.load_model`, in process.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.stats import latency_summary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """``mlflow models serve`` of one model, in a process group of its own (stopped by its id)."""

    def __init__(self, model_uri: str, env: dict[str, str], log: Path, workers: int = 1) -> None:
        self.port = _free_port()
        mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        self.proc = subprocess.Popen(
            [mlflow_bin, "models", "serve", "-m", model_uri, "--env-manager", "local", "-h", "127.0.0.1",
             "-p", str(self.port), "-w", str(workers)],
            env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self.log = log
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited:\n{log.read_text()[-3000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/ping")
                if connection.getresponse().status == 200:
                    connection.close()
                    break
            except OSError:
                time.sleep(0.3)
        else:
            self.stop()
            raise RuntimeError(f"mlflow models serve did not answer:\n{log.read_text()[-3000:]}")
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def invoke(self, body: bytes) -> Any:
        try:
            self.connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
            response = self.connection.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # the server closes a keep-alive connection left idle for a few seconds: open a new one
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
            response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:2000]!r}")
        return json.loads(data)["predictions"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(15)


def _split(frame: Any) -> bytes:
    data = frame.astype(object).where(frame.notna(), None).values.tolist()
    return json.dumps({"dataframe_split": {"columns": [str(c) for c in frame.columns], "data": data}}).encode()


def setup(args: dict[str, Any]) -> None:
    """The worker's process environment: a sqlite tracking store in ``work``, the benchmark's store."""
    work = Path(args["work"])
    work.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    os.environ["FS_AUGMENT_ENV"] = args["env"]
    os.environ["FS_AUGMENT_CONFIG_DIR"] = args["config_dir"]


def fit_and_log(sizes: Any, model: Any, *, dense: bool = False) -> tuple[Any, Any, Any, Any, Any]:
    """Fit augmenter → one-hot encoding → ``model``; log it, and the same fitted steps without the augmenter.

    ``dense``: the encoding hands ``model`` a dense array (models that take no sparse input).

    Returns the pipeline, the pipeline without its augmenter, both models' infos and the training spine.
    """
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    import fs_augment.mlflow as fs_mlflow
    from benchmarks.data import RECIPE, spine
    from fs_augment import FeatureStoreAugmenter

    mlflow.set_experiment("fs_augment-benchmark")
    train = spine(sizes, min(3000, sizes.users), seed=31)
    augmented = FeatureStoreAugmenter(RECIPE, mode="batch", drop_entity_columns=True).fit_transform(train)
    y = (augmented["user_purchase_summary__ltv"] > augmented["user_purchase_summary__ltv"].median()).to_numpy()
    categorical = ["user_demographics__country_code", "user_demographics__gender", "product_details__category",
                   "product_details__brand"]
    numeric = ["user_demographics__age", "user_purchase_summary__ltv", "user_purchase_summary__total_purchase_count",
               "product_details__price"]
    pipe = Pipeline([
        ("augment", FeatureStoreAugmenter(RECIPE, drop_entity_columns=True)),
        ("encode", ColumnTransformer([("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
                                      ("numbers", "passthrough", numeric)],
                                     sparse_threshold=0.0 if dense else 0.3)),
        ("model", model),
    ]).fit(train, y)
    direct = Pipeline(pipe.steps[1:])
    with mlflow.start_run():
        info = fs_mlflow.log_model(pipe, "augmented", input_example=train.head(3))
        direct_info = mlflow.sklearn.log_model(direct, name="direct", input_example=augmented.head(3),
                                               serialization_format="cloudpickle")
    return pipe, direct, info, direct_info, train


def serving(args: dict[str, Any]) -> dict[str, Any]:
    setup(args)
    work = Path(args["work"])

    import numpy as np
    from sklearn.tree import DecisionTreeClassifier

    import fs_augment.mlflow as fs_mlflow
    from benchmarks.data import SIZES, spine

    sizes = SIZES[args["size"]]
    requests = int(args["requests"])
    warmup = max(10, requests // 10)
    pipe, direct, info, direct_info, _ = fit_and_log(sizes, DecisionTreeClassifier(max_depth=8, random_state=0))

    rng = np.random.default_rng(41)
    rows = spine(sizes, requests + warmup, seed=int(rng.integers(1 << 30)))
    features = pipe.named_steps["augment"].set_params(mode="batch").transform(rows)
    pipe.named_steps["augment"].set_params(mode="auto")
    spine_rows = [rows.iloc[[i]].reset_index(drop=True) for i in range(len(rows))]
    feature_rows = [features.iloc[[i]].reset_index(drop=True) for i in range(len(rows))]
    spine_bodies = [_split(r) for r in spine_rows]
    feature_bodies = [_split(r) for r in feature_rows]
    expected = pipe.predict(rows)
    loaded = fs_mlflow.load_model(info.model_uri)

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    servers: list[_Server] = []
    try:
        servers.append(_Server(info.model_uri, env, work / "serve_augmented.log"))
        servers.append(_Server(direct_info.model_uri, env, work / "serve_direct.log"))
        augmented_server, direct_server = servers
        served = augmented_server.invoke(spine_bodies[0])
        if served != expected[:1].tolist():
            raise RuntimeError(f"the served model answered {served}, in process {expected[:1].tolist()}")
        variants = {
            "served_augmented": lambda i: augmented_server.invoke(spine_bodies[i]),
            "served_direct": lambda i: direct_server.invoke(feature_bodies[i]),
            "inprocess_direct": lambda i: direct.predict(feature_rows[i]),
            "inprocess_pyfunc": lambda i: loaded.predict(spine_rows[i]),
        }
        names = list(variants)
        samples: dict[str, list[int]] = {name: [] for name in names}
        clock = time.perf_counter_ns
        for i in range(requests + warmup):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                start = clock()
                variants[name](i)
                elapsed = clock() - start
                if i >= warmup:
                    samples[name].append(elapsed)
        mismatches = sum(augmented_server.invoke(spine_bodies[i]) != direct_server.invoke(feature_bodies[i])
                         for i in range(min(50, len(rows))))
    finally:
        for server in servers:
            server.stop()
    summary = {name: latency_summary(values) for name, values in samples.items()}
    return {"requests": requests, **summary, "prediction_mismatches": int(mismatches)}
