"""Lookup metrics in process and pushed to a real HTTP endpoint on 127.0.0.1 (issue 9).

The endpoint is ``http.server`` in a thread of the test process: it records what it receives, and
can answer slowly, answer 500, or not exist at all. Times asserted are upper bounds with generous
slack (a slow endpoint must not slow lookups), not benchmarks.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

import fs_augment
from fs_augment import FeatureStoreAugmenter, monitoring
from fs_augment.config import mask_url
from fs_augment.connections import close_all, get_adapter
from fs_augment.errors import ConfigError, FeatureQualityWarning, StoreUnavailableError
from fs_augment.monitoring import LookupMetrics, MetricsPusher
from fs_augment.writer import write_namespace
from tests.support.redis_servers import RedisServer, free_port
from tests.support.stores import redis_host_and_db, store_config

SPECS = [{"namespace": "user_demographics", "features": ["age", "country_code"]}]
RECIPE = {"augmenter": {"features": [{"feature_namespace": "user_demographics", "features": ["age", "country_code"]}]}}
PASSWORD = "monitoring-pa55-never-pushed"
VALUE = "secret-feature-value-never-pushed"


class Endpoint:
    """A monitoring endpoint on 127.0.0.1 recording the JSON it receives.

    ``status`` is the answer's HTTP status; ``delay`` seconds are slept before answering.
    """

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.requests = 0
        self.status = 200
        self.delay = 0.0
        self.received = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with endpoint.received:
                    endpoint.requests += 1
                time.sleep(endpoint.delay)
                status = endpoint.status
                if status == 200:
                    with endpoint.received:
                        endpoint.payloads.append({"content_type": self.headers.get("Content-Type"),
                                                  "authorization": self.headers.get("Authorization"),
                                                  "path": self.path, **json.loads(body)})
                        endpoint.received.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until ``count`` payloads arrived (fails the test after ``timeout``)."""
        with self.received:
            if not self.received.wait_for(lambda: len(self.payloads) >= count, timeout):
                pytest.fail(f"the endpoint got {len(self.payloads)} payload(s), not {count}, in {timeout} s")
            return list(self.payloads)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    started = Endpoint()
    yield started
    started.close()


@pytest.fixture
def seeded(redis_client: redis.Redis) -> redis.Redis:
    write_namespace(pd.DataFrame({"user_id": ["u1", "u2", "u3"], "age": [34, 51, 19],
                                  "country_code": ["KR", "US", VALUE]}), "user_demographics", redis_client)
    return redis_client


@pytest.fixture
def config_dir(make_config_dir: Callable[..., Path], seeded: redis.Redis) -> Callable[..., str]:
    """``config_dir(**settings)``: environment ``test`` on the suite's Redis database."""
    host, db = redis_host_and_db(seeded)

    def make(**settings: Any) -> str:
        info = {"redis_host": host, "redis_db": db, "redis_mode": "standalone", **settings.pop("info", {})}
        return str(make_config_dir(test=store_config("redis", connection_info=info, **settings)))

    return make


# --- in process ------------------------------------------------------------------------------------------

def test_snapshot_counts_lookups_latency_missing_cache_and_errors(config_dir: Callable[..., str]) -> None:
    folder = config_dir(enable_monitoring=True, cache_ttl=60)
    adapter = get_adapter("test", folder)
    aug = FeatureStoreAugmenter(RECIPE, env="test", config_dir=folder, mode="batch")
    aug.fit(pd.DataFrame({"user_id": ["u1", "u2", "nobody", None]}))  # 2 of 4 rows missing
    aug.set_params(mode="online")
    for _ in range(3):
        aug.transform(pd.DataFrame({"user_id": ["u1"]}))  # online: 1 store read, then 2 cache hits
    aug.transform(pd.DataFrame({"user_id": ["nobody"]}))
    snapshot = adapter.metrics.snapshot()
    assert snapshot["lookups"] == {"batch": 1, "online": 4}
    assert set(snapshot["latency_seconds"]["online"]) == {"p50", "p95", "p99", "count"}
    online = snapshot["latency_seconds"]["online"]
    assert 0 < online["p50"] <= online["p95"] <= online["p99"] < 5 and online["count"] == 4
    # missing per feature, over every transformed row (4 + 3 + 1), before defaults
    assert snapshot["missing_rate_by_feature"] == {"user_demographics:age": 3 / 8,
                                                   "user_demographics:country_code": 3 / 8}
    assert snapshot["missing_rate"]["online"] == 2 / 8
    assert snapshot["cache"]["hits"] == 4 and snapshot["cache"]["misses"] == 2
    assert snapshot["cache"]["hit_rate"] == pytest.approx(4 / 6)
    assert snapshot["errors"] == {} and snapshot["degraded_lookups"] == 0
    json.dumps(snapshot)  # plain data


def test_invalid_values_are_counted_per_feature(config_dir: Callable[..., str], seeded: redis.Redis) -> None:
    folder = config_dir(enable_monitoring=True)
    aug = FeatureStoreAugmenter(RECIPE, env="test", config_dir=folder).fit(pd.DataFrame({"user_id": ["u1", "u2"]}))
    seeded.set("user_demographics:age:u3", "not a number")
    with pytest.warns(FeatureQualityWarning, match="user_demographics__age"):
        aug.transform(pd.DataFrame({"user_id": ["u3", "u1"]}))
    assert get_adapter("test", folder).metrics.snapshot()["invalid_by_feature"] == {"user_demographics:age": 1}


def test_per_feature_counts_only_with_enable_monitoring(config_dir: Callable[..., str]) -> None:
    folder = config_dir()
    FeatureStoreAugmenter(RECIPE, env="test", config_dir=folder).fit(pd.DataFrame({"user_id": ["u1", "nobody"]}))
    snapshot = get_adapter("test", folder).metrics.snapshot()
    assert snapshot["lookups"] == {"batch": 1}  # always counted
    assert snapshot["missing_rate_by_feature"] == {}
    assert snapshot["cache"] == {"hits": 0, "misses": 0, "hit_rate": None}


def test_errors_are_counted_by_kind_and_class(make_config_dir: Callable[..., Path]) -> None:
    folder = make_config_dir(test=store_config("redis", connection_timeout=200, retry_attempts=0,
                                               connection_info={"redis_host": f"127.0.0.1:{free_port()}"}))
    adapter = fs_augment.connect("test", folder)
    for lookup in (lambda: adapter.online_get_features({"user_id": "u1"}, SPECS),
                   lambda: adapter.batch_get_features([{"user_id": "u1"}], SPECS)):
        with pytest.raises(StoreUnavailableError):
            lookup()
    assert adapter.metrics.snapshot()["errors"] == {"online:StoreUnavailableError": 1,
                                                    "batch:StoreUnavailableError": 1}
    adapter.close()


def test_debug_logging_shows_counts_and_timings_never_values(
        config_dir: Callable[..., str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="fs_augment")
    quiet = config_dir()
    FeatureStoreAugmenter(RECIPE, env="test", config_dir=quiet).fit(pd.DataFrame({"user_id": ["u3"]}))
    assert not [r for r in caplog.records if r.name == "fs_augment.lookups"]
    loud = config_dir(enable_debug_logging=True)
    aug = FeatureStoreAugmenter(RECIPE, env="test", config_dir=loud, mode="batch")
    aug.fit(pd.DataFrame({"user_id": ["u3", "u1"]}))
    aug.set_params(mode="online").transform(pd.DataFrame({"user_id": ["u3"]}))
    lookups = [r.getMessage() for r in caplog.records if r.name == "fs_augment.lookups"]
    assert len(lookups) == 2
    assert lookups[0].startswith("batch lookup: 4 keys, 0 missing,") and " ms " in lookups[0]
    assert lookups[1].startswith("online lookup: 2 keys, 0 missing,")
    assert all("(env test)" in line for line in lookups)
    assert VALUE not in caplog.text and "'KR'" not in caplog.text


# --- pushed to an endpoint ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer.start(tmp_path_factory.mktemp("monitoring"), password=PASSWORD) as started:
        write_namespace(pd.DataFrame({"user_id": ["u1"], "age": [34], "country_code": [VALUE]}),
                        "user_demographics", redis.Redis(**started.client_kwargs()))
        yield started


@pytest.mark.timeout(30)
def test_snapshots_reach_the_endpoint_without_secrets_or_values(
        auth_server: RedisServer, endpoint: Endpoint, make_config_dir: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitoring, "PUSH_INTERVAL", 0.2)
    monkeypatch.setenv("FS_TEST_MONITORING_PW", PASSWORD)
    folder = make_config_dir(test=store_config(
        "redis", enable_monitoring=True, monitoring_endpoint=endpoint.url,
        connection_info={"redis_host": f"127.0.0.1:{auth_server.port}", "redis_password": "${FS_TEST_MONITORING_PW}"}))
    adapter = fs_augment.connect("test", folder)
    for _ in range(5):
        assert adapter.online_get_features({"user_id": "u1"}, SPECS)["user_demographics:country_code"] == VALUE
    endpoint.wait_for(2)
    adapter.close()  # flushes once more
    payloads = endpoint.payloads
    last = payloads[-1]
    assert last["content_type"] == "application/json" and last["path"] == "/metrics"
    assert last["schema"] == monitoring.PAYLOAD_SCHEMA == "fs_augment.metrics/1"
    assert last["source"]["env"] == "test" and last["source"]["store"] == f"redis 127.0.0.1:{auth_server.port}/0"
    assert {"host", "pid", "version"} <= set(last["source"]) and last["dropped_snapshots"] == 0
    sequences = [s["sequence"] for p in payloads for s in p["snapshots"]]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    newest = last["snapshots"][-1]
    assert {"time", "lookups", "latency_seconds", "missing_rate_by_feature", "errors", "cache"} <= set(newest)
    everything = json.dumps(endpoint.payloads)
    assert PASSWORD not in everything and VALUE not in everything
    assert newest["lookups"] == {"online": 5}


@pytest.mark.timeout(30)
def test_a_push_comes_after_every_lookups_without_waiting_for_the_interval(endpoint: Endpoint) -> None:
    metrics = LookupMetrics()
    pusher = MetricsPusher(metrics, endpoint.url, interval=60, every_lookups=20)
    try:
        for _ in range(19):
            metrics.record("online", 0.001, values=2, missing=0)
        time.sleep(0.3)
        assert endpoint.payloads == []
        metrics.record("online", 0.001, values=2, missing=0)
        payload = endpoint.wait_for(1, timeout=5)[0]
        assert payload["snapshots"][-1]["lookups"] == {"online": 20}
    finally:
        pusher.close()


@pytest.mark.timeout(30)
def test_a_slow_endpoint_never_slows_lookups_and_close_is_bounded(
        config_dir: Callable[..., str], endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint.delay = 2.0
    monkeypatch.setattr(monitoring, "PUSH_EVERY_LOOKUPS", 5)
    monkeypatch.setattr(monitoring, "POST_TIMEOUT", 1.0)
    monkeypatch.setattr(monitoring, "FLUSH_TIMEOUT", 1.0)
    folder = config_dir(enable_monitoring=True, monitoring_endpoint=endpoint.url)
    aug = FeatureStoreAugmenter(RECIPE, env="test", config_dir=folder, mode="online")
    aug.fit(pd.DataFrame({"user_id": ["u1", "u2"]}))
    row = pd.DataFrame({"user_id": ["u1"]})
    deadline = time.monotonic() + 5
    while endpoint.requests == 0 and time.monotonic() < deadline:  # the pusher is now stuck in a slow POST
        aug.transform(row)
    assert endpoint.requests >= 1
    start = time.monotonic()
    for _ in range(50):
        aug.transform(row)
    took = time.monotonic() - start
    assert took < 2.0, f"50 lookups took {took:.2f} s while the endpoint hung"
    start = time.monotonic()
    close_all()
    closing = time.monotonic() - start
    assert closing < 1.0 + 0.5 + 1.5  # flush_timeout + join margin + slack
    print(f"slow endpoint: 50 lookups in {took:.3f} s, close in {closing:.2f} s")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("failure", ["http 500", "closed port"])
def test_a_failing_endpoint_never_fails_lookups(
        config_dir: Callable[..., str], endpoint: Endpoint, failure: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    endpoint.status = 500
    url = endpoint.url if failure == "http 500" else f"http://127.0.0.1:{free_port()}/metrics"
    monkeypatch.setattr(monitoring, "PUSH_INTERVAL", 0.05)
    caplog.set_level(logging.DEBUG, logger="fs_augment.monitoring")
    folder = config_dir(enable_monitoring=True, monitoring_endpoint=url + "?token=do-not-log-me")
    adapter = get_adapter("test", folder)
    deadline = time.monotonic() + 5
    while adapter.pusher.failed_posts < 3 and time.monotonic() < deadline:
        assert adapter.online_get_features({"user_id": "u1"}, SPECS)["user_demographics:age"] == 34
        time.sleep(0.01)
    assert adapter.pusher.failed_posts >= 3
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1  # once, then DEBUG until WARN_EVERY has passed
    assert url in warned[0].getMessage() and ("HTTP 500" if failure == "http 500" else "refused") in caplog.text
    assert "do-not-log-me" not in caplog.text


@pytest.mark.timeout(30)
def test_the_queue_is_bounded_and_drops_the_oldest(endpoint: Endpoint) -> None:
    endpoint.status = 500
    metrics = LookupMetrics()
    pusher = MetricsPusher(metrics, endpoint.url, interval=0.02, max_queue=3)
    try:
        deadline = time.monotonic() + 5
        while pusher.dropped_snapshots < 5 and time.monotonic() < deadline:
            metrics.record("online", 0.001, values=1, missing=0)
            time.sleep(0.01)
        assert pusher.dropped_snapshots >= 5 and pusher.queued <= 3
        endpoint.status = 200
        payload = endpoint.wait_for(1, timeout=5)[0]
    finally:
        pusher.close()
    assert 1 <= len(payload["snapshots"]) <= 3 and payload["dropped_snapshots"] >= 5
    sequences = [s["sequence"] for s in payload["snapshots"]]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))  # the newest, in order


@pytest.mark.timeout(30)
def test_close_flushes_what_is_left(endpoint: Endpoint) -> None:
    metrics = LookupMetrics()
    pusher = MetricsPusher(metrics, endpoint.url, interval=60)
    metrics.record("batch", 0.5, values=10, missing=3)
    pusher.close()
    payload = endpoint.wait_for(1, timeout=1)[0]
    assert payload["snapshots"][-1]["lookups"] == {"batch": 1}
    assert payload["snapshots"][-1]["missing_rate"] == {"batch": 0.3}
    pusher.close()  # idempotent


@pytest.mark.parametrize("url", ["ftp://metrics.internal/push", "metrics.internal:9000", "http://"])
def test_a_bad_endpoint_is_a_config_error(config_dir: Callable[..., str], url: str) -> None:
    folder = config_dir(enable_monitoring=True, monitoring_endpoint=url)
    with pytest.raises(ConfigError, match=r"feature_store\.monitoring_endpoint .*'test'.*http:// or https://"):
        fs_augment.connect("test", folder)


def test_an_endpoint_without_enable_monitoring_is_not_used(config_dir: Callable[..., str]) -> None:
    adapter = get_adapter("test", config_dir(monitoring_endpoint="ftp://ignored"))
    assert adapter.pusher is None and not adapter.metrics.per_feature


@pytest.mark.timeout(30)
def test_credentials_in_the_endpoint_url_are_sent_as_basic_auth_and_never_logged(
        endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="fs_augment.monitoring")
    url = endpoint.url.replace("http://", "http://svc:t%40ken-never-logged@") + "?api_key=key-never-logged"
    pusher = MetricsPusher(LookupMetrics(), url, interval=60)
    pusher.close()
    payload = endpoint.wait_for(1, timeout=1)[0]
    assert payload["authorization"] == "Basic " + base64.b64encode(b"svc:t@ken-never-logged").decode()
    assert payload["path"] == "/metrics?api_key=key-never-logged"
    endpoint.status = 500
    failing = MetricsPusher(LookupMetrics(), url, interval=60)
    failing.close()
    assert "did not take" in caplog.text
    assert "never-logged" not in caplog.text and "t%40ken" not in caplog.text


def test_pusher_shows_its_endpoint_through_the_one_url_mask() -> None:
    assert mask_url("https://svc:tok3n@metrics.internal:8443/push?api_key=abc#x") == (
        "https://svc:***@metrics.internal:8443/push?***")
    assert mask_url("http://[::1]:9000/m") == "http://[::1]:9000/m"
    pusher = MetricsPusher(LookupMetrics(), f"http://u:tok3n@127.0.0.1:{free_port()}/m", interval=60)
    try:
        assert "tok3n" not in repr(pusher) and "tok3n" not in pusher._thread.name
    finally:
        pusher.close()
