"""Point-in-time training lookups agree with online serving once the spine's times are after every update.

Feature histories go to a parquet folder (the offline store); ``materialize`` copies the latest
rows into Redis (the online store). A spine timed after every update must get, through the
point-in-time join, exactly the values online lookups read from Redis — with the augmenter's
pinned dtypes, in both modes.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fs_augment
from fs_augment import FeatureStoreAugmenter
from fs_augment.connections import close_all
from fs_augment.errors import FeatureQualityWarning
from fs_augment.writer import materialize, write_parquet_namespace
from tests.support.stores import redis_host_and_db

RECIPE = {"augmenter": {"timestamp_column": "event_timestamp", "features": [
    {"feature_namespace": "user_demographics", "features": ["age", "country_code"]},
    {"feature_namespace": "user_purchase_summary", "features": ["ltv", "total_purchase_count"]},
    {"feature_namespace": "product_details", "features": ["price", "category"]},
]}}
T0 = pd.Timestamp("2026-01-01", tz="UTC")


def histories(seed: int, users: int, products: int, versions: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def times(n: int) -> pd.Series:  # out of order on purpose
        return pd.Series(T0 + pd.to_timedelta(rng.integers(0, 10_000_000, n), unit="s"))

    u = np.repeat([f"user{i}" for i in range(users)], versions)
    p = np.repeat([f"prod{i}" for i in range(products)], versions)
    age = pd.array(rng.integers(18, 90, len(u)), dtype="Int64")
    age[rng.random(len(u)) < 0.1] = pd.NA  # some versions lack a value
    return {
        "user_demographics": pd.DataFrame({
            "user_id": u, "event_timestamp": times(len(u)), "age": age,
            "country_code": rng.choice(["KR", "US", "DE", "JP"], len(u)),
        }),
        "user_purchase_summary": pd.DataFrame({
            "user_id": u, "event_timestamp": times(len(u)),
            "ltv": rng.gamma(2.0, 300.0, len(u)).round(2), "total_purchase_count": rng.integers(0, 50, len(u)),
        }),
        "product_details": pd.DataFrame({
            "product_id": p, "event_timestamp": times(len(p)),
            "price": rng.uniform(1, 500, len(p)).round(2), "category": rng.choice(["shoes", "books", "toys"], len(p)),
        }),
    }


@pytest.fixture
def project(make_config_dir, redis_client, monkeypatch):
    host, db = redis_host_and_db(redis_client)
    config_dir = make_config_dir(
        base={"feature_store": {"provider": "redis", "connection_timeout": 2000, "retry_attempts": 1}},
        test={"feature_store": {"connection_info": {"redis_host": host, "redis_db": db, "redis_mode": "standalone",
                                                     "offline_store_uri": "file://./features"}}},
    )
    monkeypatch.setenv("FS_AUGMENT_ENV", "test")
    monkeypatch.setenv("FS_AUGMENT_CONFIG_DIR", str(config_dir))
    close_all()
    yield config_dir.parent / "features", redis_client
    close_all()


def write_and_materialize(folder: Path, tables: dict[str, pd.DataFrame]) -> None:
    for namespace, frame in tables.items():
        write_parquet_namespace(frame, namespace, folder)
    materialize(RECIPE)
    fs_augment.connections.close_all()  # the local index of a previous example must not linger


def late_spine(users: int, products: int, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "user_id": [f"user{i}" for i in rng.integers(0, users + 2, n)],  # some users unknown
        "product_id": [f"prod{i}" for i in rng.integers(0, products + 1, n)],
        "event_timestamp": T0 + pd.Timedelta(days=400),  # after every update
    }, index=pd.Index(rng.permutation(n) * 7, name="order"))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), users=st.integers(1, 30), products=st.integers(1, 8), versions=st.integers(1, 4))
def test_point_in_time_after_every_update_equals_online_lookups_of_materialized_values(
    project, seed, users, products, versions
):
    folder, redis_client = project
    redis_client.flushdb()
    write_and_materialize(folder, histories(seed, users, products, versions))
    spine = late_spine(users, products, 40, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FeatureQualityWarning)
        aug = FeatureStoreAugmenter(RECIPE, mode="batch")
        trained = aug.fit_transform(spine)  # point in time, from parquet
        aug.set_params(mode="online")
        served = aug.transform(spine)  # latest, from Redis
        rows = pd.concat([aug.transform(spine.iloc[[i]]) for i in range(len(spine))])
    pd.testing.assert_frame_equal(trained, served)
    pd.testing.assert_frame_equal(trained, rows)


def test_adapter_level_values_agree_too(project):
    folder, _ = project
    write_and_materialize(folder, histories(7, 25, 5, 3))
    spine = late_spine(25, 5, 60, 7).reset_index(drop=True)
    groups = fs_augment.load_recipe(RECIPE).groups
    adapter = fs_augment.connections.get_adapter()
    pit = adapter.lookup_columns(spine, groups, timestamp_column="event_timestamp")
    online = adapter.lookup_columns(spine, groups, online=True)
    for name in pit:
        got, want = list(pit[name]), list(online[name])
        assert [None if pd.isna(v) else v for v in got] == [None if pd.isna(v) else v for v in want], name


# --- parity in time: max_age online equals max_age point in time (CONTRACT 4.5) --------------------------

_POOL = ["u0", "u1", "u2"]
_PRODUCTS = ["p0", "p1"]


@st.composite
def timed_histories(draw: st.DrawFn) -> tuple[dict[str, pd.DataFrame], pd.Timestamp, Any, Any]:
    """Histories on a grid of whole seconds, each namespace's max_age (or None) and a time t after every row,
    often exactly max_age after one of the rows."""

    def rows(entities: list[str], has_time: bool) -> tuple[list[str], list[Any]]:
        n = draw(st.integers(1, 6))
        keys = [draw(st.sampled_from(entities)) for _ in range(n)]
        times = [draw(st.none() | st.integers(0, 20)) if has_time else None for _ in range(n)]
        return keys, times

    def stamps(times: list[Any]) -> pd.Series:
        return pd.Series([pd.NaT if s is None else T0 + pd.Timedelta(seconds=s) for s in times],
                         dtype="datetime64[ns, UTC]")

    tables = {}
    timed = draw(st.booleans())
    users, times = rows(_POOL, timed)
    frame = {"user_id": users, "age": pd.array([draw(st.none() | st.integers(18, 90)) for _ in users], dtype="Int64"),
             "country_code": [draw(st.none() | st.sampled_from(["KR", "US"])) for _ in users]}
    if timed:
        frame["event_timestamp"] = stamps(times)
    tables["user_demographics"] = pd.DataFrame(frame)
    products, ptimes = rows(_PRODUCTS, True)
    tables["product_details"] = pd.DataFrame({
        "product_id": products, "event_timestamp": stamps(ptimes),
        "price": [draw(st.none() | st.floats(1, 100, allow_nan=False).map(lambda v: round(v, 2))) for _ in products]})
    user_age, product_age = draw(st.none() | st.integers(1, 25)), draw(st.none() | st.integers(1, 25))
    latest = max([s for s in times + ptimes if s is not None], default=0)
    edges = [s + age for age, moments in ((user_age, times), (product_age, ptimes)) if age is not None
             for s in moments if s is not None and s + age >= latest]
    offset = draw(st.sampled_from(edges) if edges and draw(st.booleans()) else st.integers(latest, 40))
    return tables, T0 + pd.Timedelta(seconds=offset), user_age, product_age


def _timed_recipe(user_age: Any, product_age: Any, default: bool) -> dict[str, Any]:
    users: dict[str, Any] = {"feature_namespace": "user_demographics", "features": ["age", "country_code"],
                             "max_age": user_age}
    if default:
        users["defaults"] = {"country_code": "ZZ"}
    return {"augmenter": {"timestamp_column": "ts", "features": [
        users, {"feature_namespace": "product_details", "features": ["price"], "max_age": product_age}]}}


@pytest.mark.parametrize("kind", ["local", "redis"])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=timed_histories(), default=st.booleans(), data=st.data())
def test_online_at_t_after_materialize_at_t_equals_point_in_time_at_t(
    kind, redis_client, redis_url, tmp_path, history, default, data
):
    from fs_augment.adapter import FeatureStoreAdapter
    from fs_augment.stores.local import LocalOnlineStore
    from fs_augment.stores.offline import ParquetOfflineStore
    from fs_augment.stores.redis import store_for_url

    tables, t, user_age, product_age = history
    folder = tmp_path / f"features-{data.draw(st.integers(0, 10**9), label='folder')}"
    for namespace, frame in tables.items():
        write_parquet_namespace(frame, namespace, folder)
    recipe = _timed_recipe(user_age, product_age, default)
    offline = ParquetOfflineStore(folder)
    if kind == "redis":
        redis_client.flushdb()
        materialize(recipe, source=offline, target=redis_url)
        online_store = store_for_url(redis_url)
    else:
        online_store = LocalOnlineStore(offline)
    spine = pd.DataFrame({
        "user_id": data.draw(st.lists(st.sampled_from([*_POOL, "nobody", None]), min_size=1, max_size=5), label="u"),
    })
    spine["product_id"] = [data.draw(st.sampled_from([*_PRODUCTS, None]), label="p") for _ in range(len(spine))]
    spine["ts"] = t  # every spine row at t
    adapter = FeatureStoreAdapter(online_store, offline, env="test", clock=lambda: t.value)
    with adapter, fs_augment.use(adapter), warnings.catch_warnings():
        warnings.simplefilter("ignore", FeatureQualityWarning)
        aug = FeatureStoreAugmenter(recipe, mode="batch")
        trained = aug.fit_transform(spine)  # point in time at t, from parquet
        aug.set_params(mode="online")
        served = aug.transform(spine)  # latest values, from the online store, at t
        rows = pd.concat([aug.transform(spine.iloc[[i]]) for i in range(len(spine))])  # the 1-row path
    pd.testing.assert_frame_equal(trained, served)
    pd.testing.assert_frame_equal(trained, rows)
