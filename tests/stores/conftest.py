"""Fixtures for the store tests: one harness per store kind, and private Redis servers.

``store`` is parametrized over every store the contract test covers:

* ``redis`` — the machine's Redis, the suite's database (``--redis-url``);
* ``redis-cluster`` — a private 3-master Redis Cluster started once per session;
* ``local`` — the embedded parquet store (no server).

Each param yields a :class:`StoreHarness`: a ``FeatureStoreAdapter`` opened with
``fs_augment.connect`` from a config folder of its own, and ``write`` /
``write_seed`` / ``reset`` to put data in the store the way its owners would.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient

import fs_augment
from fs_augment.adapter import FeatureStoreAdapter
from fs_augment.writer import write_namespace, write_parquet_namespace
from tests.conftest import redis_host_and_db
from tests.support.redis_servers import RedisCluster

STORE_KINDS = ["redis", pytest.param("redis-cluster", marks=pytest.mark.cluster), "local"]

#: The seed's hand-written examples (CONTRACT 4.1): key parts and the raw text a person would SET.
SEED_KEYS = [
    ("user_demographics", "user_id", "user123", "age", "34"),
    ("user_demographics", "user_id", "user123", "country_code", "KR"),
    ("user_purchase_summary", "user_id", "user123", "ltv", "1250.50"),
    ("product_details", "product_id", "product456", "price", "99.99"),
    ("session_summary", "session_id", "session789", "click_count", "15"),
]

#: The same data in the offline layout.
SEED_FRAMES = {
    "user_demographics": pd.DataFrame({"user_id": ["user123"], "age": [34], "country_code": ["KR"]}),
    "user_purchase_summary": pd.DataFrame({"user_id": ["user123"], "ltv": [1250.50]}),
    "product_details": pd.DataFrame({"product_id": ["product456"], "price": [99.99]}),
    "session_summary": pd.DataFrame({"session_id": ["session789"], "click_count": [15]}),
}


@dataclass
class StoreHarness:
    """A store under test: its adapter and how to put data in it."""

    kind: str
    adapter: FeatureStoreAdapter
    client: redis.Redis | ClusterClient | None = None
    folder: Path | None = None
    config_dir: Path | None = None
    written: list[str] = field(default_factory=list)

    def write(self, namespace: str, frame: pd.DataFrame, *, entity_column: str | None = None) -> None:
        """Write a namespace's rows with the reference writer (Redis) or as parquet (local)."""
        if self.client is not None:
            write_namespace(frame, namespace, self.client, entity_column=entity_column)
        else:
            assert self.folder is not None
            write_parquet_namespace(frame, namespace, self.folder)
            self.adapter.online.refresh()  # the local index is built once per process

    def write_seed(self) -> None:
        """The seed's examples: raw ``SET`` text in Redis, the same values in parquet."""
        if self.client is not None:
            for namespace, _, entity, feature, text in SEED_KEYS:
                self.client.set(f"{namespace}:{feature}:{entity}", text)
        else:
            for namespace, frame in SEED_FRAMES.items():
                self.write(namespace, frame)

    def reset(self) -> None:
        """Empty the store (the suite's database, the private cluster, or the folder)."""
        if isinstance(self.client, ClusterClient):
            flush_cluster(self.client)
        elif self.client is not None:
            self.client.flushdb()
        else:
            assert self.folder is not None
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            self.adapter.online.refresh()


def flush_cluster(client: ClusterClient) -> None:
    """FLUSHDB on every master of a private cluster."""
    for node in client.get_primaries():
        client.get_redis_connection(node).flushdb()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A private 3-master Redis Cluster for the session, stopped by PID afterwards."""
    cluster = RedisCluster.start(tmp_path_factory.mktemp("cluster"), masters=3)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_client(redis_cluster: RedisCluster) -> Iterator[ClusterClient]:
    """A client of the private cluster, flushed before and after the test."""
    client = ClusterClient(host=redis_cluster.host, port=redis_cluster.nodes[0].port)
    flush_cluster(client)
    yield client
    flush_cluster(client)
    client.close()


def store_config(kind: str, **settings: Any) -> dict[str, Any]:
    """A ``feature_store`` section with test-friendly timeouts, plus ``settings``."""
    section: dict[str, Any] = {"provider": "local" if kind == "local" else "redis",
                               "connection_timeout": 2000, "retry_attempts": 1}
    info = settings.pop("connection_info", {})
    section.update(settings)
    section["connection_info"] = info
    return {"feature_store": section}


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, make_config_dir: Callable[..., Path],
          tmp_path: Path) -> Iterator[StoreHarness]:
    """The contract test's store: an adapter of environment ``test`` over each kind of store."""
    kind = request.param
    client: Any = None
    folder: Path | None = None
    if kind == "redis":
        client = request.getfixturevalue("redis_client")
        host, db = redis_host_and_db(client)
        info = {"redis_host": host, "redis_db": db, "redis_mode": "standalone"}
    elif kind == "redis-cluster":
        client = request.getfixturevalue("cluster_client")
        cluster = request.getfixturevalue("redis_cluster")
        info = {"redis_host": f"{cluster.host}:{cluster.nodes[0].port}", "redis_mode": "cluster"}
    else:
        folder = tmp_path / "features"
        folder.mkdir()
        info = {"offline_store_uri": f"file://{folder}"}
    config_dir = make_config_dir(test=store_config(kind, connection_info=info))
    adapter = fs_augment.connect("test", config_dir)
    try:
        yield StoreHarness(kind, adapter, client=client, folder=folder, config_dir=config_dir)
    finally:
        adapter.close()
