"""The embedded ``local`` provider: latest values from the parquet folder, and the adapter over it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fs_augment
from fs_augment.config import load_config
from fs_augment.errors import ConfigError, FeatureNotFoundError, StoreError
from fs_augment.recipe import FeatureGroup
from fs_augment.stores.base import FeatureRequest
from fs_augment.stores.local import LocalOnlineStore, open_local_store
from fs_augment.stores.offline import ParquetOfflineStore

T0 = pd.Timestamp("2024-01-01")


def day(n: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


@pytest.fixture
def features(tmp_path: Path) -> Path:
    """A folder with two user namespaces (out-of-order history, a tie) and one product namespace."""
    root = tmp_path / "project" / "local_features"
    root.mkdir(parents=True)
    pd.DataFrame({
        "user_id": ["user1", "user2", "user1", "user1", "user3"],
        "event_timestamp": [day(5), day(1), day(9), day(2), day(3)],
        "age": [34, 51, 35, 33, 20],
        "country_code": ["KR", "US", "KR", "JP", None],
        "gender": ["F", "M", "F", "F", "M"],
    }).to_parquet(root / "user_demographics.parquet", index=False)
    pd.DataFrame({
        "user_id": ["user1", "user1", "user2"],
        "event_timestamp": [day(4), day(4), day(4)],  # a tie: the last row in file order wins
        "ltv": [100.0, 250.5, float("nan")],
        "total_purchase_count": [1, 2, 3],
    }).to_parquet(root / "user_purchase_summary.parquet", index=False)
    (root / "product_details").mkdir()
    pd.DataFrame({"product_id": [10, 11], "price": [9.5, 20.0], "category": ["book", "toy"],
                  "brand": ["a", "b"]}).to_parquet(root / "product_details" / "part-0.parquet", index=False)
    return root


@pytest.fixture
def store(features: Path) -> LocalOnlineStore:
    return LocalOnlineStore(ParquetOfflineStore(features))


@pytest.fixture
def config_dir(make_config_dir: Callable[..., Path], features: Path) -> Path:
    return make_config_dir(local={"feature_store": {"provider": "local", "connection_info": {
        "offline_store_uri": f"file://{features}"}}})


def test_index_is_built_lazily_for_the_columns_asked_for(store: LocalOnlineStore) -> None:
    assert store.indexed_columns("user_demographics") == []
    assert store.fetch([FeatureRequest("user_demographics", ["age"], ["user1"])]) == [[[35]]]
    assert store.indexed_columns("user_demographics") == ["age"]
    assert store.indexed_columns("user_purchase_summary") == []  # other namespaces untouched
    out = store.fetch([FeatureRequest("user_demographics", ["gender", "age"], ["user2", "user1"])])
    assert out == [[["M", "F"], [51, 35]]]
    assert store.indexed_columns("user_demographics") == ["age", "gender"]
    store.refresh()
    assert store.indexed_columns("user_demographics") == []


def test_latest_row_semantics(store: LocalOnlineStore) -> None:
    out = store.fetch([
        FeatureRequest("user_demographics", ["age", "country_code"], ["user1", "user2", "user3"]),
        FeatureRequest("user_purchase_summary", ["ltv", "total_purchase_count"], ["user1", "user2"]),
        FeatureRequest("product_details", ["price", "category"], ["11", "10"]),
    ], online=True)
    assert out[0] == [[35, 51, 20], ["KR", "US", None]]  # latest by time, not by file order
    assert out[1] == [[250.5, None], [2, 3]]  # tie → last in file; NaN → None
    assert out[2] == [[20.0, 9.5], ["toy", "book"]]  # integer entity column matched as text
    assert type(out[0][0][0]) is int and type(out[1][0][0]) is float  # plain Python values, as JSON gives


def test_missing_entity_is_none(store: LocalOnlineStore) -> None:
    out = store.fetch([FeatureRequest("user_demographics", ["age"], ["nobody", "user1", "nobody"]),
                       FeatureRequest("product_details", ["price"], [])])
    assert out == [[[None, 35, None]], [[]]]


def test_unknown_namespace_and_feature(store: LocalOnlineStore, features: Path) -> None:
    with pytest.raises(FeatureNotFoundError, match=r"'user_clicks'.*user_demographics, user_purchase_summary"):
        store.fetch([FeatureRequest("user_clicks", ["n"], ["user1"])])
    with pytest.raises(FeatureNotFoundError, match=r"'height'.*age, country_code, gender"):
        store.fetch([FeatureRequest("user_demographics", ["height"], ["user1"])])
    assert store.list_features("user_clicks") == []
    assert store.list_features("user_demographics") == ["age", "country_code", "gender"]
    assert store.has_feature("product_details", "brand") and not store.has_feature("product_details", "age")
    assert store.describe() == f"local (parquet folder {features.resolve()})"


def test_refresh_sees_changed_files(store: LocalOnlineStore, features: Path) -> None:
    assert store.fetch([FeatureRequest("product_details", ["price"], ["10"])]) == [[[9.5]]]
    pd.DataFrame({"product_id": [10], "price": [1.0], "category": ["x"], "brand": ["y"]}).to_parquet(
        features / "product_details" / "part-0.parquet", index=False)
    assert store.fetch([FeatureRequest("product_details", ["price"], ["10"])]) == [[[9.5]]]  # built once
    store.refresh()
    assert store.fetch([FeatureRequest("product_details", ["price"], ["10"])]) == [[[1.0]]]


def test_concurrent_first_lookups_build_one_consistent_index(store: LocalOnlineStore) -> None:
    features = ["age", "country_code", "gender"]
    results: dict[str, list] = {}
    barrier = threading.Barrier(len(features))

    def work(feature: str) -> None:
        barrier.wait()
        results[feature] = store.fetch([FeatureRequest("user_demographics", [feature], ["user1", "user2"])])[0][0]

    threads = [threading.Thread(target=work, args=(f,)) for f in features]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"age": [35, 51], "country_code": ["KR", "US"], "gender": ["F", "M"]}
    assert sorted(store.indexed_columns("user_demographics")) == features


def test_local_provider_needs_a_parquet_offline_store(make_config_dir: Callable[..., Path]) -> None:
    config = load_config("local", make_config_dir(local={"feature_store": {"provider": "local"}}))
    with pytest.raises(ConfigError, match="offline_store_uri: file://"):
        open_local_store(config, None)
    with pytest.raises(ConfigError, match="offline_store_uri"):
        fs_augment.connect("local", make_config_dir(local={"feature_store": {"provider": "local"}}))


def test_relative_offline_uri_is_relative_to_the_project(make_config_dir: Callable[..., Path]) -> None:
    config_dir = make_config_dir(local={"feature_store": {"provider": "local", "connection_info": {
        "offline_store_uri": "file://./local_features"}}})
    folder = config_dir.parent / "local_features"
    folder.mkdir()
    pd.DataFrame({"user_id": ["u1"], "age": [7]}).to_parquet(folder / "user_demographics.parquet", index=False)
    with fs_augment.connect("local", config_dir) as adapter:
        assert isinstance(adapter.online, LocalOnlineStore)
        assert adapter.online_get_features({"user_id": "u1"}, [{"namespace": "user_demographics",
                                                                 "features": ["age"]}]) == {"user_demographics:age": 7}


SPECS = [
    {"feature_namespace": "user_demographics", "features": ["age", "country_code"]},
    {"namespace": "user_purchase_summary", "features": ["ltv"]},
    {"feature_namespace": "product_details", "features": ["price"]},
]


def test_adapter_online_and_batch_lookups(config_dir: Path) -> None:
    with fs_augment.connect("local", config_dir) as adapter:
        assert adapter.online_get_features({"user_id": "user1", "product_id": 11}, SPECS) == {
            "user_demographics:age": 35, "user_demographics:country_code": "KR",
            "user_purchase_summary:ltv": 250.5, "product_details:price": 20.0}
        batch = adapter.batch_get_features(
            [{"user_id": "user2", "product_id": 10}, {"user_id": "ghost", "product_id": 10.0}], SPECS)
        assert batch == {
            "user2": {"user_demographics:age": 51, "user_demographics:country_code": "US",
                      "user_purchase_summary:ltv": None},
            "ghost": {"user_demographics:age": None, "user_demographics:country_code": None,
                      "user_purchase_summary:ltv": None},
            "10": {"product_details:price": 9.5},
        }


def test_adapter_feature_frame_latest_and_point_in_time(config_dir: Path) -> None:
    spine = pd.DataFrame({
        "user_id": ["user1", "user1", "user2", None, "user1"],
        "product_id": [10, 11, 12, 10, 10],
        "ts": [day(3), day(9), day(0), day(9), day(9)],
    }, index=[5, 4, 3, 2, 1])
    with fs_augment.connect("local", config_dir) as adapter:
        latest = adapter.get_feature_frame(spine, SPECS)
        assert list(latest.index) == [5, 4, 3, 2, 1]
        assert latest["user_demographics:age"].tolist() == [35, 35, 51, None, 35]
        pit = adapter.get_feature_frame(spine, SPECS, timestamp_column="ts")
        assert list(pit.columns) == [
            "user_demographics:age", "user_demographics:country_code", "user_purchase_summary:ltv",
            "product_details:price"]
        np.testing.assert_array_equal(pit["user_demographics:age"].to_numpy(), [33, 35, np.nan, np.nan, 35])
        assert pit["user_demographics:country_code"].tolist()[:2] == ["JP", "KR"]
        np.testing.assert_array_equal(pit["user_purchase_summary:ltv"].to_numpy(), [np.nan, 250.5, np.nan, np.nan,
                                                                                    250.5])
        # a product file without event_timestamp: every row valid since the beginning of time
        np.testing.assert_array_equal(pit["product_details:price"].to_numpy(), [9.5, 20.0, np.nan, 9.5, 9.5])

        columns = adapter.lookup_columns(spine, [FeatureGroup("user_demographics", ("age",), "user_id",
                                                              max_age=86400.0 * 5)], timestamp_column="ts")
        np.testing.assert_array_equal(columns["user_demographics:age"], [33, 35, np.nan, np.nan, 35])


def test_online_latest_equals_point_in_time_after_every_row(store: LocalOnlineStore) -> None:
    group = FeatureGroup("user_demographics", ("age", "country_code", "gender"), "user_id")
    entities = ["user1", "user2", "user3", "nobody"]
    online = store.fetch([FeatureRequest(group.namespace, group.features, entities)])[0]
    spine = pd.DataFrame({"user_id": pd.Series(entities, dtype=object),
                          "ts": pd.Series([pd.Timestamp("2200-01-01", tz="UTC")] * 4, dtype="datetime64[ns, UTC]")})
    pit = store.offline.point_in_time(spine, [group], "ts")
    for feature, values in zip(group.features, online, strict=True):
        offline = [None if pd.isna(v) else v for v in pit[f"{group.namespace}:{feature}"]]
        assert offline == values


def test_the_local_store_is_read_only_for_the_writer(store: LocalOnlineStore) -> None:
    from fs_augment.writer import write_namespace

    assert not store.writable
    with pytest.raises(StoreError, match=r"local \(parquet folder .*\) store: it is read-only"):
        write_namespace(pd.DataFrame({"user_id": ["u1"], "age": [1]}), "user_demographics", store)
    with pytest.raises(StoreError, match="read-only"):
        store.write([("user_demographics:age:u1", "1")])


def test_stores_are_context_managers(features: Path) -> None:
    with ParquetOfflineStore(features) as offline, LocalOnlineStore(offline) as online:
        assert online.fetch([FeatureRequest("user_demographics", ["age"], ["user1"])]) == [[[35]]]
        assert online.indexed_columns("user_demographics") == ["age"]
    assert online.indexed_columns("user_demographics") == []  # closed: the index is dropped
