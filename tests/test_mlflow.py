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

import fs_augment.mlflow as fs_mlflow
from fs_augment import FeatureStoreAugmenter
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


def put_features(client, ages: dict[str, int]) -> None:
    pipe = client.pipeline(transaction=False)
    for i, (user, age) in enumerate(ages.items()):
        pipe.set(feature_key("user_demographics", "age", user), encode_value(age))
        pipe.set(feature_key("user_demographics", "country_code", user), encode_value(["KR", "US"][i % 2]))
    for product, price in {"p1": 10.0, "p2": 25.5}.items():
        pipe.set(feature_key("product_details", "price", product), encode_value(price))
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


def fitted_pipeline(ages: dict[str, int]) -> tuple[Pipeline, pd.DataFrame]:
    users = list(ages) * 3
    X = pd.DataFrame({"user_id": users, "product_id": ["p1", "p2", "p3"] * 20})
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


class Server:
    def __init__(self, model_uri: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
        self.log = log
        with log.open("wb") as out:  # the server writes to its own copy of the file descriptor
            self.proc = subprocess.Popen(
                [mlflow_bin, "models", "serve", "-m", model_uri, "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", str(self.port), "-w", "1"],
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

    def invoke(self, payload: dict) -> list:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/invocations", data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"})
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
    assert [f["dtype"] for f in features] == ["float64", "str"]
    stats = json.loads(next(p for p in files if p.name == "feature_stats.json").read_text())
    age = next(iter(stats.values()))["user_demographics__age"]
    assert age["count"] == 60 and age["min"] == 20 and age["max"] == 77
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert "user_demographics:age" in tags["fs_augment.features"]
    assert tags["fs_augment.trained_envs"] == "train"
    signature = mlflow.models.get_model_info(info.model_uri).signature
    assert signature.inputs.input_names() == ["user_id", "product_id"]


def test_log_model_refuses_unfitted_or_augmenter_free_pipelines(project):
    from fs_augment.errors import FsAugmentError

    with pytest.raises(FsAugmentError, match="not fitted"):
        fs_mlflow.log_model(Pipeline([("augment", FeatureStoreAugmenter(RECIPE))]), "model")
    with pytest.raises(FsAugmentError, match="no FeatureStoreAugmenter"):
        fs_mlflow.log_model(Pipeline([("model", DecisionTreeClassifier())]), "model")


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
