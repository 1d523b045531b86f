"""Point-in-time training lookups agree with online serving once the spine's times are after every update.

Feature histories go to a parquet folder (the offline store); ``materialize`` copies the latest
rows into Redis (the online store). A spine timed after every update must get, through the
point-in-time join, exactly the values online lookups read from Redis — with the augmenter's
pinned dtypes, in both modes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

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
