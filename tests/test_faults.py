"""Faults survived (issue 9, CONTRACT 7): real redis-server processes killed, silenced and failed over.

Every server here is private (tests/support/redis_servers.py): started on a free loopback port,
stopped or killed by PID. Every test carries a timeout; the times asserted are upper bounds on
hanging with generous slack, not benchmarks.

Already covered in tests/stores/test_redis.py and not repeated here: an unreachable port's message
(store, environment, host, retries, no password), a silent server with one retry, ``retry_deadline``
riding out a standalone restart, the adapter-level cluster failover with a deadline, and the
mapping of every redis-py error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient

from fs_augment import FeatureStoreAugmenter
from fs_augment.connections import get_adapter
from fs_augment.errors import StoreError, StoreUnavailableError
from fs_augment.stores import redis as redis_store
from fs_augment.writer import write_namespace
from tests.support.redis_servers import RedisCluster, RedisServer, SilentServer
from tests.support.stores import store_config

RECIPE = {"augmenter": {"features": [
    {"feature_namespace": "user_demographics", "features": ["age", "country_code"], "defaults": {"age": -1}},
    {"feature_namespace": "product_details", "features": ["price"]},
]}}
USER_RECIPE = {"augmenter": {"features": [
    {"feature_namespace": "user_demographics", "features": ["age", "country_code"]},
]}}


def backoff_total(retries: int) -> float:
    """Seconds redis-py sleeps between ``retries`` retries (ExponentialBackoff as configured)."""
    return sum(min(redis_store.BACKOFF_CAP, redis_store.BACKOFF_BASE * 2**k) for k in range(1, retries + 1))


def seed(client: Any, users: int = 16, products: int = 4) -> None:
    """Users ``u0..`` with age ``10 * i`` and country ``C{i}``; products ``p0..`` priced ``i + 0.5``."""
    write_namespace(pd.DataFrame({"user_id": [f"u{i}" for i in range(users)], "age": [10 * i for i in range(users)],
                                  "country_code": [f"C{i}" for i in range(users)]}), "user_demographics", client)
    write_namespace(pd.DataFrame({"product_id": [f"p{i}" for i in range(products)],
                                  "price": [i + 0.5 for i in range(products)]}), "product_details", client)


def pairs(users: int, products: int) -> pd.DataFrame:
    """A spine of users ``u0..`` each with product ``p{i % products}``."""
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(users)],
                         "product_id": [f"p{i % products}" for i in range(users)]})


def mget_calls(server: RedisServer) -> int:
    return int(server.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))


@pytest.fixture
def config_for(make_config_dir: Callable[..., Path]) -> Callable[..., str]:
    """``config_for(host, info={...}, **settings)``: a config folder whose environment ``test`` is that Redis."""

    def make(host: str, *, info: dict[str, Any] | None = None, **settings: Any) -> str:
        connection = {"redis_host": host, "redis_mode": "standalone", **(info or {})}
        return str(make_config_dir(test=store_config("redis", connection_info=connection, **settings)))

    return make


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer.start(tmp_path / "redis") as started:
        yield started


# --- a server killed in the middle of a batch ----------------------------------------------------------

@pytest.mark.timeout(60)
def test_server_killed_mid_batch_raises_and_the_same_augmenter_recovers_after_restart(
        server: RedisServer, config_for: Callable[..., str]) -> None:
    users = 20_000
    for feature in ("age", "country_code"):  # keys user_demographics:<feature>:u:<i>, values "value:<i>"
        server.command("DEBUG", "POPULATE", users, f"user_demographics:{feature}:u")
    server.command("SAVE")  # the restarted server loads it
    retries = 3
    config_dir = config_for(f"127.0.0.1:{server.port}", retry_attempts=retries, connection_timeout=1000,
                            batch_chunk_size=20)  # 40,000 keys: 2,000 MGETs in 500 round trips
    spine = pd.DataFrame({"user_id": [f"u:{i}" for i in range(users)]})
    aug = FeatureStoreAugmenter(USER_RECIPE, env="test", config_dir=config_dir, mode="batch").fit(spine.head(50))
    adapter = get_adapter("test", config_dir)
    rates_before = dict(aug.missing_rate_)

    outcome: dict[str, Any] = {}

    def transform() -> None:
        try:
            outcome["frame"] = aug.transform(spine)
        except BaseException as exc:  # inspected below
            outcome["error"] = exc
        outcome["done"] = time.monotonic()

    before = mget_calls(server)
    worker = threading.Thread(target=transform)
    worker.start()
    deadline = time.monotonic() + 10
    while mget_calls(server) - before < 40 and time.monotonic() < deadline and "done" not in outcome:
        time.sleep(0.002)
    sent = mget_calls(server) - before
    server.kill()
    killed = time.monotonic()
    worker.join(30)
    assert not worker.is_alive(), "the batch lookup hangs after the server was killed"
    assert "frame" not in outcome, f"the batch finished before the kill ({sent} MGETs seen): make it bigger"
    assert 0 < sent < 2000
    error = outcome["error"]
    assert isinstance(error, StoreUnavailableError), repr(error)
    message = str(error)
    assert f"127.0.0.1:{server.port}" in message and "'test'" in message and f"after {retries} retries" in message
    took = outcome["done"] - killed
    assert backoff_total(retries) * 0.9 <= took < backoff_total(retries) + 5  # it retried, then gave up
    print(f"killed after {sent} of 2000 MGETs; raised {took:.2f} s after the kill")
    assert aug.missing_rate_ == rates_before  # nothing half-written into the fitted augmenter
    assert adapter.metrics.snapshot()["errors"] == {"batch:StoreUnavailableError": 1}

    server.restart()
    out = aug.transform(spine)  # same process, same augmenter, same adapter
    assert get_adapter("test", config_dir) is adapter
    assert len(out) == users and out["user_demographics__age"].notna().all()
    assert out["user_demographics__age"].iloc[[0, 12_345, users - 1]].tolist() == [
        "value:0", "value:12345", f"value:{users - 1}"]


# --- a server that accepts connections and never answers ---------------------------------------------

@pytest.mark.timeout(30)
@pytest.mark.parametrize(("retries", "mode", "lookup"), [
    (0, "standalone", "online"), (2, "standalone", "online"), (2, "standalone", "batch"),
    (2, "standalone", "augmenter"), (2, "auto", "online"), (4, "standalone", "batch"),
])
def test_silent_server_fails_within_timeout_times_attempts(
        config_for: Callable[..., str], retries: int, mode: str, lookup: str) -> None:
    timeout = 0.2
    with SilentServer() as silent:
        config_dir = config_for(f"127.0.0.1:{silent.port}", info={"redis_mode": mode},
                                connection_timeout=int(timeout * 1000), retry_attempts=retries, batch_chunk_size=3)
        adapter = get_adapter("test", config_dir)
        specs = USER_RECIPE["augmenter"]["features"]
        calls: dict[str, Callable[[], Any]] = {
            "online": lambda: adapter.online_get_features({"user_id": "u1"}, specs),
            "batch": lambda: adapter.batch_get_features([{"user_id": f"u{i}"} for i in range(50)], specs),
            "augmenter": lambda: FeatureStoreAugmenter(USER_RECIPE, env="test", config_dir=config_dir).fit(
                pd.DataFrame({"user_id": ["u1", "u2"]})),
        }
        start = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="Timeout") as caught:
            calls[lookup]()
        took = time.monotonic() - start
    expected = timeout * (retries + 1) + backoff_total(retries)
    assert timeout * (retries + 1) * 0.9 <= took < expected + 1.5, f"{took:.2f} s (expected about {expected:.2f} s)"
    print(f"silent server, {retries} retries, {mode}, {lookup}: {took:.2f} s (expected about {expected:.2f} s)")
    assert f"after {retries} retr" in str(caught.value) and f"127.0.0.1:{silent.port}" in str(caught.value)


# --- Redis Cluster failover ----------------------------------------------------------------------------

def start_failover_cluster(tmp_path: Path) -> tuple[RedisCluster, RedisServer, RedisServer]:
    """A 3-master cluster with a replica each, seeded; returns it, the master owning u1's age, and another."""
    cluster = RedisCluster.start(tmp_path, masters=3, replicas_per_master=1, node_timeout_ms=2000)
    try:
        client = ClusterClient(host="127.0.0.1", port=cluster.nodes[0].port)
        try:
            seed(client, users=100, products=10)
            owner_port = client.get_node_from_key("user_demographics:age:u1").port
        finally:
            client.close()
        cluster.wait_replicated()
        owner = cluster.node_by_port(owner_port)
        entry = next(node for node in cluster.masters() if node.port != owner_port)
    except BaseException:
        cluster.stop()
        raise
    return cluster, owner, entry


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_cluster_master_killed_fails_cleanly_during_failover_and_recovers_without_recreating(
        tmp_path: Path, config_for: Callable[..., str]) -> None:
    cluster, owner, entry = start_failover_cluster(tmp_path)
    with cluster:
        config_dir = config_for(f"127.0.0.1:{entry.port}", info={"redis_mode": "cluster"},
                                connection_timeout=500, retry_attempts=1)
        spine = pairs(100, 10)
        online = FeatureStoreAugmenter(RECIPE, env="test", config_dir=config_dir, mode="online").fit(spine)
        batch = FeatureStoreAugmenter(RECIPE, env="test", config_dir=config_dir, mode="batch").fit(spine)
        adapter = get_adapter("test", config_dir)
        expected = online.transform(spine)

        owner.kill()
        killed = time.monotonic()
        failures: list[BaseException] = []
        recovered_after = None
        while time.monotonic() - killed < 40:
            start = time.monotonic()
            try:
                row = online.transform(spine.iloc[[1]])
                whole = batch.transform(spine)
            except Exception as exc:  # every failure must be one of ours
                if not isinstance(exc, StoreError):
                    pytest.fail(f"a raw error escaped during the failover: {exc!r}")
                failures.append(exc)
                assert time.monotonic() - start < 5, "a lookup during the failover hung"
                time.sleep(0.05)
                continue
            recovered_after = time.monotonic() - killed
            break
        assert recovered_after is not None, f"no successful lookup 40 s after the kill; last: {failures[-1:]}"
        assert failures, "the kill went unnoticed: no lookup failed"
        assert all(f"127.0.0.1:{entry.port}" in str(f) and "'test'" in str(f) for f in failures)
        pd.testing.assert_frame_equal(row, expected.iloc[[1]])
        pd.testing.assert_frame_equal(whole, expected)
        assert get_adapter("test", config_dir) is adapter  # nothing was recreated
        print(f"failover: {len(failures)} clean failures, recovered {recovered_after:.2f} s after the kill")


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(90)
def test_retry_deadline_rides_out_a_cluster_failover_through_the_augmenter(
        tmp_path: Path, config_for: Callable[..., str]) -> None:
    cluster, owner, entry = start_failover_cluster(tmp_path)
    with cluster:
        config_dir = config_for(f"127.0.0.1:{entry.port}", info={"redis_mode": "cluster"},
                                connection_timeout=500, retry_attempts=1, retry_deadline=10)
        spine = pairs(100, 10)
        online = FeatureStoreAugmenter(RECIPE, env="test", config_dir=config_dir, mode="online").fit(spine)
        expected = online.transform(spine)
        adapter = get_adapter("test", config_dir)

        owner.kill()
        start = time.monotonic()
        row = online.transform(spine.iloc[[1]])  # waits out the failover instead of failing
        rode_out = time.monotonic() - start
        whole = online.set_params(mode="batch").transform(spine)
        pd.testing.assert_frame_equal(row, expected.iloc[[1]])
        pd.testing.assert_frame_equal(whole, expected)
        assert rode_out < 10 + 2
        assert adapter.metrics.snapshot()["errors"] == {}
        print(f"retry_deadline rode out the failover in {rode_out:.2f} s")


# --- the serving policy: on_store_error ---------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_online_lookups_answer_defaults_when_the_store_is_down_and_count_it(
        server: RedisServer, config_for: Callable[..., str]) -> None:
    seed(redis.Redis(**server.client_kwargs()))
    server.command("SAVE")
    config_dir = config_for(f"127.0.0.1:{server.port}", on_store_error="default", retry_attempts=1,
                            connection_timeout=500)
    row = pd.DataFrame({"user_id": ["u3"], "product_id": ["p1"]}, index=["req-7"])
    aug = FeatureStoreAugmenter(RECIPE, env="test", config_dir=config_dir, mode="online").fit(row)
    healthy = aug.transform(row)
    adapter = get_adapter("test", config_dir)
    server.kill()

    degraded = aug.transform(row)
    assert degraded.index.tolist() == ["req-7"]
    assert degraded.dtypes.to_dict() == healthy.dtypes.to_dict()
    assert {k: str(v) for k, v in degraded.dtypes.items() if "__" in k} == aug.feature_dtypes_
    assert degraded["user_demographics__age"].tolist() == [-1.0]  # the recipe's default
    assert degraded["user_demographics__country_code"].isna().all() and degraded["product_details__price"].isna().all()
    assert adapter.online_get_features({"user_id": "u3"}, USER_RECIPE["augmenter"]["features"]) == {
        "user_demographics:age": None, "user_demographics:country_code": None}
    snapshot = adapter.metrics.snapshot()
    assert snapshot["degraded_lookups"] == 2
    assert snapshot["errors"] == {"online:StoreUnavailableError": 2}

    # batch lookups and training never degrade, whatever on_store_error says
    with pytest.raises(StoreUnavailableError):
        aug.set_params(mode="batch").transform(row)
    with pytest.raises(StoreUnavailableError):
        adapter.batch_get_features([{"user_id": "u3"}], USER_RECIPE["augmenter"]["features"])
    with pytest.raises(StoreUnavailableError):
        FeatureStoreAugmenter(RECIPE, env="test", config_dir=config_dir, mode="batch").fit(row)
    with pytest.raises(StoreUnavailableError):  # an online-mode fit is training too: it never pins from nothing
        FeatureStoreAugmenter(RECIPE, env="test", config_dir=config_dir, mode="online").fit(row)
    assert adapter.metrics.snapshot()["errors"]["batch:StoreUnavailableError"] == 3

    server.restart()
    pd.testing.assert_frame_equal(aug.set_params(mode="online").transform(row), healthy)  # nothing degraded was cached


@pytest.mark.timeout(30)
def test_online_lookups_raise_when_the_policy_is_raise(server: RedisServer, config_for: Callable[..., str]) -> None:
    seed(redis.Redis(**server.client_kwargs()))
    config_dir = config_for(f"127.0.0.1:{server.port}", retry_attempts=1, connection_timeout=500)
    row = pd.DataFrame({"user_id": ["u3"], "product_id": ["p1"]})
    aug = FeatureStoreAugmenter(RECIPE, env="test", config_dir=config_dir, mode="online").fit(row)
    server.kill()
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{server.port}"):
        aug.transform(row)
    snapshot = get_adapter("test", config_dir).metrics.snapshot()
    assert snapshot["degraded_lookups"] == 0 and snapshot["errors"] == {"online:StoreUnavailableError": 1}


# --- concurrency ------------------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_threads_share_one_augmenter_over_a_small_pool_without_mixing_answers(
        server: RedisServer, config_for: Callable[..., str]) -> None:
    threads, rounds, pool = 16, 30, 4
    seed(redis.Redis(**server.client_kwargs()), users=threads, products=threads)
    config_dir = config_for(f"127.0.0.1:{server.port}", connection_pool_size=pool, connection_timeout=5000)
    spine = pairs(threads, threads)
    aug = FeatureStoreAugmenter(RECIPE, env="test", config_dir=config_dir, mode="online").fit(spine)
    adapter = get_adapter("test", config_dir)
    adapter.metrics.reset()
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []
    peak_clients = [0]

    def work(i: int) -> None:
        row = pd.DataFrame({"user_id": [f"u{i}"], "product_id": [f"p{i}"]}, index=[i])
        try:
            barrier.wait(10)
            for _ in range(rounds):
                out = aug.transform(row)
                assert out.index.tolist() == [i]
                assert out.loc[i, "user_demographics__age"] == 10 * i
                assert out.loc[i, "user_demographics__country_code"] == f"C{i}"
                assert out.loc[i, "product_details__price"] == i + 0.5
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        peak_clients[0] = max(peak_clients[0], int(server.info("clients")["connected_clients"]) - 1)  # minus ours
        time.sleep(0.005)
    for worker in workers:
        worker.join()
    assert errors == []
    assert adapter.metrics.snapshot()["lookups"] == {"online": threads * rounds}
    assert 1 <= peak_clients[0] <= pool
