"""MLflow end to end: log the fitted pipeline, serve it with `mlflow models serve`, request it over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

import fs_augment
import fs_augment.mlflow as fs_mlflow
from fs_augment import FeatureStoreAugmenter
from fs_augment._compat import TEXT_DTYPE_NAME
from fs_augment._wheel import build_wheel, wheel_name
from fs_augment.connections import close_all
from fs_augment.keys import encode_value, feature_key
from tests.support.redis_servers import free_port
from tests.support.stores import redis_host_and_db

pytestmark = pytest.mark.mlflow

RECIPE = {"augmenter": {"features": [
    {"feature_namespace": "user_demographics", "features": ["age", "country_code"]},
    {"feature_namespace": "product_details", "features": ["price"]},
]}}
PASSWORD = "pw-Never-In-Artifacts-42"


def put_features(client, ages: dict, prices: dict | None = None) -> None:
    """Ages and countries of users, prices of products, keyed by the ids' text (ints in decimal)."""
    pipe = client.pipeline(transaction=False)
    for i, (user, age) in enumerate(ages.items()):
        pipe.set(feature_key("user_demographics", "age", str(user)), encode_value(age))
        pipe.set(feature_key("user_demographics", "country_code", str(user)), encode_value(["KR", "US"][i % 2]))
    for product, price in (prices or {"p1": 10.0, "p2": 25.5}).items():
        pipe.set(feature_key("product_details", "price", str(product)), encode_value(price))
    pipe.execute()


@pytest.fixture
def project(redis_client, second_redis_client, make_config_dir, monkeypatch, tmp_path):
    """Two environments (two Redis databases), a sqlite tracking store, features in both."""
    host, db1 = redis_host_and_db(redis_client)
    _, db2 = redis_host_and_db(second_redis_client)
    config_dir = make_config_dir(
        base={"feature_store": {"provider": "redis", "connection_timeout": 2000, "retry_attempts": 1,
                                "connection_info": {"redis_host": host, "redis_mode": "standalone",
                                                    "redis_password": "${TEST_REDIS_PASSWORD:-}"}}},
        train={"feature_store": {"connection_info": {"redis_db": db1}}},
        other={"feature_store": {"connection_info": {"redis_db": db2}}},
        prod={"feature_store": {"connection_info": {"redis_host": "prod-redis.internal.example:6379",
                                                     "redis_password": "${PROD_PW}"}}},
    )
    ages = {f"u{i}": 20 + 3 * i for i in range(20)}
    put_features(redis_client, ages)
    put_features(second_redis_client, {u: 99 - a for u, a in ages.items()})
    monkeypatch.setenv("PROD_PW", PASSWORD)
    monkeypatch.setenv("FS_AUGMENT_ENV", "train")
    monkeypatch.setenv("FS_AUGMENT_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    close_all()
    yield {"config_dir": config_dir, "ages": ages, "redis": redis_client, "tmp": tmp_path}
    close_all()


def fitted_pipeline(ages: dict, products: list | None = None) -> tuple[Pipeline, pd.DataFrame]:
    users = list(ages) * 3
    X = pd.DataFrame({"user_id": users, "product_id": (products or ["p1", "p2", "p3"]) * 20})
    y = np.array([int(ages[u] > 45) for u in users])
    pipe = Pipeline([
        ("augment", FeatureStoreAugmenter(RECIPE, drop_entity_columns=True)),
        ("encode", ColumnTransformer([
            ("categories", OneHotEncoder(handle_unknown="ignore"), ["user_demographics__country_code"]),
            ("numbers", "passthrough", ["user_demographics__age", "product_details__price"]),
        ])),
        ("model", DecisionTreeClassifier(random_state=0)),
    ])
    return pipe.fit(X, y), X


def columns_of(schema) -> list[tuple[str, str, bool]]:
    """A signature's input columns as (name, type, required)."""
    return [(c["name"], c["type"], c["required"]) for c in (spec.to_dict() for spec in schema.inputs)]


class Server:
    def __init__(self, model_uri: str, env: dict[str, str], log: Path, workers: int = 1) -> None:
        self.port = free_port()
        mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        self.log = log
        with log.open("wb") as out:  # the server writes to its own copy of the file descriptor
            self.proc = subprocess.Popen(
                [mlflow_bin, "models", "serve", "-m", model_uri, "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", str(self.port), "-w", str(workers)],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=1).read()
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow models serve did not answer:\n{log.read_text()[-3000:]}")

    def invoke(self, payload: dict | pd.DataFrame) -> list:
        """POST a JSON payload, or a frame as ``text/csv``; the predictions."""
        if isinstance(payload, pd.DataFrame):
            body, content_type = payload.to_csv(index=False).encode(), "text/csv"
        else:
            body, content_type = json.dumps(payload).encode(), "application/json"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/invocations", data=body, headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())["predictions"]
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{exc.code}: {exc.read().decode()[:2000]}") from exc

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def test_logged_model_serves_online_lookups_with_batch_parity(project, tmp_path):
    import mlflow

    pipe, X = fitted_pipeline(project["ages"])
    with mlflow.start_run():
        info = fs_mlflow.log_model(pipe, "model", input_example=X.head(3))
    new = pd.DataFrame({"user_id": ["u1", "u9", "u15", "nobody", "u3"],
                        "product_id": ["p1", "p2", "p3", "p1", None]})
    expected_classes = pipe.predict(new)
    expected_proba = pipe.predict_proba(new)

    # in process, loaded through pyfunc: online lookups
    loaded = fs_mlflow.load_model(info.model_uri)
    assert loaded.unwrap_python_model().lookup_mode == "online"
    np.testing.assert_array_equal(np.asarray(loaded.predict(new)), expected_classes)
    batch = fs_mlflow.load_model(info.model_uri, mode="batch")
    np.testing.assert_array_equal(np.asarray(batch.predict(new)), expected_classes)

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = Server(info.model_uri, env, tmp_path / "serve.log")
    try:
        records = json.loads(new.to_json(orient="records"))
        assert server.invoke({"dataframe_records": records}) == expected_classes.tolist()
        split = {"columns": list(new.columns), "data": new.astype(object).where(new.notna(), None).values.tolist()}
        assert server.invoke({"dataframe_split": split}) == expected_classes.tolist()
        assert server.invoke(new) == expected_classes.tolist()  # text/csv: the signature types the ids
        proba = server.invoke({"dataframe_split": split, "params": {"predict_method": "predict_proba"}})
        np.testing.assert_allclose(np.asarray(proba), expected_proba, rtol=0, atol=1e-12)
        # int entity ids are normalised by the contract's rule
        project["redis"].set(feature_key("user_demographics", "age", "7"), encode_value(90))
        assert server.invoke({"dataframe_records": [{"user_id": 7, "product_id": "p1"}]}) == [1]
        # online, not baked in: change a feature in Redis, the served prediction follows
        assert server.invoke({"dataframe_records": [{"user_id": "u1", "product_id": "p1"}]}) == [0]
        project["redis"].set(feature_key("user_demographics", "age", "u1"), encode_value(80))
        assert server.invoke({"dataframe_records": [{"user_id": "u1", "product_id": "p1"}]}) == [1]
    finally:
        server.stop()

    # served where FS_AUGMENT_ENV points: the second environment's features (ages reversed)
    server = Server(info.model_uri, {**env, "FS_AUGMENT_ENV": "other"}, tmp_path / "serve2.log")
    try:
        assert server.invoke({"dataframe_records": [{"user_id": "u1", "product_id": "p1"}]}) == [1]
        assert server.invoke({"dataframe_records": [{"user_id": "u19", "product_id": "p1"}]}) == [0]
    finally:
        server.stop()


_LOAD_AND_PREDICT = """
import json, sys
import mlflow.pyfunc, pandas as pd
import fs_augment
model = mlflow.pyfunc.load_model(sys.argv[1])
frame = pd.DataFrame(json.loads(sys.argv[2]))
print(json.dumps({"fs_augment": fs_augment.__file__,
                  "predict": model.predict(frame).tolist(),
                  "predict_proba": model.predict(frame, params={"predict_method": "predict_proba"}).tolist()}))
"""


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_logged_model_rebuilds_in_a_fresh_virtual_environment(project, tmp_path):
    """Only the model's own files: a new venv, pip install -r the model's requirements.txt, pyfunc loads it."""
    import mlflow

    pipe, X = fitted_pipeline(project["ages"])
    with mlflow.start_run():
        info = fs_mlflow.log_model(pipe, "model", input_example=X.head(3))
    model_dir = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "model")))
    requirements = (model_dir / "requirements.txt").read_text().splitlines()
    assert requirements[:2] == ["--find-links artifacts/wheels", f"fs_augment=={fs_augment.__version__}"]
    assert (model_dir / "artifacts" / "wheels" / wheel_name(fs_augment.__version__)).is_file()

    new = pd.DataFrame({"user_id": ["u1", "u9", "u15", "nobody", "u3"],
                        "product_id": ["p1", "p2", "p3", "p1", None]})
    expected = fs_mlflow.load_model(info.model_uri).predict(new)
    np.testing.assert_array_equal(np.asarray(expected), pipe.predict(new))

    # nothing of this process's: no PYTHONPATH to the source tree, a venv without site packages, and pip
    # run outside the model's folder (as in the image build-docker makes)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], env=env, timeout=120)
    python = str(venv / "bin" / "python")
    # --no-compile: the same files, bytecode left to the first import (halves the install on 2 cores)
    _run([python, "-m", "pip", "install", "-q", "--no-compile", "-r", str(model_dir / "requirements.txt")],
         cwd=tmp_path, env=env, timeout=240)
    done = _run([python, "-c", _LOAD_AND_PREDICT, str(model_dir), new.to_json(orient="records")],
                cwd=tmp_path, env=env, timeout=120)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["fs_augment"]).is_relative_to(venv)
    assert result["predict"] == np.asarray(expected).tolist()
    np.testing.assert_allclose(np.asarray(result["predict_proba"]), pipe.predict_proba(new), rtol=0, atol=1e-12)


def test_pip_takes_the_shipped_wheel_over_an_index_file_of_the_same_version(project, tmp_path):
    """An index that has fs_augment at this version (other code) does not win over the model's wheel."""
    import mlflow

    pipe, X = fitted_pipeline(project["ages"])
    with mlflow.start_run():
        info = fs_mlflow.log_model(pipe, "model", input_example=X.head(2))
    model_dir = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "model")))
    other = tmp_path / "other" / "fs_augment"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("__version__ = 'someone else'\n")
    index = tmp_path / "index" / "fs-augment"
    index.mkdir(parents=True)
    published = build_wheel(index, package_dir=other)
    published = published.rename(index / published.name.replace("-1-", "-"))  # as an index would hold it
    (index / "index.html").write_text(f'<a href="{published.name}">{published.name}</a>')

    report = tmp_path / "report.json"
    _run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--no-deps", "--ignore-installed",
          "--report", str(report), "--extra-index-url", (tmp_path / "index").as_uri(),
          "-r", str(model_dir / "requirements.txt")], cwd=tmp_path, timeout=120)
    installs = json.loads(report.read_text())["install"]
    chosen = {item["metadata"]["name"]: item["download_info"]["url"] for item in installs}
    assert chosen["fs_augment"] == (model_dir / "artifacts" / "wheels" / wheel_name(fs_augment.__version__)).as_uri()


def test_artifacts_carry_recipe_manifest_stats_and_no_secrets(project):
    import mlflow

    pipe, X = fitted_pipeline(project["ages"])
    with mlflow.start_run() as run:
        info = fs_mlflow.log_model(pipe, "model", input_example=X.head(2))
    folder = Path(mlflow.artifacts.download_artifacts(info.model_uri))
    files = [p for p in folder.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"recipe.yaml", "feature_manifest.json", "feature_stats.json", "pipeline.pkl", "MLmodel"} <= names
    for path in files:
        blob = path.read_bytes()
        assert PASSWORD.encode() not in blob, path
        assert b"prod-redis.internal.example" not in blob, path
        assert b"127.0.0.1" not in blob, path
    manifest = json.loads(next(p for p in files if p.name == "feature_manifest.json").read_text())
    augmenter = manifest["augmenters"][0]
    assert augmenter["fitted_env"] == "train"
    assert augmenter["entity_columns"] == ["user_id", "product_id"]
    features = augmenter["namespaces"][0]["features"]
    assert [f["output_name"] for f in features] == ["user_demographics__age", "user_demographics__country_code"]
    assert [f["dtype"] for f in features] == ["float64", TEXT_DTYPE_NAME]
    stats = json.loads(next(p for p in files if p.name == "feature_stats.json").read_text())
    age = next(iter(stats.values()))["user_demographics__age"]
    assert age["count"] == 60 and age["min"] == 20 and age["max"] == 77
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert "user_demographics:age" in tags["fs_augment.features"]
    assert tags["fs_augment.trained_envs"] == "train"
    signature = mlflow.models.get_model_info(info.model_uri).signature
    assert signature.inputs.input_names() == ["user_id", "product_id"]
    assert columns_of(signature.inputs) == [("user_id", "string", True), ("product_id", "string", True)]


def test_served_model_with_integer_ids_takes_csv_and_json(project, tmp_path):
    """Integer ids at fit are `long` in the signature: CSV requests parse, JSON ints and digit texts too."""
    import mlflow

    ages = {100 + i: 20 + 3 * i for i in range(20)}
    put_features(project["redis"], ages, {7: 10.0, 8: 25.5})
    pipe, X = fitted_pipeline(ages, products=[7, 8, 9])
    assert X["user_id"].dtype == np.int64 and X["product_id"].dtype == np.int64
    with mlflow.start_run():
        info = fs_mlflow.log_model(pipe, "model", input_example=X.head(3))
    signature = mlflow.models.get_model_info(info.model_uri).signature
    assert columns_of(signature.inputs) == [("user_id", "long", True), ("product_id", "long", True)]

    new = pd.DataFrame({"user_id": [101, 109, 115, 999, 103], "product_id": [7, 8, 9, 7, 12]})
    expected = pipe.predict(new).tolist()
    assert expected[:3] == [0, 1, 1]  # both classes, and features found: not a constant answer
    assert np.asarray(fs_mlflow.load_model(info.model_uri).predict(new)).tolist() == expected

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = Server(info.model_uri, env, tmp_path / "serve.log")
    try:
        assert server.invoke(new) == expected
        assert server.invoke({"dataframe_records": json.loads(new.to_json(orient="records"))}) == expected
        texts = new.astype(str).to_dict(orient="split")
        assert server.invoke({"dataframe_split": {"columns": texts["columns"], "data": texts["data"]}}) == expected
    finally:
        server.stop()


def test_signature_leaves_ambiguous_columns_untyped(project):
    """Mixed ids, integers with missing values, and the timestamp column stay `any`."""
    recipe = {"augmenter": {**RECIPE["augmenter"], "timestamp_column": "ts"}}
    X = pd.DataFrame({"user_id": pd.Series(["u1", 7, "u2"], dtype=object),
                      "product_id": pd.array([1, None, 2], dtype="Int64"),
                      "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
                      "score": [0.5, 1.5, None], "flag": [True, False, True]})
    augmenter = FeatureStoreAugmenter(recipe, mode="online").fit(X)  # online: no offline store needed
    assert augmenter.input_kinds_ == {"user_id": "object", "product_id": "object", "ts": "datetime",
                                      "score": "float", "flag": "bool"}
    schema = fs_mlflow._input_schema([augmenter])
    assert columns_of(schema) == [("user_id", "any", True), ("product_id", "any", True), ("ts", "any", False),
                                  ("score", "double", True), ("flag", "boolean", True)]
    # two augmenters that saw a column differently: untyped
    other = FeatureStoreAugmenter(RECIPE).fit(X.assign(user_id=["u1", "u7", "u2"]).drop(columns="ts"))
    assert columns_of(fs_mlflow._input_schema([augmenter, other]))[0] == ("user_id", "any", True)
    assert columns_of(fs_mlflow._input_schema([other]))[0] == ("user_id", "string", True)


def test_log_model_refuses_unfitted_or_augmenter_free_pipelines(project):
    from fs_augment.errors import FsAugmentError

    with pytest.raises(FsAugmentError, match="not fitted"):
        fs_mlflow.log_model(Pipeline([("augment", FeatureStoreAugmenter(RECIPE))]), "model")
    with pytest.raises(FsAugmentError, match="no FeatureStoreAugmenter"):
        fs_mlflow.log_model(Pipeline([("model", DecisionTreeClassifier())]), "model")


def test_bad_parameters_are_value_errors_naming_parameter_and_value(project):
    from fs_augment.errors import ParameterError

    unfitted = Pipeline([("augment", FeatureStoreAugmenter(RECIPE))])
    pipe, _ = fitted_pipeline(project["ages"])
    calls = {
        "pipeline": lambda: fs_mlflow.log_model(unfitted, "model"),
        "predict_method": lambda: fs_mlflow.log_model(pipe, "model", predict_method="decision_function"),
        "mode": lambda: fs_mlflow.load_model(str(project["tmp"]), mode="offline"),
        "mode ": lambda: fs_mlflow.set_lookup_mode(pipe, "offline"),
    }
    for parameter, call in calls.items():
        with pytest.raises(ParameterError, match=parameter.strip()) as info:
            call()
        assert isinstance(info.value, ValueError)
    assert pipe.named_steps["augment"].mode == "auto"  # a refused mode changes nothing


def test_log_model_leaves_the_pipeline_as_it_was_and_finds_fitted_augmenters(project):
    import mlflow
    from sklearn.model_selection import GridSearchCV

    pipe, X = fitted_pipeline(project["ages"])
    pipe.set_params(augment__mode="batch")
    with mlflow.start_run():
        fs_mlflow.log_model(pipe, "model", input_example=X.head(2))
    assert pipe.named_steps["augment"].mode == "batch"

    y = np.array([int(project["ages"][u] > 45) for u in X["user_id"]])
    search = GridSearchCV(fitted_pipeline(project["ages"])[0], {"model__max_depth": [2, 3]}, cv=2).fit(X, y)
    found = fs_mlflow.find_augmenters(search)
    assert found and all(hasattr(a, "feature_columns_") for a in found)
    assert found[0] is search.best_estimator_.named_steps["augment"]
    with mlflow.start_run():
        info = fs_mlflow.log_model(search, "search", input_example=X.head(2))
    loaded = fs_mlflow.load_model(info.model_uri)
    assert fs_mlflow.find_augmenters(loaded.unwrap_python_model().pipeline)[0].mode == "online"
    np.testing.assert_array_equal(np.asarray(loaded.predict(X.head(5))), search.predict(X.head(5)))


def test_log_model_warns_when_an_augmenter_is_pinned_to_an_environment(project):
    import mlflow

    pipe, X = fitted_pipeline(project["ages"])
    pipe.set_params(augment__env="train")
    with mlflow.start_run(), pytest.warns(UserWarning, match="pinned to env='train'"):
        fs_mlflow.log_model(pipe, "model", input_example=X.head(2))


def readme_curl(marker: str) -> list[str]:
    """The README's curl command (backslash continuations joined) whose text holds ``marker``, as argv."""
    import shlex

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    commands = text.replace("\\\n", " ").splitlines()
    found = [line.strip() for line in commands if line.strip().startswith("curl ") and marker in line]
    assert len(found) == 1, f"README.md should have one curl command with {marker!r}, found {found}"
    return shlex.split(found[0])


def serving_worker_pids(server: Server, redis_port: int) -> set[int]:
    """The server's worker processes that hold a connection to the Redis server."""
    import psutil

    pids = set()
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            connections = child.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        if any(c.raddr and c.raddr.port == redis_port and c.status == psutil.CONN_ESTABLISHED for c in connections):
            pids.add(child.pid)
    return pids


@pytest.mark.slow
def test_two_workers_answer_concurrent_clients_as_in_process(project, tmp_path):
    """``--workers 2``: 8 clients at once, every answer equals the in-process one; both workers looked up."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    import mlflow

    pipe, X = fitted_pipeline(project["ages"])
    with mlflow.start_run():
        info = fs_mlflow.log_model(pipe, "model", input_example=X.head(3))
    pool = pd.DataFrame({"user_id": [f"u{i}" for i in range(20)] + ["nobody", "u4"],
                         "product_id": ["p1", "p2", "p3"] * 7 + [None]})
    rng = random.Random(7)
    requests = []
    for _ in range(8 * 12):
        rows = pool.iloc[rng.sample(range(len(pool)), rng.randint(1, 5))].reset_index(drop=True)
        method = rng.choice(["predict", "predict_proba"])
        expected = getattr(pipe, method)(rows)
        split = {"columns": list(rows.columns), "data": rows.astype(object).where(rows.notna(), None).values.tolist()}
        requests.append(({"dataframe_split": split, "params": {"predict_method": method}}, expected))

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = Server(info.model_uri, env, tmp_path / "serve.log", workers=2)
    try:
        def client(c: int) -> int:
            for payload, expected in requests[c::8]:
                np.testing.assert_allclose(np.asarray(server.invoke(payload), dtype=float), expected,
                                           rtol=0, atol=1e-12)
            return len(requests[c::8])

        deadline = time.monotonic() + 120
        pids: set[int] = set()
        answered = 0
        with ThreadPoolExecutor(8) as clients:
            while len(pids) < 2 and time.monotonic() < deadline:  # uvicorn balances by accept(): repeat if needed
                answered += sum(clients.map(client, range(8)))
                pids = serving_worker_pids(server, project["redis"].connection_pool.connection_kwargs["port"])
        assert answered >= len(requests)
        assert len(pids) == 2, f"workers with a Redis connection: {pids}"

        # the README's probability request, as written there (its ids are unknown here: defaults)
        argv = readme_curl('"predict_method": "predict_proba"')
        argv = [a.replace("localhost:5001", f"127.0.0.1:{server.port}") for a in argv]
        if shutil.which(argv[0]):
            body = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
        else:
            data = json.loads(argv[argv.index("-d") + 1])
            body = json.dumps({"predictions": server.invoke(data)})
        sent = json.loads(argv[argv.index("-d") + 1])["dataframe_split"]
        expected = pipe.predict_proba(pd.DataFrame(sent["data"], columns=sent["columns"]))
        np.testing.assert_allclose(np.asarray(json.loads(body)["predictions"]), expected, rtol=0, atol=1e-12)
    finally:
        server.stop()
