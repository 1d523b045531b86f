"""Secrets kept (issue 9, CONTRACT 3): passwords come only from ``${VAR}`` interpolation and show nowhere.

Against private redis-server processes (password, ACL users, TLS from ``trustme``-made certificates).
Already covered in tests/stores/test_redis.py and not repeated here: a fixed password from the
environment, a wrong or missing password naming the host, an ACL user in the URL and in config
keys, NOPERM as a StoreError, TLS with and without the CA file, a CA file with a ``redis://`` URL.
tests/test_config.py covers the config layer alone (reprs, errors, pickling of ``Secret``).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import fs_augment
from fs_augment import FeatureStoreAugmenter
from fs_augment.config import load_config
from fs_augment.connections import close_all, get_adapter
from fs_augment.errors import ConfigError, RecipeError, StoreUnavailableError
from fs_augment.writer import write_namespace
from tests.support.redis_servers import RedisServer, TlsFiles, make_tls_files
from tests.support.stores import store_config
from tests.support.strategies import passwords

PACKAGE = Path(fs_augment.__file__).parent
RECIPE = {"augmenter": {"features": [{"feature_namespace": "user_demographics", "features": ["age", "country_code"]}]}}
SPECS = RECIPE["augmenter"]["features"]
ADMIN, ADMIN_PASSWORD = "admin", "admin-pw-for-the-test-only"
READER = "reader"
VARIABLE = "FS_TEST_REDIS_PASSWORD"
TRICKY = ['p@ss:w"rd% 1', "it's a secret", "%40%3A@:/?#[]!", "${NOT_A_VARIABLE}", "a: b # not a comment",
          "  spaces around  ", "ünïcødé-pässwörd", "0x10-true-1.5e3"]


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or unset, with None) process environment variables for a block."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(autouse=True)
def _fresh_adapters() -> Iterator[None]:
    close_all()
    yield
    close_all()


def seed(client: Any) -> None:
    write_namespace(pd.DataFrame({"user_id": ["u1", "u2"], "age": [34, 51], "country_code": ["KR", "US"]}),
                    "user_demographics", client)


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private server administered by an ACL user; tests set the passwords of ``default`` and ``reader``."""
    with RedisServer.start(tmp_path_factory.mktemp("acl"), acl_users=[(ADMIN, ADMIN_PASSWORD)]) as started:
        yield started


@pytest.fixture
def admin(acl_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=acl_server.port, username=ADMIN, password=ADMIN_PASSWORD)
    client.flushdb()
    seed(client)
    yield client
    client.execute_command("ACL", "SETUSER", "default", "on", "nopass")
    client.flushdb()
    client.close()


def set_password(admin: redis.Redis, password: str) -> None:
    """Require ``password`` from the default user and from ``reader`` (binary-safe, one argument)."""
    admin.execute_command("ACL", "SETUSER", "default", "on", "resetpass", f">{password}")
    admin.execute_command("ACL", "SETUSER", READER, "on", "resetpass", f">{password}", "~*", "+@read", "+info")


def everything_said(exc: BaseException) -> str:
    """The message of an error and of every error in its chain, as a traceback would show them."""
    texts, seen = [], exc
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


# --- generated passwords, end to end --------------------------------------------------------------------

# A password that is also ordinary text of a repr or message (e.g. "on_store", in "on_store_error")
# cannot be told apart from it; a real one is not: generated ones contain a character no repr has.
strong_passwords = st.one_of(
    st.sampled_from(TRICKY),
    st.tuples(passwords().filter(lambda p: len(p) >= 8 and len(set(p)) >= 5),
              st.sampled_from("§¤¶")).map(lambda pair: pair[0] + pair[1]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=strong_passwords, as_user=st.booleans())
@example(password='p@ss:w"rd% 1', as_user=False)
@example(password="%40%3A@:/?#[]!", as_user=True)
def test_generated_passwords_connect_and_never_show(
        password: str, as_user: bool, acl_server: RedisServer, admin: redis.Redis,
        make_config_dir: Callable[..., Path], caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    caplog.set_level("DEBUG")
    set_password(admin, password)
    info = {"redis_host": f"127.0.0.1:{acl_server.port}", "redis_mode": "auto", "redis_password": f"${{{VARIABLE}}}"}
    if as_user:
        info["redis_username"] = READER
    config_dir = make_config_dir(test=store_config("redis", enable_debug_logging=True, enable_monitoring=True,
                                                   connection_info=info))
    wrong = password + "-but-wrong"
    texts: list[str] = []
    with environment(**{VARIABLE: password}):
        config = load_config("test", config_dir)
        assert config.feature_store.connection_info.redis_password.get() == password  # kept exactly
        adapter = get_adapter("test", str(config_dir))
        assert adapter.online_get_features({"user_id": "u1"}, SPECS) == {
            "user_demographics:age": 34, "user_demographics:country_code": "KR"}
        aug = FeatureStoreAugmenter(RECIPE, env="test", config_dir=str(config_dir), mode="batch")
        out = aug.fit_transform(pd.DataFrame({"user_id": ["u2", "u1"]}))
        assert out["user_demographics__age"].tolist() == [51, 34]
        blob = pickle.dumps(aug)
        texts += [repr(adapter), repr(adapter.online), adapter.online.describe(), repr(config), str(config),
                  repr(config.feature_store), str(config.to_dict()), repr(aug), str(aug.get_params()),
                  json.dumps(adapter.metrics.snapshot()), str(vars(aug))]
        with pytest.raises(TypeError) as refused:
            pickle.dumps(adapter)
        texts.append(everything_said(refused.value))
    with environment(**{VARIABLE: wrong}):
        with fs_augment.connect("test", config_dir) as bad, pytest.raises(StoreUnavailableError) as caught:
            bad.online_get_features({"user_id": "u1"}, SPECS)
        texts.append(everything_said(caught.value))
        assert "authentication failed" in str(caught.value) and f"127.0.0.1:{acl_server.port}" in str(caught.value)
    close_all()
    texts += [record.getMessage() for record in caplog.records] + [caplog.text]
    assert any("lookup:" in record.getMessage() for record in caplog.records)  # debug logging was on
    for text in texts:
        assert password not in text and wrong not in text
    assert password.encode() not in blob and password.encode("unicode_escape") not in blob


# --- TLS with a password and an ACL user --------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[RedisServer]:
    with RedisServer.start(tmp_path_factory.mktemp("tls-acl"), tls=tls_files,
                           acl_users=[(READER, "tls-reader-pw-never-shown")]) as started:
        seed(redis.Redis(**started.client_kwargs()))
        yield started


@pytest.mark.parametrize("host_form", ["rediss_url", "host_port"])
def test_tls_with_an_acl_user_and_an_interpolated_password(
        tls_server: RedisServer, tls_files: TlsFiles, make_config_dir: Callable[..., Path], host_form: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    monkeypatch.setenv(VARIABLE, "tls-reader-pw-never-shown")
    host = f"rediss://127.0.0.1:{tls_server.port}" if host_form == "rediss_url" else f"127.0.0.1:{tls_server.port}"
    config_dir = make_config_dir(test=store_config("redis", enable_debug_logging=True, connection_info={
        "redis_host": host, "redis_username": READER, "redis_password": f"${{{VARIABLE}}}",
        "redis_ssl_ca_certs": str(tls_files.ca_cert)}))
    with fs_augment.connect("test", config_dir) as adapter:
        assert adapter.online.options.uses_tls
        assert adapter.online_get_features({"user_id": "u2"}, SPECS) == {
            "user_demographics:age": 51, "user_demographics:country_code": "US"}
        shown = repr(adapter) + caplog.text
    assert "tls-reader-pw-never-shown" not in shown
    monkeypatch.setenv(VARIABLE, "not-the-tls-reader-pw")
    with fs_augment.connect("test", config_dir) as adapter, pytest.raises(StoreUnavailableError) as caught:
        adapter.online_get_features({"user_id": "u2"}, SPECS)
    assert "authentication failed" in str(caught.value) and "not-the-tls-reader-pw" not in everything_said(caught.value)


def test_tls_with_a_certificate_of_another_ca_is_refused(
        tls_server: RedisServer, make_config_dir: Callable[..., Path], tmp_path: Path) -> None:
    other_ca = make_tls_files(tmp_path).ca_cert
    config_dir = make_config_dir(test=store_config("redis", retry_attempts=0, connection_info={
        "redis_host": f"rediss://{READER}:tls-reader-pw-never-shown@127.0.0.1:{tls_server.port}",
        "redis_ssl_ca_certs": str(other_ca)}))
    with fs_augment.connect("test", config_dir) as adapter, pytest.raises(StoreUnavailableError) as caught:
        adapter.online_get_features({"user_id": "u2"}, SPECS)
    said = everything_said(caught.value)
    assert f"127.0.0.1:{tls_server.port}" in str(caught.value) and "certificate verify failed" in said
    assert "tls-reader-pw-never-shown" not in said


# --- an unset password variable ---------------------------------------------------------------------------------

@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A socket listening on a free port that nobody should connect to."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def assert_nobody_connected(sock: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        sock.accept()


def test_an_unset_password_variable_fails_fast_naming_it_without_connecting(
        listener: socket.socket, make_config_dir: Callable[..., Path]) -> None:
    host = f"127.0.0.1:{listener.getsockname()[1]}"
    config_dir = make_config_dir(
        base={"feature_store": {"provider": "redis", "connection_info": {"redis_host": host}}},
        test={"feature_store": {"connection_info": {"redis_password": "${FS_TEST_UNSET_PASSWORD}"}}},
    )
    pattern = (rf"{re.escape(str(config_dir / 'test.yaml'))}: feature_store\.connection_info\.redis_password needs "
               r"environment variable FS_TEST_UNSET_PASSWORD, which is not set")
    with environment(FS_TEST_UNSET_PASSWORD=None):
        for attempt in (lambda: fs_augment.connect("test", config_dir),
                        lambda: FeatureStoreAugmenter(RECIPE, env="test", config_dir=str(config_dir)).fit(
                            pd.DataFrame({"user_id": ["u1"]}))):
            start = time.monotonic()
            with pytest.raises(ConfigError, match=pattern):
                attempt()
            assert time.monotonic() - start < 1
    assert_nobody_connected(listener)


def test_a_model_served_where_the_variable_is_unset_names_it(
        acl_server: RedisServer, admin: redis.Redis, make_config_dir: Callable[..., Path]) -> None:
    set_password(admin, "served-model-pw-123")
    config_dir = make_config_dir(test=store_config("redis", connection_info={
        "redis_host": f"127.0.0.1:{acl_server.port}", "redis_password": f"${{{VARIABLE}}}"}))
    with environment(**{VARIABLE: "served-model-pw-123"}):
        blob = pickle.dumps(FeatureStoreAugmenter(RECIPE, env="test", config_dir=str(config_dir)).fit(
            pd.DataFrame({"user_id": ["u1"]})))
    close_all()
    with environment(**{VARIABLE: None}), pytest.raises(ConfigError, match=VARIABLE):
        pickle.loads(blob).transform(pd.DataFrame({"user_id": ["u2"]}))
    assert b"served-model-pw-123" not in blob


def test_shipped_configs_read_passwords_only_from_variables() -> None:
    import yaml

    for path in sorted((PACKAGE.parent / "config").glob("*.yaml")):
        info = (yaml.safe_load(path.read_text()) or {}).get("feature_store", {}).get("connection_info") or {}
        password = info.get("redis_password")
        assert password is None or re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", password), path
        assert "@" not in str(info.get("redis_host", "")), f"{path}: credentials in redis_host"


# --- YAML is only ever read safely ------------------------------------------------------------------------------

def test_the_package_uses_yaml_safe_load_only() -> None:
    unsafe = re.compile(r"yaml\.(load|unsafe_load|full_load|load_all|unsafe_load_all|full_load_all)\(|Loader\s*=|"
                        r"yaml\.(Unsafe|Full)?Loader\b")
    found = [f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if unsafe.search(line)]
    assert found == []
    # the scan saw the one YAML file reader (config and recipes both read through it)
    assert "yaml.safe_load(" in (PACKAGE / "config.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/name:os.system",
                                 "!!python/object/new:str"])
def test_python_tags_in_yaml_are_refused_not_run(make_config_dir: Callable[..., Path], tmp_path: Path,
                                                 tag: str) -> None:
    marker = tmp_path / "pwned"
    config_dir = make_config_dir(test={})
    (config_dir / "test.yaml").write_text(f"feature_store:\n  provider: {tag} ['touch {marker}']\n")
    with pytest.raises(ConfigError, match=r"test\.yaml: malformed YAML"):
        load_config("test", config_dir)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"augmenter:\n  features: {tag} ['touch {marker}']\n")
    with pytest.raises(RecipeError, match=r"recipe\.yaml: malformed YAML"):
        FeatureStoreAugmenter(str(recipe)).fit(pd.DataFrame({"user_id": ["u1"]}))
    assert not marker.exists()


# --- MLflow artifacts ---------------------------------------------------------------------------------------------

@pytest.mark.mlflow
@pytest.mark.timeout(180)
def test_mlflow_artifacts_and_tracking_store_hold_no_password(
        acl_server: RedisServer, admin: redis.Redis, make_config_dir: Callable[..., Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    import fs_augment.mlflow as fs_mlflow

    password = "mlflow-Pa55:w@rd never stored"
    set_password(admin, password)
    monkeypatch.setenv(VARIABLE, password)
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact folder lands in here
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    config_dir = make_config_dir(test=store_config("redis", enable_debug_logging=True, connection_info={
        "redis_host": f"127.0.0.1:{acl_server.port}", "redis_username": READER,
        "redis_password": f"${{{VARIABLE}}}"}))
    X = pd.DataFrame({"user_id": ["u1", "u2"] * 5})
    pipe = Pipeline([
        ("augment", FeatureStoreAugmenter(RECIPE, env="test", config_dir=str(config_dir), drop_entity_columns=True)),
        ("pick", numeric_columns()),
        ("model", DecisionTreeClassifier(random_state=0)),
    ]).fit(X, np.array([0, 1] * 5))
    # pinned on purpose: the environment exists only in this process
    with mlflow.start_run(), pytest.warns(UserWarning, match="pinned to env='test'"):
        info = fs_mlflow.log_model(pipe, "model", input_example=X.head(2))
    assert fs_mlflow.load_model(info.model_uri, mode="batch").predict(X.head(2)).tolist() == [0, 1]
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "pipeline.pkl" for path in files) and any(path.name == "mlflow.db" for path in files)
    secret = password.encode()
    leaked = [str(path) for path in files if secret in path.read_bytes()]
    assert leaked == []


def numeric_columns() -> Any:
    """Keep the numeric feature column (the model needs numbers)."""
    from sklearn.compose import ColumnTransformer

    return ColumnTransformer([("age", "passthrough", ["user_demographics__age"])])


_URL_SAFE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=12)
_ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="«»¤"), max_size=20)


@given(scheme=st.sampled_from(["redis", "rediss", "http", "https", "postgresql"]), user=_URL_SAFE | st.just(""),
       password=_ANY_TEXT.map(lambda p: "«" + p), host=_URL_SAFE, port=st.integers(1, 65535) | st.none(),
       path=st.lists(_URL_SAFE, max_size=3).map("/".join), query=_ANY_TEXT.map(lambda q: "»" + q) | st.none(),
       fragment=_ANY_TEXT.map(lambda f: "¤" + f) | st.none())
def test_mask_url_never_shows_a_password_query_or_fragment(
        scheme: str, user: str, password: str, host: str, port: int | None, path: str, query: str | None,
        fragment: str | None) -> None:
    from fs_augment.config import mask_url

    url = f"{scheme}://{user}:{password}@{host}{f':{port}' if port else ''}/{path}"
    url += f"?{query}" if query is not None else ""
    url += f"#{fragment}" if fragment is not None else ""
    masked = mask_url(url)
    assert not {"«", "»", "¤"} & set(masked), masked
    assert masked.startswith(f"{scheme}://")
    tail = f"{query or ''}{fragment or ''}"
    if not any(c in password for c in "/?#") and "@" not in tail:  # unambiguous: user, host and path stay
        assert masked.startswith(f"{scheme}://{user}:***@{host}") and f"/{path}" in masked


def test_every_url_shown_goes_through_the_one_mask(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fs_augment.cli import _print_training
    from fs_augment.monitoring import LookupMetrics, MetricsPusher
    from fs_augment.stores.bigquery import BigQueryOfflineStore
    from fs_augment.training import TrainResult
    from tests.support.redis_servers import free_port

    secret = "tok-Never-Shown-7"
    pusher = MetricsPusher(LookupMetrics(), f"http://svc:{secret}@127.0.0.1:{free_port()}/m?key={secret}",
                           interval=60)
    try:
        shown = [repr(pusher), pusher._thread.name]
    finally:
        pusher.close()
    store = BigQueryOfflineStore("p", "d", api_endpoint=f"https://emu:{secret}@127.0.0.1:9050?key={secret}")
    shown.append(store.describe())
    from fs_augment.training import _commands

    tracking = f"postgresql://ml:{secret}@db.internal/mlflow"
    serve, _ = _commands("models:/m/1", tracking, load_config("local", PACKAGE.parent / "config"),
                         pd.DataFrame({"user_id": ["u1"]}))
    _print_training(TrainResult({}, "models:/m/1", "run", serve, tracking_uri=tracking))
    shown.append(capsys.readouterr().out)
    for text in shown:
        assert secret not in text and ":***@" in text, text
