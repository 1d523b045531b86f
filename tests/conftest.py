"""Shared fixtures: the machine's Redis (a database number of the suite's own),
config folders written per test, and a clean process environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from hypothesis import HealthCheck, settings

from tests.support.stores import redis_host_and_db

# CI (the default): the same examples on every run, no example database (a clean clone behaves as a
# warm one), no deadline or too-slow checks on a shared 2-core machine. ``HYPOTHESIS_PROFILE=dev``
# explores randomly and keeps a database.
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis-url",
        default=os.environ.get("FS_AUGMENT_TEST_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis server and database the tests may flush (default: %(default)s)",
    )


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No environment variables of the package, and no shared store connection, leak between tests."""
    from fs_augment.connections import close_all

    for name in ("FS_AUGMENT_ENV", "FS_AUGMENT_CONFIG_DIR", "FS_AUGMENT_MODE"):
        monkeypatch.delenv(name, raising=False)
    close_all()
    yield
    close_all()


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    url = request.config.getoption("--redis-url")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:  # CI must fail loudly, never skip
        raise RuntimeError(f"the test Redis at {url} does not answer: {exc}") from exc
    finally:
        client.close()
    return url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the suite's database, flushed before and after the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def second_redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the next database number: a second environment's store."""
    url = redis_url.rsplit("/", 1)
    db = int(url[1]) + 1 if len(url) == 2 and url[1].isdigit() else 10
    client = redis.Redis.from_url(f"{url[0]}/{db}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def make_config_dir(tmp_path: Path) -> Callable[..., Path]:
    """Write ``config/base.yaml`` and ``config/<env>.yaml`` files under a fresh folder.

    ``make_config_dir(base={...}, local={...}, dev={...})`` returns the config folder.
    """
    counter = iter(range(1_000_000))

    def make(base: dict[str, Any] | None = None, **envs: dict[str, Any]) -> Path:
        folder = tmp_path / f"project{next(counter)}" / "config"
        folder.mkdir(parents=True)
        if base is not None:
            (folder / "base.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
        for name, data in envs.items():
            (folder / f"{name}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        return folder

    return make


@pytest.fixture
def redis_config_dir(make_config_dir: Callable[..., Path], redis_client: redis.Redis) -> Path:
    """A config folder whose environment ``test`` is the suite's Redis database."""
    host, db = redis_host_and_db(redis_client)
    return make_config_dir(
        base={"feature_store": {"provider": "redis", "connection_timeout": 2000, "retry_attempts": 1}},
        test={"feature_store": {"connection_info": {"redis_host": host, "redis_db": db,
                                                     "redis_mode": "standalone"}}},
    )
