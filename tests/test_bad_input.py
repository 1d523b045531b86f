"""Bad input refused (issue 9, CONTRACT 7): a clear FsAugmentError, or the correct output, never a
half-written result and never another exception type.

Spines, configuration files and stored values are generated (Hypothesis) and pushed through the
public entry points: ``FeatureStoreAugmenter`` against the suite's Redis database, ``load_config`` /
``fs_augment.connect``, and a private Redis Cluster for hash-tag entity values.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import math
import numbers
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster as ClusterClient

import fs_augment
from fs_augment import FeatureStoreAugmenter
from fs_augment.config import load_config
from fs_augment.connections import close_all
from fs_augment.errors import ConfigError, FeatureQualityWarning, FsAugmentError, RecipeError, SpineError
from fs_augment.keys import encode_value, feature_key
from fs_augment.writer import write_namespace
from tests.support.redis_servers import RedisCluster, RedisServer
from tests.support.stores import store_config

RECIPE = {"augmenter": {"features": [
    {"feature_namespace": "user_demographics", "features": ["age", "country_code"], "defaults": {"age": -1}},
    {"feature_namespace": "product_details", "features": ["price"]},
]}}
LONG = "L" * 10_000
#: Entity text -> stored features. Keys with ':' '{' '}', unicode, an empty string and a very long one.
USERS = {"u1": {"age": 34, "country_code": "KR"}, "7": {"age": 70, "country_code": "FR"},
         "ü:ñ {x}": {"age": 5, "country_code": "ES"}, "": {"age": 0, "country_code": "ZZ"},
         LONG: {"age": 99, "country_code": "LL"}, "-3": {"country_code": "NEG"}}
PRODUCTS = {"p1": {"price": 9.5}, "12345678901234567890": {"price": 1.25}, "{p}": {"price": 2.0}}
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])


def put(client: Any, namespace: str, rows: dict[str, dict[str, Any]]) -> None:
    for entity, features in rows.items():
        for feature, value in features.items():
            client.set(feature_key(namespace, feature, entity), encode_value(value))


@pytest.fixture
def fitted(redis_client: redis.Redis, redis_config_dir: Path) -> FeatureStoreAugmenter:
    """An augmenter fitted on the suite's Redis database, holding USERS and PRODUCTS."""
    put(redis_client, "user_demographics", USERS)
    put(redis_client, "product_details", PRODUCTS)
    return FeatureStoreAugmenter(RECIPE, env="test", config_dir=str(redis_config_dir)).fit(
        pd.DataFrame({"user_id": ["u1", "7"], "product_id": ["p1", "p1"]}))


# --- generated spines -------------------------------------------------------------------------------------

NOT_AN_ENTITY = object()  # marks a value the key contract refuses


def expected_text(value: Any) -> Any:
    """An independent reading of CONTRACT 4.1: the key text of a cell, None (no entity) or NOT_AN_ENTITY."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return NOT_AN_ENTITY
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        return str(int(value)) if math.isfinite(value) and float(value).is_integer() else NOT_AN_ENTITY
    return NOT_AN_ENTITY


def entity_cells(known: list[str], *, refused: bool) -> st.SearchStrategy[Any]:
    """Entity values of every accepted form; with ``refused``, also values the key contract refuses."""
    accepted = st.one_of(
        st.sampled_from(known),
        st.text(max_size=20),
        st.text(alphabet="{}:ü\u200b\U0001f600 ", max_size=6),
        st.just(LONG), st.text(min_size=5_000, max_size=5_001, alphabet="ab"),
        st.integers(-10, 10), st.just(7), st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([7.0, -3.0, 1e300, 2.0**70]),
        st.sampled_from([None, float("nan"), pd.NA, pd.NaT, np.int32(7), np.float32(7.0)]),
    )
    if not refused:
        return accepted
    return st.one_of(
        accepted,
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(), st.just(np.bool_(True)),
        st.sampled_from([b"u1", ["u1"], {"u": 1}, decimal.Decimal("7"), datetime.date(2024, 1, 1), 1 + 2j]),
    )


def as_column(values: list[Any], how: str) -> pd.Series:
    """The same values as pandas would hold them after a typical load."""
    if how == "object":
        return pd.Series(values, dtype=object)
    if how == "category":
        try:
            return pd.Series(values, dtype=object).astype("category")
        except (TypeError, ValueError):  # unhashable or unorderable mixes stay objects
            return pd.Series(values, dtype=object)
    return pd.Series(values)  # pandas infers: int64, float64, str, bool, object ...


@st.composite
def spines(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 8))
    refused = draw(st.sampled_from([False, False, True]))
    users = draw(st.lists(entity_cells(list(USERS), refused=refused), min_size=n, max_size=n))
    products = draw(st.lists(entity_cells(list(PRODUCTS), refused=refused), min_size=n, max_size=n))
    how = draw(st.sampled_from(["infer", "object", "category"]))
    columns = {"user_id": as_column(users, how), "product_id": as_column(products, how)}
    if draw(st.booleans()):
        columns["note"] = pd.Series(draw(st.lists(st.text(max_size=3), min_size=n, max_size=n)), dtype=object)
    frame = pd.DataFrame(columns)
    index = draw(st.sampled_from(["range", "duplicated", "labels", "shuffled", "multi", "times"]))
    if index == "duplicated":
        frame.index = [0] * n
    elif index == "labels":
        frame.index = [f"row-{i}" for i in range(n)]
    elif index == "shuffled":
        frame.index = list(range(n * 3, 0, -3))
    elif index == "multi":
        frame.index = pd.MultiIndex.from_arrays([["a"] * n, list(range(n))])
    elif index == "times":
        frame.index = pd.date_range("2024-01-01", periods=n, freq="h")
    shape = draw(st.sampled_from(["as is"] * 4 + ["duplicated column", "missing column"]))
    if shape == "duplicated column":
        frame = pd.concat([frame, frame[["user_id"]]], axis=1)
    elif shape == "missing column":
        frame = frame.drop(columns=[draw(st.sampled_from(["user_id", "product_id"]))])
    return frame


def expected_output(X: pd.DataFrame) -> dict[str, list[Any]] | type[FsAugmentError]:
    """What the fitted augmenter must answer: feature values by output column, or the error class."""
    if X.columns.has_duplicates or not {"user_id", "product_id"} <= set(X.columns):
        return SpineError
    texts = {column: [expected_text(v) for v in X[column].tolist()] for column in ("user_id", "product_id")}
    if any(t is NOT_AN_ENTITY for column in texts.values() for t in column):
        return SpineError
    users = [USERS.get(t, {}) if t is not None else {} for t in texts["user_id"]]
    products = [PRODUCTS.get(t, {}) if t is not None else {} for t in texts["product_id"]]
    return {
        "user_demographics__age": [u.get("age", -1) for u in users],
        "user_demographics__country_code": [u.get("country_code") for u in users],
        "product_details__price": [p.get("price") for p in products],
    }


@SETTINGS
@given(X=spines(), mode=st.sampled_from(["batch", "online"]))
def test_generated_spines_give_the_right_frame_or_a_clear_error(
        fitted: FeatureStoreAugmenter, X: pd.DataFrame, mode: str) -> None:
    before = X.copy(deep=True)
    state = (dict(fitted.missing_rate_), dict(fitted.invalid_count_))
    expected = expected_output(X)
    fitted.set_params(mode=mode)
    try:
        out = fitted.transform(X)
    except FsAugmentError as exc:
        event(f"refused: {type(exc).__name__}")
        assert isinstance(expected, type), f"refused a good spine: {exc}"
        assert isinstance(exc, expected), repr(exc)
        assert str(exc)
        assert (dict(fitted.missing_rate_), dict(fitted.invalid_count_)) == state  # nothing half-written
    else:
        event("answered" if len(X) else "answered (empty)")
        assert not isinstance(expected, type), f"accepted a spine that must be refused: {expected.__name__}"
        assert out.index.equals(X.index) and len(out) == len(X)
        assert list(out.columns) == ["user_id", "product_id", *expected]
        assert {c: str(t) for c, t in out.dtypes.items() if "__" in c} == fitted.feature_dtypes_
        for column, values in expected.items():
            got = [None if pd.isna(v) else v for v in out[column].tolist()]
            assert got == values, column
    pd.testing.assert_frame_equal(X, before)  # the input is never changed


def test_refusals_name_what_was_wrong(fitted: FeatureStoreAugmenter) -> None:
    cases = [
        (pd.DataFrame({"user_id": ["u1", 1.5], "product_id": ["p1", "p1"]}), r"1\.5 of type float.*'user_id'"),
        (pd.DataFrame({"user_id": ["u1"], "product_id": [b"p1"]}), r"b'p1' of type bytes.*'product_id'"),
        (pd.DataFrame({"user_id": [True], "product_id": ["p1"]}), r"'user_id'"),
        (pd.DataFrame({"user_id": ["u1"], "product_id": [LONG + "x"]}).assign(user_id=[[1]]), r"\[1\].*'user_id'"),
        (pd.DataFrame({"product_id": ["p1"]}), r"lacks column\(s\) seen at fit: user_id"),
        (pd.DataFrame([["u1", "p1", "u2"]], columns=["user_id", "product_id", "user_id"]), "duplicated column"),
    ]
    for X, message in cases:
        with pytest.raises(SpineError, match=message):
            fitted.transform(X)
    with pytest.raises(SpineError, match="DataFrame"):
        fitted.transform({"user_id": ["u1"], "product_id": ["p1"]})


@pytest.mark.parametrize("name", ["user demographics", "user:demographics", "", "../etc", 7])
def test_an_invalid_namespace_is_a_recipe_error_wherever_it_enters(
        name: Any, redis_client: redis.Redis, redis_config_dir: Path, tmp_path: Path) -> None:
    from fs_augment.recipe import load_recipe
    from fs_augment.stores.bigquery import BigQueryOfflineStore
    from fs_augment.stores.offline import ParquetOfflineStore
    from fs_augment.writer import write_parquet_namespace

    frame = pd.DataFrame({"user_id": ["u1"], "age": [3]})
    specs = [{"namespace": name, "features": ["age"]}]
    adapter = fs_augment.connect("test", redis_config_dir)
    try:
        calls = {
            "recipe": lambda: load_recipe({"augmenter": {"features": [{"feature_namespace": name,
                                                                       "features": ["age"]}]}}),
            "online lookup": lambda: adapter.online_get_features({"user_id": "u1"}, specs),
            "batch lookup": lambda: adapter.batch_get_features([{"user_id": "u1"}], specs),
            "Redis writer": lambda: write_namespace(frame, name, redis_client),
            "parquet writer": lambda: write_parquet_namespace(frame, name, tmp_path),
            "parquet store": lambda: ParquetOfflineStore(tmp_path).list_features(name),
            "BigQuery store": lambda: BigQueryOfflineStore("p", "d").list_features(name),
            "BigQuery writer": lambda: BigQueryOfflineStore("p", "d").write_table(frame, name),
        }
        for where, call in calls.items():
            with pytest.raises(RecipeError, match=f"invalid namespace {re.escape(repr(name))}") as caught:
                call()
            assert isinstance(caught.value, ValueError), where
    finally:
        adapter.close()
    with pytest.raises(RecipeError, match=r"does not start with '\.'"):  # the parquet layout's own rule
        ParquetOfflineStore(tmp_path).list_features(".hidden")


def test_a_long_entity_in_an_error_is_shortened(fitted: FeatureStoreAugmenter) -> None:
    with pytest.raises(SpineError) as caught:
        fitted.transform(pd.DataFrame({"user_id": [("x" * 5000,)], "product_id": ["p1"]}))
    assert len(str(caught.value)) < 400


def test_empty_frames_keep_pinned_dtypes(fitted: FeatureStoreAugmenter) -> None:
    for mode in ("batch", "online"):
        out = fitted.set_params(mode=mode).transform(pd.DataFrame({"user_id": [], "product_id": []}))
        assert len(out) == 0 and {c: str(t) for c, t in out.dtypes.items() if "__" in c} == fitted.feature_dtypes_


# --- configuration files --------------------------------------------------------------------------------------

def write_env(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test.yaml").write_text(text, encoding="utf-8")
    return folder


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(
    st.text(max_size=200),
    st.text(alphabet=":-{}[]'\"!&*#|>%@` \n\tfeature_store provider redis local ${X}", max_size=120),
))
def test_any_config_text_is_a_config_or_a_config_error(tmp_path: Path, text: str) -> None:
    folder = write_env(tmp_path / "fuzz", text)
    try:
        config = load_config("test", folder, environ={})
    except ConfigError as exc:
        assert "test.yaml" in str(exc)
    else:
        assert config.env == "test"


STORE_KEYS = ["provider", "connection_timeout", "retry_attempts", "cache_ttl", "cache_max_entries",
              "enable_debug_logging", "connection_pool_size", "enable_monitoring", "monitoring_endpoint",
              "retry_deadline", "on_store_error", "batch_chunk_size"]
INFO_KEYS = ["redis_host", "redis_db", "redis_password", "offline_store_uri", "redis_mode", "redis_username",
             "redis_ssl_ca_certs"]
odd_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12),
                       st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                            max_size=2))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(store=st.dictionaries(st.sampled_from(STORE_KEYS), odd_values, max_size=4),
       info=st.dictionaries(st.sampled_from(INFO_KEYS), odd_values, max_size=3))
def test_wrong_typed_values_are_config_errors_naming_the_key(
        tmp_path_factory: pytest.TempPathFactory, store: dict[str, Any], info: dict[str, Any]) -> None:
    folder = tmp_path_factory.mktemp("typed")
    (folder / "test.yaml").write_text(yaml.safe_dump({"feature_store": {**store, "connection_info": info}}))
    try:
        config = load_config("test", folder, environ={})
    except ConfigError as exc:
        assert "test.yaml" in str(exc) and "feature_store." in str(exc)
        return
    with contextlib.suppress(ConfigError):  # a config that loads opens without I/O, or refuses with a ConfigError
        fs_augment.connect("test", config=config).close()


@pytest.mark.parametrize(("text", "says"), [
    ("feature_store:\n  provider: redis\n   retry_attempts: 3\n", r"malformed YAML at line \d"),
    ("feature_store: [unclosed\n", "malformed YAML"),
    ("feature_store:\n  connection_timeout: fast\n", r"feature_store\.connection_timeout must be an integer"),
    ("feature_store:\n  retry_attempts: -1\n", r"feature_store\.retry_attempts must be an integer >= 0"),
    ("feature_store:\n  on_store_error: ignore\n", r"on_store_error must be one of 'raise', 'default'"),
    ("feature_store:\n  enable_monitoring: 'yes'\n", r"enable_monitoring must be true or false"),
    ("feature_store:\n  connection_info:\n    redis_db: nine\n", r"connection_info\.redis_db must be an integer"),
    ("feature_store:\n  connection_info:\n    redis_host: localhost\n", r"redis_host must be 'host:port'"),
    ("- just\n- a list\n", "top level must be a mapping"),
])
def test_bad_config_reaches_the_user_of_the_augmenter_as_a_config_error(
        tmp_path: Path, text: str, says: str) -> None:
    folder = write_env(tmp_path / "config", text)
    with pytest.raises(ConfigError, match=says):
        FeatureStoreAugmenter(RECIPE, env="test", config_dir=str(folder)).fit(
            pd.DataFrame({"user_id": ["u1"], "product_id": ["p1"]}))


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("key", "value"), [("connection_pool_size", 10**9), ("connection_timeout", 10**15),
                                            ("retry_attempts", 10**9)])
def test_settings_no_client_can_use_are_config_errors_not_hangs(
        make_config_dir: Callable[..., Path], key: str, value: int) -> None:
    config_dir = make_config_dir(test=store_config("redis", **{key: value}, connection_info={
        "redis_host": "127.0.0.1:6379", "redis_db": 9, "redis_mode": "standalone"}))
    with pytest.raises(ConfigError, match=rf"test\.yaml: feature_store\.{key} must be at most"):
        fs_augment.connect("test", config_dir)


# --- stored values that do not fit the pinned dtype -----------------------------------------------------------

KINDS_RECIPE = {"augmenter": {"features": [
    {"feature_namespace": "kinds", "entity_column": "id", "features": ["n", "x", "flag", "name"]},
]}}
GOOD = {"n": 34, "x": 9.5, "flag": True, "name": "KR"}
raw_values = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b'"forty"', b"1.5", b"[1, 2]", b'{"a": 1}', b"\xff\xfe", b"NaN", b"Infinity", b"1e400",
                     b"1" + b"0" * 400, b"-" + b"9" * 30, b"null", b"true", b"0", b"", b"\x00", b"34"]),
    st.text(max_size=8).map(lambda t: t.encode()),
)


@pytest.fixture(scope="module")
def kinds_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private server: these tests flush it for every example."""
    with RedisServer.start(tmp_path_factory.mktemp("kinds")) as started:
        yield started


@pytest.fixture
def kinds(kinds_server: RedisServer, make_config_dir: Callable[..., Path]) -> Iterator[tuple[redis.Redis, str]]:
    """A client of the private server and a config folder whose environment ``test`` reads it."""
    client = redis.Redis(**kinds_server.client_kwargs())
    client.flushdb()
    config_dir = make_config_dir(test=store_config("redis", connection_info={
        "redis_host": f"127.0.0.1:{kinds_server.port}", "redis_mode": "standalone"}))
    yield client, str(config_dir)
    client.close()


@SETTINGS
@given(raws=st.fixed_dictionaries({f: raw_values for f in GOOD}), mode=st.sampled_from(["batch", "online"]),
       nullable=st.booleans())
def test_stored_values_that_do_not_fit_are_counted_and_warned_never_fatal(
        kinds: tuple[redis.Redis, str], raws: dict[str, bytes], mode: str, nullable: bool) -> None:
    redis_client, redis_config_dir = kinds
    redis_client.flushdb()
    close_all()
    for feature, value in GOOD.items():
        redis_client.set(feature_key("kinds", feature, "good"), encode_value(value))
    aug = FeatureStoreAugmenter(KINDS_RECIPE, env="test", config_dir=redis_config_dir, mode=mode,
                                nullable_dtypes=nullable).fit(pd.DataFrame({"id": ["good"]}))
    for feature, raw in raws.items():
        redis_client.set(feature_key("kinds", feature, "bad"), raw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = aug.transform(pd.DataFrame({"id": ["good", "bad", "absent"]}))
    assert {c: str(t) for c, t in out.dtypes.items() if "__" in c} == aug.feature_dtypes_
    assert out.iloc[0][["kinds__n", "kinds__x", "kinds__flag", "kinds__name"]].tolist() == [34, 9.5, True, "KR"]
    assert out.iloc[2][["kinds__n", "kinds__x", "kinds__flag", "kinds__name"]].isna().all()
    quality = [str(w.message) for w in caught if issubclass(w.category, FeatureQualityWarning)]
    assert len(quality) <= 1
    invalid = dict(re.findall(r"(kinds__\w+) \((\d+)\)", quality[0])) if quality else {}
    assert all(v == "1" for v in invalid.values())
    for name in invalid:
        assert pd.isna(out[name].iloc[1])  # a misfit reads as missing
    assert not any(aug.invalid_count_.values())  # the fit-time figures: a transform leaves them


@pytest.mark.parametrize(("feature", "raw"), [("n", b'"forty"'), ("n", b"1.5"), ("x", b"[1, 2]"),
                                              ("flag", b'"yes"'), ("name", b"[1, 2]"), ("x", b"1" + b"0" * 400)])
def test_known_misfits_are_counted(kinds: tuple[redis.Redis, str], feature: str, raw: bytes) -> None:
    redis_client, redis_config_dir = kinds
    for name, value in GOOD.items():
        redis_client.set(feature_key("kinds", name, "good"), encode_value(value))
    aug = FeatureStoreAugmenter(KINDS_RECIPE, env="test", config_dir=redis_config_dir, mode="online").fit(
        pd.DataFrame({"id": ["good"]}))
    redis_client.set(feature_key("kinds", feature, "bad"), raw)
    with pytest.warns(FeatureQualityWarning, match=f"kinds__{feature} \\(1\\)"):
        out = aug.transform(pd.DataFrame({"id": ["bad"]}))
    assert pd.isna(out[f"kinds__{feature}"].iloc[0])
    assert aug.invalid_count_[f"kinds__{feature}"] == 0  # the fit-time figure: a transform leaves it


# --- hash tags on Redis Cluster -------------------------------------------------------------------------------------

HASH_TAG_ENTITIES = ["{tag}", "a{b}c", "{}", "{a}{b}", "}{", "{", "}", "{user1}", "x:{y}:z", "{ü}"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with RedisCluster.start(tmp_path_factory.mktemp("hash-tags"), masters=3) as started:
        yield started


@pytest.mark.cluster
def test_hash_tag_entities_map_to_the_exact_contract_keys_on_a_cluster(
        cluster: RedisCluster, make_config_dir: Callable[..., Path]) -> None:
    client = ClusterClient(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        ages = {entity: i for i, entity in enumerate(HASH_TAG_ENTITIES)}
        for entity, age in ages.items():  # set by hand, exactly the contract's keys
            client.set(f"user_demographics:age:{entity}", str(age))
        write_namespace(pd.DataFrame({"user_id": HASH_TAG_ENTITIES, "country_code": [f"c{e}" for e in ages]}),
                        "user_demographics", client)  # the reference writer must write the same keys
        for entity in HASH_TAG_ENTITIES:
            assert client.get(f"user_demographics:country_code:{entity}") == f'"c{entity}"'.encode()
        slots = {client.keyslot(f"user_demographics:age:{e}") for e in HASH_TAG_ENTITIES}
        assert len(slots) > 1  # the tags really spread the keys over slots
        config_dir = make_config_dir(test=store_config("redis", connection_info={
            "redis_host": f"127.0.0.1:{cluster.nodes[0].port}", "redis_mode": "cluster"}))
        recipe = {"augmenter": {"features": [
            {"feature_namespace": "user_demographics", "features": ["age", "country_code"]}]}}
        spine = pd.DataFrame({"user_id": [*HASH_TAG_ENTITIES, "{absent}"]})
        aug = FeatureStoreAugmenter(recipe, env="test", config_dir=str(config_dir)).fit(spine)
        expected_age = [*ages.values(), None]
        expected_country = [*(f"c{e}" for e in HASH_TAG_ENTITIES), None]
        for mode in ("batch", "online"):
            out = aug.set_params(mode=mode).transform(spine)
            assert [None if pd.isna(v) else v for v in out["user_demographics__age"]] == expected_age, mode
            assert [None if pd.isna(v) else v for v in out["user_demographics__country_code"]] == expected_country
        with fs_augment.connect("test", config_dir) as adapter:
            for entity, age in ages.items():
                assert adapter.online_get_features({"user_id": entity}, recipe["augmenter"]["features"]) == {
                    "user_demographics:age": age, "user_demographics:country_code": f"c{entity}"}
    finally:
        for node in client.get_primaries():
            client.get_redis_connection(node).flushdb()
        client.close()
