"""Redis-specific behaviour of the Redis store, against real servers.

The machine's Redis (the suite's database) where nothing is counted; private
servers (tests/support/redis_servers.py) where commands are counted or where a
password, ACL user, TLS, a cluster or a failure is needed.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient
from redis.exceptions import (
    AuthenticationError,
    ClusterDownError,
    NoPermissionError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)

import fs_augment
from fs_augment.errors import ConfigError, StoreError, StoreUnavailableError
from fs_augment.recipe import FeatureGroup
from fs_augment.stores import redis as redis_store
from fs_augment.stores.base import FeatureRequest
from fs_augment.stores.redis import RedisOptions, RedisStore, open_redis_store, store_for_url
from fs_augment.writer import materialize, write_namespace, write_parquet_namespace
from tests.support.redis_servers import RedisServer, SilentServer, TlsFiles, free_port, make_tls_files
from tests.support.stores import redis_host_and_db, store_config

USER_SPECS = [{"namespace": "user_demographics", "features": ["age", "country_code", "gender"]},
              {"namespace": "user_purchase_summary", "features": ["ltv", "total_purchase_count"]}]
ALL_SPECS = [*USER_SPECS, {"namespace": "product_details", "features": ["price", "category", "brand"]}]
PASSWORD = "pa55-w0rd-never-shown"
ACL_USER, ACL_PASSWORD = "reader", "acl-secret-never-shown"


# --- helpers ---------------------------------------------------------------------------------

def seed_user(client: Any, user: str = "u1", product: str = "p1") -> None:
    """Eight features of one user and one product, as the writer writes them."""
    write_namespace(pd.DataFrame({"user_id": [user], "age": [34], "country_code": ["KR"], "gender": ["f"]}),
                    "user_demographics", client)
    write_namespace(pd.DataFrame({"user_id": [user], "ltv": [1250.5], "total_purchase_count": [7]}),
                    "user_purchase_summary", client)
    write_namespace(pd.DataFrame({"product_id": [product], "price": [99.99], "category": ["shoes"],
                                  "brand": ["acme"]}), "product_details", client)


EXPECTED_U1_P1 = {
    "user_demographics:age": 34, "user_demographics:country_code": "KR", "user_demographics:gender": "f",
    "user_purchase_summary:ltv": 1250.5, "user_purchase_summary:total_purchase_count": 7,
    "product_details:price": 99.99, "product_details:category": "shoes", "product_details:brand": "acme",
}


def command_calls(server: RedisServer) -> Counter[str]:
    """Calls per command so far, from ``INFO commandstats`` of a private server."""
    stats = server.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(value["calls"])
                    for name, value in stats.items() if name.startswith("cmdstat_")})


def commands_during(server: RedisServer, action: Callable[[], Any]) -> tuple[Any, Counter[str]]:
    """Run ``action``; return its result and the commands the server ran meanwhile.

    Reading the statistics costs commands of its own (the connection's handshake, the INFO):
    two reads in a row measure that cost, which is taken off what ``action`` shows.
    """
    first = command_calls(server)
    before = command_calls(server)
    result = action()
    after = command_calls(server)
    own = before - first
    return result, +Counter({name: after[name] - before[name] - own[name] for name in after})


@pytest.fixture
def env_for(make_config_dir: Callable[..., Path]) -> Callable[..., Path]:
    """``env_for(redis_host, **settings)``: a config folder whose environment ``test`` uses that Redis."""

    def make(host: str, *, info: dict[str, Any] | None = None, **settings: Any) -> Path:
        connection = {"redis_host": host, **(info or {})}
        return make_config_dir(test=store_config("redis", connection_info=connection, **settings))

    return make


def machine_host(client: redis.Redis) -> tuple[str, dict[str, Any]]:
    host, db = redis_host_and_db(client)
    return host, {"redis_db": db}


# --- private servers ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private plain server whose commands can be counted."""
    with RedisServer.start(tmp_path_factory.mktemp("plain")) as started:
        yield started


@pytest.fixture
def server_client(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(**server.client_kwargs())
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private server with a password and an ACL user."""
    with RedisServer.start(tmp_path_factory.mktemp("auth"), password=PASSWORD,
                           acl_users=[(ACL_USER, ACL_PASSWORD)]) as started:
        yield started


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles) -> Iterator[RedisServer]:
    with RedisServer.start(tmp_path_factory.mktemp("tls-server"), tls=tls_files) as started:
        yield started


# --- round trips and chunking ------------------------------------------------------------------

def test_online_lookup_is_one_mget_round_trip(server: RedisServer, server_client: redis.Redis,
                                              env_for: Callable[..., Path]) -> None:
    seed_user(server_client)
    with fs_augment.connect("test", env_for(f"127.0.0.1:{server.port}")) as adapter:
        row = {"user_id": "u1", "product_id": "p1"}
        adapter.online_get_features(row, ALL_SPECS)  # connects (handshake commands) once
        got, commands = commands_during(server, lambda: adapter.online_get_features(row, ALL_SPECS))
    assert got == EXPECTED_U1_P1
    assert commands == {"mget": 1}


def test_lookup_without_entities_sends_nothing(server: RedisServer, server_client: redis.Redis,
                                               env_for: Callable[..., Path]) -> None:
    with fs_augment.connect("test", env_for(f"127.0.0.1:{server.port}")) as adapter:
        adapter.online_get_features({"user_id": "u1", "product_id": "p1"}, ALL_SPECS)
        got, commands = commands_during(
            server, lambda: adapter.online_get_features({"user_id": None, "product_id": float("nan")}, ALL_SPECS))
    assert got == dict.fromkeys(EXPECTED_U1_P1)
    assert commands == {}


def test_batch_lookup_chunks_keys(server: RedisServer, server_client: redis.Redis,
                                  env_for: Callable[..., Path]) -> None:
    users = [f"user{i}" for i in range(100)]
    frame = pd.DataFrame({"user_id": users, "age": range(100), "country_code": [f"C{i % 7}" for i in range(100)]})
    assert write_namespace(frame, "user_demographics", server_client) == 200
    specs = [{"namespace": "user_demographics", "features": ["age", "country_code"]}]
    spine = pd.DataFrame({"user_id": [*users, "nobody"]})
    with fs_augment.connect("test", env_for(f"127.0.0.1:{server.port}", batch_chunk_size=7)) as adapter:
        adapter.online_get_features({"user_id": "user0"}, specs)
        frame_out, commands = commands_during(server, lambda: adapter.get_feature_frame(spine, specs))
    assert commands == {"mget": 29}  # 202 keys in chunks of 7
    assert frame_out["user_demographics:age"].tolist() == [*range(100), None]
    assert frame_out["user_demographics:country_code"].tolist()[:100] == [f"C{i % 7}" for i in range(100)]
    assert pd.isna(frame_out["user_demographics:country_code"].iloc[100])


def test_online_lookup_of_many_keys_is_chunked_too(server: RedisServer, server_client: redis.Redis,
                                                   env_for: Callable[..., Path]) -> None:
    users = [f"user{i}" for i in range(40)]
    frame = pd.DataFrame({"user_id": users, "age": range(40), "country_code": [f"C{i % 3}" for i in range(40)]})
    write_namespace(frame, "user_demographics", server_client)
    specs = [{"namespace": "user_demographics", "features": ["age", "country_code"]}]
    plan = (FeatureGroup("user_demographics", ("age", "country_code"), "user_id"),)
    with fs_augment.connect("test", env_for(f"127.0.0.1:{server.port}", batch_chunk_size=30)) as adapter:
        adapter.online_get_features({"user_id": "user0"}, specs)
        small, few = commands_during(server, lambda: adapter.lookup_columns(
            pd.DataFrame({"user_id": users[:15]}), plan, online=True))
        large, many = commands_during(server, lambda: adapter.lookup_columns(
            pd.DataFrame({"user_id": users}), plan, online=True))
    assert few == {"mget": 1}  # 30 keys: one command, as always online
    assert many == {"mget": 3}  # 80 keys: never one command above batch_chunk_size
    assert list(small["user_demographics:age"]) == list(range(15))
    assert list(large["user_demographics:age"]) == list(range(40))
    assert list(large["user_demographics:country_code"]) == [f"C{i % 3}" for i in range(40)]


def test_key_chunks_keep_order_across_features() -> None:
    requests = [FeatureRequest("a", ("x", "y"), ["1", "2", "3"]), FeatureRequest("b", ("z",), ["9"])]
    chunks = list(redis_store.key_chunks(requests, redis_store.KeyPrefixes(), 4))
    assert chunks == [["a:x:1", "a:x:2", "a:x:3", "a:y:1"], ["a:y:2", "a:y:3", "b:z:9"]]
    assert [key for chunk in chunks for key in chunk] == redis_store.all_keys(requests, redis_store.KeyPrefixes())


# --- cluster and mode detection ------------------------------------------------------------------

@pytest.mark.cluster
def test_cluster_lookup_spans_every_master(redis_cluster: Any, cluster_client: ClusterClient,
                                           env_for: Callable[..., Path]) -> None:
    users = [f"user{i}" for i in range(60)]
    frame = pd.DataFrame({"user_id": users, "age": range(60), "country_code": ["KR"] * 60, "gender": ["m"] * 60})
    assert write_namespace(frame, "user_demographics", cluster_client) == 180
    masters = cluster_client.get_primaries()
    assert len(masters) == 3
    assert all(cluster_client.get_redis_connection(node).dbsize() > 0 for node in masters)
    host = f"127.0.0.1:{redis_cluster.nodes[0].port}"
    with fs_augment.connect("test", env_for(host, info={"redis_mode": "cluster"}, batch_chunk_size=50)) as adapter:
        assert adapter.online.describe() == f"redis-cluster {host}"
        got = adapter.batch_get_features([{"user_id": u} for u in [*users, "nobody"]], USER_SPECS[:1])
        online = adapter.online_get_features({"user_id": "user42"}, USER_SPECS[:1])
    assert got["user7"] == {"user_demographics:age": 7, "user_demographics:country_code": "KR",
                            "user_demographics:gender": "m"}
    assert got["nobody"] == dict.fromkeys(got["user7"])
    assert [got[u]["user_demographics:age"] for u in users] == list(range(60))
    assert online == {"user_demographics:age": 42, "user_demographics:country_code": "KR",
                      "user_demographics:gender": "m"}


@pytest.mark.cluster
def test_auto_mode_detects_cluster(redis_cluster: Any, cluster_client: ClusterClient,
                                   env_for: Callable[..., Path]) -> None:
    seed_user(cluster_client)
    host = f"127.0.0.1:{redis_cluster.nodes[1].port}"
    with fs_augment.connect("test", env_for(host, info={"redis_mode": "auto"})) as adapter:
        assert adapter.online_get_features({"user_id": "u1", "product_id": "p1"}, ALL_SPECS) == EXPECTED_U1_P1
        assert adapter.online.is_cluster
        assert isinstance(adapter.online.client, ClusterClient)
        assert adapter.online.describe() == f"redis-cluster {host}"


@pytest.mark.cluster
def test_cluster_with_a_database_number_is_a_config_error(redis_cluster: Any,
                                                          env_for: Callable[..., Path]) -> None:
    host = f"127.0.0.1:{redis_cluster.nodes[0].port}"
    with fs_augment.connect("test", env_for(host, info={"redis_mode": "auto", "redis_db": 9})) as adapter, \
            pytest.raises(ConfigError, match=r"only database 0.*redis_db: 0"):
        adapter.online_get_features({"user_id": "u1"}, USER_SPECS)


def test_auto_mode_detects_standalone(redis_client: redis.Redis, env_for: Callable[..., Path]) -> None:
    seed_user(redis_client)
    host, info = machine_host(redis_client)
    with fs_augment.connect("test", env_for(host, info={**info, "redis_mode": "auto"})) as adapter:
        assert adapter.online_get_features({"user_id": "u1", "product_id": "p1"}, ALL_SPECS) == EXPECTED_U1_P1
        assert not adapter.online.is_cluster
        assert adapter.online.describe() == f"redis {host}/{info['redis_db']}"


# --- authentication and TLS ------------------------------------------------------------------------

def test_password_from_the_environment(auth_server: RedisServer, env_for: Callable[..., Path],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seed_user(redis.Redis(host="127.0.0.1", port=auth_server.port, password=PASSWORD))
    monkeypatch.setenv("FS_TEST_REDIS_PASSWORD", PASSWORD)
    config_dir = env_for(f"127.0.0.1:{auth_server.port}", info={"redis_password": "${FS_TEST_REDIS_PASSWORD}"})
    with fs_augment.connect("test", config_dir) as adapter:
        assert adapter.online_get_features({"user_id": "u1", "product_id": "p1"}, ALL_SPECS) == EXPECTED_U1_P1
        assert PASSWORD not in repr(adapter) and PASSWORD not in adapter.online.describe()


@pytest.mark.parametrize("password", [None, "wrong-password-also-secret"])
def test_failed_authentication_names_the_host_not_the_password(
        auth_server: RedisServer, env_for: Callable[..., Path], password: str | None) -> None:
    info = {"redis_password": password} if password else {}
    with fs_augment.connect("test", env_for(f"127.0.0.1:{auth_server.port}", info=info)) as adapter, \
            pytest.raises(StoreUnavailableError) as caught:
        adapter.online_get_features({"user_id": "u1"}, USER_SPECS)
    message = str(caught.value)
    assert "authentication failed" in message
    assert f"127.0.0.1:{auth_server.port}" in message and "'test'" in message
    assert PASSWORD not in message and (password is None or password not in message)


def test_acl_user_in_the_url(auth_server: RedisServer, env_for: Callable[..., Path]) -> None:
    seed_user(redis.Redis(host="127.0.0.1", port=auth_server.port, password=PASSWORD))
    url = f"redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{auth_server.port}/0"
    with fs_augment.connect("test", env_for(url)) as adapter:
        assert adapter.online_get_features({"user_id": "u1", "product_id": "p1"}, ALL_SPECS) == EXPECTED_U1_P1
        assert adapter.online.describe() == f"redis 127.0.0.1:{auth_server.port}/0"
        assert ACL_PASSWORD not in repr(adapter)
    bad = f"redis://{ACL_USER}:not-{ACL_PASSWORD}@127.0.0.1:{auth_server.port}/0"
    with fs_augment.connect("test", env_for(bad)) as adapter, pytest.raises(StoreUnavailableError) as caught:
        adapter.online_get_features({"user_id": "u1"}, USER_SPECS)
    assert "authentication failed" in str(caught.value) and ACL_PASSWORD not in str(caught.value)


def test_acl_user_in_config_keys(auth_server: RedisServer, env_for: Callable[..., Path]) -> None:
    seed_user(redis.Redis(host="127.0.0.1", port=auth_server.port, password=PASSWORD))
    info = {"redis_username": ACL_USER, "redis_password": ACL_PASSWORD}
    with fs_augment.connect("test", env_for(f"127.0.0.1:{auth_server.port}", info=info)) as adapter:
        assert adapter.online_get_features({"user_id": "u1", "product_id": "p1"}, ALL_SPECS) == EXPECTED_U1_P1


def test_permission_denied_is_a_store_error_not_unavailable(auth_server: RedisServer,
                                                            env_for: Callable[..., Path]) -> None:
    auth_server.command("ACL", "SETUSER", "nomget", "on", ">nomget-pw", "~*", "+@all", "-mget")
    url = f"redis://nomget:nomget-pw@127.0.0.1:{auth_server.port}"
    with fs_augment.connect("test", env_for(url)) as adapter, pytest.raises(StoreError) as caught:
        adapter.online_get_features({"user_id": "u1"}, USER_SPECS)
    assert not isinstance(caught.value, StoreUnavailableError)
    assert "NOPERM" in str(caught.value) or "permission" in str(caught.value)
    assert "nomget-pw" not in str(caught.value)


def test_auto_mode_without_info_permission_asks_for_redis_mode(auth_server: RedisServer,
                                                              env_for: Callable[..., Path]) -> None:
    auth_server.command("ACL", "SETUSER", "noinfo", "on", ">noinfo-pw", "~*", "+@all", "-info")
    url = f"redis://noinfo:noinfo-pw@127.0.0.1:{auth_server.port}"
    with fs_augment.connect("test", env_for(url)) as adapter, pytest.raises(StoreError, match="redis_mode"):
        adapter.online_get_features({"user_id": "u1"}, USER_SPECS)
    with fs_augment.connect("test", env_for(url, info={"redis_mode": "standalone"})) as adapter:
        assert adapter.online_get_features({"user_id": "nobody"}, USER_SPECS[:1])["user_demographics:age"] is None


def test_tls_with_a_ca_file(tls_server: RedisServer, tls_files: TlsFiles, env_for: Callable[..., Path]) -> None:
    seed_user(redis.Redis(**tls_server.client_kwargs()))
    info = {"redis_ssl_ca_certs": str(tls_files.ca_cert)}
    for host in (f"rediss://127.0.0.1:{tls_server.port}", f"127.0.0.1:{tls_server.port}"):
        with fs_augment.connect("test", env_for(host, info=info)) as adapter:
            assert adapter.online_get_features({"user_id": "u1", "product_id": "p1"}, ALL_SPECS) == EXPECTED_U1_P1


def test_tls_without_the_ca_fails_verification(tls_server: RedisServer, env_for: Callable[..., Path]) -> None:
    with fs_augment.connect("test", env_for(f"rediss://127.0.0.1:{tls_server.port}")) as adapter, \
            pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{tls_server.port}"):
        adapter.online_get_features({"user_id": "u1"}, USER_SPECS)


def test_ca_file_with_a_plain_url_is_a_config_error_when_the_config_loads(env_for: Callable[..., Path]) -> None:
    info = {"redis_ssl_ca_certs": "/etc/ssl/ca.pem"}
    with pytest.raises(ConfigError, match=r"test\.yaml: feature_store\.connection_info\.redis_ssl_ca_certs is set "
                                          r"but .*use rediss://127\.0\.0\.1:6379"):
        fs_augment.config.load_config("test", env_for("redis://127.0.0.1:6379/9", info=info))
    options = RedisOptions("redis://127.0.0.1:6379/9", ssl_ca_certs="/etc/ssl/ca.pem", env="prod")
    with RedisStore(options) as store, pytest.raises(ConfigError, match=r"'prod'.*use rediss://127\.0\.0\.1:6379"):
        store.fetch([FeatureRequest("user_demographics", ["age"], ["u1"])], online=True)  # built by hand


@pytest.mark.parametrize("info", [{"redis_db": 3}, {"redis_host": "redis://127.0.0.1:7000/2"}])
def test_cluster_mode_with_a_database_number_is_a_config_error_when_the_config_loads(
        env_for: Callable[..., Path], info: dict[str, Any]) -> None:
    key = "redis_db" if "redis_db" in info else "redis_host"
    host = info.pop("redis_host", "127.0.0.1:7000")
    with pytest.raises(ConfigError, match=rf"test\.yaml: feature_store\.connection_info\.{key} asks for database "
                                          r"\d, but redis_mode is 'cluster'.*set redis_db: 0"):
        fs_augment.config.load_config("test", env_for(host, info={**info, "redis_mode": "cluster"}))


# --- failures, retries and the error mapping ------------------------------------------------------------

def test_unreachable_server_names_store_environment_and_host(env_for: Callable[..., Path]) -> None:
    port = free_port()
    info = {"redis_db": 3, "redis_password": PASSWORD}
    with fs_augment.connect("test", env_for(f"127.0.0.1:{port}", info=info, retry_attempts=2)) as adapter:
        for lookup in (lambda: adapter.online_get_features({"user_id": "u1"}, USER_SPECS),
                       lambda: adapter.batch_get_features([{"user_id": "u1"}], USER_SPECS)):
            with pytest.raises(StoreUnavailableError) as caught:
                lookup()
            message = str(caught.value)
            assert f"redis 127.0.0.1:{port}/3" in message and "'test'" in message and "2 retries" in message
            assert PASSWORD not in message


def test_silent_server_times_out(env_for: Callable[..., Path]) -> None:
    with SilentServer() as silent:
        config_dir = env_for(f"127.0.0.1:{silent.port}", info={"redis_mode": "standalone"},
                             connection_timeout=150, retry_attempts=1)
        with fs_augment.connect("test", config_dir) as adapter:
            start = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="Timeout"):
                adapter.online_get_features({"user_id": "u1"}, USER_SPECS)
            assert time.monotonic() - start < 3


def test_retry_deadline_rides_out_a_restart(tmp_path: Path, env_for: Callable[..., Path]) -> None:
    with RedisServer.start(tmp_path) as server:
        seed_user(redis.Redis(**server.client_kwargs()))
        server.command("SAVE")  # the restarted server loads this snapshot
        config_dir = env_for(f"127.0.0.1:{server.port}", retry_deadline=20, retry_attempts=1)
        with fs_augment.connect("test", config_dir) as adapter:
            row = {"user_id": "u1", "product_id": "p1"}
            assert adapter.online_get_features(row, ALL_SPECS) == EXPECTED_U1_P1
            server.stop()
            restarter = threading.Timer(1.0, server.restart)
            restarter.start()
            try:
                start = time.monotonic()
                assert adapter.online_get_features(row, ALL_SPECS) == EXPECTED_U1_P1
                assert time.monotonic() - start >= 0.9
            finally:
                restarter.join()


def test_without_retry_deadline_a_restart_fails_fast(tmp_path: Path, env_for: Callable[..., Path]) -> None:
    with RedisServer.start(tmp_path) as server, \
            fs_augment.connect("test", env_for(f"127.0.0.1:{server.port}", retry_attempts=1)) as adapter:
        adapter.online_get_features({"user_id": "u1"}, USER_SPECS)
        server.stop()
        start = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            adapter.online_get_features({"user_id": "u1"}, USER_SPECS)
        assert time.monotonic() - start < 2


@pytest.mark.cluster
@pytest.mark.slow
def test_retry_deadline_rides_out_a_cluster_failover(tmp_path: Path, env_for: Callable[..., Path]) -> None:
    from tests.support.redis_servers import RedisCluster

    with RedisCluster.start(tmp_path, masters=3, replicas_per_master=1, node_timeout_ms=1000) as cluster:
        client = ClusterClient(host="127.0.0.1", port=cluster.nodes[0].port)
        seed_user(client)
        slot_owner = client.get_node_from_key("user_demographics:age:u1")
        client.close()
        cluster.wait_replicated()  # replication is asynchronous: the replica must hold the keys first
        entry = next(node for node in cluster.masters() if node.port != slot_owner.port)
        host = f"127.0.0.1:{entry.port}"
        config_dir = env_for(host, info={"redis_mode": "cluster"}, retry_deadline=30, retry_attempts=2,
                             connection_timeout=500)
        with fs_augment.connect("test", config_dir) as adapter:
            row = {"user_id": "u1", "product_id": "p1"}
            assert adapter.online_get_features(row, ALL_SPECS) == EXPECTED_U1_P1
            cluster.node_by_port(slot_owner.port).kill()
            assert adapter.online_get_features(row, ALL_SPECS) == EXPECTED_U1_P1


@pytest.mark.parametrize(("error", "unavailable", "says"), [
    (redis.ConnectionError("Error 111 connecting"), True, "unavailable"),
    (redis.TimeoutError("Timeout reading from socket"), True, "unavailable"),
    (ClusterDownError("CLUSTERDOWN The cluster is down"), True, "unavailable"),
    (TryAgainError("TRYAGAIN"), True, "unavailable"),
    (RedisClusterException("Redis Cluster cannot be connected"), True, "unavailable"),
    (AuthenticationError("invalid username-password pair"), True, "authentication failed"),
    (ResponseError("WRONGTYPE Operation against a key"), False, "answered with an error"),
    (NoPermissionError("NOPERM no permissions"), False, "answered with an error"),
])
def test_every_redis_error_is_translated(error: Exception, unavailable: bool, says: str) -> None:
    store = RedisStore(RedisOptions("10.0.0.1:6380", db=2, env="prod", password=None, retry_attempts=3))
    translated = store.translate(error)
    assert isinstance(translated, StoreError)
    assert isinstance(translated, StoreUnavailableError) is unavailable
    assert says in str(translated) and "10.0.0.1:6380" in str(translated) and "'prod'" in str(translated)


def test_cluster_connect_failure_caused_by_auth_is_an_authentication_error() -> None:
    store = RedisStore(RedisOptions("10.0.0.1:7000", env="prod", mode="cluster"))
    try:
        raise RedisClusterException("Redis Cluster cannot be connected") from AuthenticationError("WRONGPASS")
    except RedisClusterException as exc:
        translated = store.translate(exc)
    assert "authentication failed for 10.0.0.1:7000" in str(translated)


def test_a_password_in_an_error_text_is_masked() -> None:
    from fs_augment.config import Secret

    store = RedisStore(RedisOptions("10.0.0.1:6380", password=Secret(PASSWORD)))
    assert PASSWORD not in str(store.translate(redis.ConnectionError(f"bad {PASSWORD}")))


# --- pool, cache, lifecycle, logging ----------------------------------------------------------------------

def test_threads_wait_for_a_small_pool(redis_client: redis.Redis, env_for: Callable[..., Path]) -> None:
    seed_user(redis_client)
    host, info = machine_host(redis_client)
    errors: list[BaseException] = []
    with fs_augment.connect("test", env_for(host, info=info, connection_pool_size=2)) as adapter:

        def work() -> None:
            try:
                for _ in range(25):
                    assert adapter.online_get_features({"user_id": "u1", "product_id": "p1"},
                                                       ALL_SPECS) == EXPECTED_U1_P1
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []


def test_cache_serves_repeated_online_lookups_until_expiry(server: RedisServer, server_client: redis.Redis,
                                                           env_for: Callable[..., Path]) -> None:
    seed_user(server_client)
    row = {"user_id": "u1", "product_id": "p1"}
    with fs_augment.connect("test", env_for(f"127.0.0.1:{server.port}", cache_ttl=0.5)) as adapter:
        first, commands = commands_during(server, lambda: adapter.online_get_features(row, ALL_SPECS))
        assert first == EXPECTED_U1_P1 and commands["mget"] == 1
        server_client.set("user_demographics:age:u1", "35")
        second, commands = commands_during(server, lambda: adapter.online_get_features(row, ALL_SPECS))
        assert second == EXPECTED_U1_P1 and commands == {}
        _, commands = commands_during(server, lambda: [adapter.batch_get_features([row], ALL_SPECS)
                                                       for _ in range(2)])
        assert commands == {"mget": 2}
        time.sleep(0.6)
        third, commands = commands_during(server, lambda: adapter.online_get_features(row, ALL_SPECS))
        assert third["user_demographics:age"] == 35 and commands == {"mget": 1}


def test_store_is_never_pickled(redis_client: redis.Redis, redis_url: str) -> None:
    store = store_for_url(redis_url)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(store)
    adapter = fs_augment.FeatureStoreAdapter(store)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(adapter)


def test_close_and_reuse(redis_client: redis.Redis, redis_url: str) -> None:
    seed_user(redis_client)
    requests = [FeatureRequest("user_demographics", ("age",), ["u1"])]
    with store_for_url(redis_url) as store:
        assert store.fetch(requests, online=True) == [[[34]]]
        store.close()
        assert store.fetch(requests) == [[[34]]]  # reconnects


def test_debug_logging_counts_keys_and_never_logs_values(
        redis_client: redis.Redis, env_for: Callable[..., Path], caplog: pytest.LogCaptureFixture) -> None:
    redis_client.set("user_demographics:age:u1", '"secret-value"')
    host, info = machine_host(redis_client)
    caplog.set_level(logging.DEBUG, logger="fs_augment")
    with fs_augment.connect("test", env_for(host, info=info)) as quiet:
        quiet.online_get_features({"user_id": "u1"}, USER_SPECS[:1])
    assert not [r for r in caplog.records if r.name == "fs_augment.stores.redis"]
    with fs_augment.connect("test", env_for(host, info=info, enable_debug_logging=True)) as loud:
        loud.online_get_features({"user_id": "u1"}, USER_SPECS[:1])
    lines = [r.getMessage() for r in caplog.records if r.name == "fs_augment.stores.redis"]
    assert len(lines) == 1 and "online fetch: 3 keys" in lines[0] and " ms" in lines[0]
    assert not any("secret-value" in r.getMessage() for r in caplog.records)


def test_list_and_has_feature(redis_client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_user(redis_client)
    redis_client.set("user_demographicsX:other:u1", "1")  # a namespace sharing a prefix
    with store_for_url(redis_url) as store:
        assert store.list_features("user_demographics") == ["age", "country_code", "gender"]
        assert store.list_features("nothing_here") == []
        assert store.has_feature("user_demographics", "age")
        assert not store.has_feature("user_demographics", "colour")
        assert not store.has_feature("user_demographic*", "age")  # glob characters are literal
        redis_client.mset({f"filler:f:{i}": 1 for i in range(3000)})
        monkeypatch.setattr(redis_store, "SCAN_MAX_KEYS", 1000)
        assert store.has_feature("user_demographics", "colour")  # bound hit: inconclusive, not "unknown"


def test_open_redis_store_reads_the_config(make_config_dir: Callable[..., Path]) -> None:
    config_dir = make_config_dir(test=store_config("redis", connection_timeout=1500, retry_attempts=4,
                                                   connection_pool_size=3, batch_chunk_size=11,
                                                   connection_info={"redis_host": "cache:6390", "redis_db": 2}))
    store = open_redis_store(fs_augment.load_config("test", config_dir))
    assert store.options == RedisOptions("cache:6390", db=2, pool_size=3, timeout=1.5, retry_attempts=4,
                                         batch_chunk_size=11, env="test")
    assert repr(store) == "RedisStore('redis cache:6390/2', env='test')"


# --- the writer -----------------------------------------------------------------------------------------

def test_writer_keeps_the_latest_row_and_skips_missing_values(redis_client: redis.Redis) -> None:
    frame = pd.DataFrame({
        "user_id": ["u1", "u1", "u2", None, 3.0],
        "event_timestamp": pd.to_datetime(["2024-03-01", "2024-01-01", "2024-01-01", "2024-01-01", "2024-01-01"]),
        "age": [34, 33, None, 50, 20],
        "country_code": ["KR", "JP", "US", "FR", None],
    })
    assert write_namespace(frame, "user_demographics", redis_client) == 4
    assert redis_client.get("user_demographics:age:u1") == b"34.0"  # a float column stays float
    assert redis_client.get("user_demographics:country_code:u1") == b'"KR"'
    assert redis_client.exists("user_demographics:age:u2") == 0
    assert redis_client.get("user_demographics:age:3") == b"20.0"
    assert redis_client.exists("user_demographics:country_code:3") == 0
    assert not redis_client.keys("user_demographics:*:None")


def test_rewriting_a_value_that_became_missing_deletes_the_stale_key(redis_client: redis.Redis) -> None:
    write_namespace(pd.DataFrame({"user_id": ["u1", "u2"], "age": [34, 51]}), "user_demographics", redis_client)
    assert write_namespace(pd.DataFrame({"user_id": ["u1", "u2"], "age": [35, None]}),
                           "user_demographics", redis_client) == 1
    assert redis_client.get("user_demographics:age:u1") == b"35.0"
    assert redis_client.exists("user_demographics:age:u2") == 0


def test_writer_ttl_sets_expiry(redis_client: redis.Redis) -> None:
    frame = pd.DataFrame({"user_id": ["u1"], "age": [34]})
    write_namespace(frame, "user_demographics", redis_client, ttl=100)
    assert 0 < redis_client.ttl("user_demographics:age:u1") <= 100
    write_namespace(frame, "user_demographics", redis_client, ttl=1.5)
    assert 0 < redis_client.pttl("user_demographics:age:u1") <= 1500
    write_namespace(frame, "user_demographics", redis_client)
    assert redis_client.ttl("user_demographics:age:u1") == -1
    with pytest.raises(ValueError, match="ttl"):
        write_namespace(frame, "user_demographics", redis_client, ttl=0)


def test_writer_accepts_a_url_and_names_a_missing_entity_column(redis_client: redis.Redis, redis_url: str) -> None:
    frame = pd.DataFrame({"product_id": ["p1"], "price": [9.5]})
    assert write_namespace(frame, "product_details", redis_url, chunk_size=1) == 1
    assert redis_client.get("product_details:price:p1") == b"9.5"
    with pytest.raises(fs_augment.errors.SpineError, match=r"'user_id'.*product_id, price"):
        write_namespace(frame, "user_demographics", redis_client)


def test_materialize_from_parquet_into_redis(redis_client: redis.Redis, make_config_dir: Callable[..., Path],
                                             tmp_path: Path) -> None:
    folder = tmp_path / "offline"
    write_parquet_namespace(pd.DataFrame({
        "user_id": ["u1", "u1", "u2"],
        "event_timestamp": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-01-15"], utc=True),
        "age": [33, 34, 51], "country_code": ["KR", "KR", "DE"],
    }), "user_demographics", folder)
    write_parquet_namespace(pd.DataFrame({"product_id": [1, 2], "price": [9.5, 12.0]}), "product_details", folder)
    host, db = redis_host_and_db(redis_client)
    config_dir = make_config_dir(test=store_config("redis", connection_info={
        "redis_host": host, "redis_db": db, "offline_store_uri": f"file://{folder}"}))
    specs = [{"namespace": "user_demographics", "features": ["age", "country_code"]},
             {"namespace": "product_details", "features": ["price"]}]
    assert materialize(specs, env="test", config_dir=config_dir, progress=True) == {
        "user_demographics": 4, "product_details": 2}
    with fs_augment.connect("test", config_dir) as adapter:
        got = adapter.batch_get_features([{"user_id": "u1", "product_id": 2}, {"user_id": "u2", "product_id": 1}],
                                         specs)
    assert got == {"u1": {"user_demographics:age": 34, "user_demographics:country_code": "KR"},
                   "u2": {"user_demographics:age": 51, "user_demographics:country_code": "DE"},
                   "2": {"product_details:price": 12.0}, "1": {"product_details:price": 9.5}}


def test_materialize_needs_an_offline_store(redis_client: redis.Redis, env_for: Callable[..., Path]) -> None:
    host, info = machine_host(redis_client)
    with pytest.raises(ConfigError, match="offline_store_uri"):
        materialize(USER_SPECS, env="test", config_dir=env_for(host, info=info))


def test_the_online_cache_keeps_values_not_absences(redis_client: redis.Redis, redis_url: str,
                                                    make_config_dir: Callable[..., Path]) -> None:
    from tests.support.stores import redis_host_and_db

    host, db = redis_host_and_db(redis_client)
    demographics = [{"namespace": "user_demographics", "features": ["age", "country_code", "gender"]}]
    config_dir = make_config_dir(test={"feature_store": {"provider": "redis", "cache_ttl": 3600, "connection_info": {
        "redis_host": host, "redis_db": db, "redis_mode": "standalone"}}})
    with fs_augment.connect("test", config_dir) as adapter:
        assert adapter.online_get_features({"user_id": "new"}, demographics)["user_demographics:age"] is None
        redis_client.mset({"user_demographics:age:new": "41", "user_demographics:country_code:new": "KR",
                           "user_demographics:gender:new": "F"})  # materialised a moment later
        assert adapter.online_get_features({"user_id": "new"}, demographics)["user_demographics:age"] == 41
        redis_client.set("user_demographics:age:new", "42")  # present values are served from the cache
        assert adapter.online_get_features({"user_id": "new"}, demographics)["user_demographics:age"] == 41


def test_writer_goes_through_the_store_interface(redis_client: redis.Redis, redis_url: str) -> None:
    frame = pd.DataFrame({"user_id": ["u1"], "age": [34]})
    with store_for_url(redis_url) as store:
        assert store.writable
        assert write_namespace(frame, "user_demographics", store) == 1
    assert redis_client.get("user_demographics:age:u1") == b"34"
    wrapped = RedisStore.for_client(redis_client)
    host, db = redis_host_and_db(redis_client)
    assert wrapped.describe() == f"redis {host}/{db}"
    assert write_namespace(frame.assign(age=[35]), "user_demographics", wrapped) == 1
    wrapped.close()  # a client it was given stays open: its owner closes it
    assert redis_client.get("user_demographics:age:u1") == b"35"


def test_writer_to_an_unreachable_redis_is_store_unavailable() -> None:
    frame = pd.DataFrame({"user_id": ["u1"], "age": [34]})
    port = free_port()
    with pytest.raises(StoreUnavailableError, match=rf"127\.0\.0\.1:{port}"):
        write_namespace(frame, "user_demographics", f"redis://127.0.0.1:{port}/0")
