"""Fixtures for the store tests: one harness per store kind, private Redis servers, the BigQuery emulator.

``store`` is parametrized over every online store the contract test covers:

* ``redis`` — the machine's Redis, the suite's database (``--redis-url``);
* ``redis-cluster`` — a private 3-master Redis Cluster started once per session;
* ``local`` — the embedded parquet store (no server).

Each param yields a :class:`StoreHarness`: a ``FeatureStoreAdapter`` opened with
``fs_augment.connect`` from a config folder of its own, and ``write`` /
``write_seed`` / ``reset`` to put data in the store the way its owners would.

``offline`` is parametrized over every offline store the offline contract test covers:
``parquet`` (a folder of parquet read with DuckDB) and ``bigquery`` (a fresh dataset of
the BigQuery emulator). Each yields an :class:`OfflineHarness`.

The harnesses live in ``tests/support/stores.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.cluster import RedisCluster as ClusterClient

import fs_augment
from tests.support.bqemulator import BigQueryEmulator
from tests.support.redis_servers import RedisCluster
from tests.support.stores import (
    BIGQUERY_PROJECT,
    OfflineHarness,
    StoreHarness,
    flush_cluster,
    new_bigquery_store,
    redis_host_and_db,
    store_config,
)

STORE_KINDS = ["redis", pytest.param("redis-cluster", marks=pytest.mark.cluster), "local"]
OFFLINE_KINDS = ["parquet", pytest.param("bigquery", marks=pytest.mark.bigquery)]


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


@pytest.fixture(scope="session")
def emulator() -> Iterator[BigQueryEmulator]:
    """One BigQuery emulator for the session; a missing emulator venv raises (never skips)."""
    running = BigQueryEmulator.start(BIGQUERY_PROJECT)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(params=OFFLINE_KINDS)
def offline(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OfflineHarness]:
    """The offline contract test's store: a parquet folder, or a BigQuery dataset of its own."""
    if request.param == "parquet":
        from fs_augment.stores.offline import ParquetOfflineStore

        folder = tmp_path / "features"
        folder.mkdir()
        harness = OfflineHarness("parquet", ParquetOfflineStore(folder), folder=folder)
    else:
        harness = OfflineHarness("bigquery", new_bigquery_store(request.getfixturevalue("emulator")))
    try:
        yield harness
    finally:
        harness.store.close()
