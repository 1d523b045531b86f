"""Test harnesses for the stores: how a test puts data in each kind of store.

The fixtures in ``tests/conftest.py`` and ``tests/stores/conftest.py`` build these;
tests import the helpers from here, never from a conftest module.

* :class:`StoreHarness` — an adapter over an online store (Redis, a Redis Cluster, the
  embedded parquet store) and the reference writer that fills it;
* :class:`OfflineHarness` — an offline store (parquet with DuckDB, or BigQuery) and a
  ``write`` that stores a namespace's history the way its owners would.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import redis
from redis.cluster import RedisCluster as ClusterClient

from fs_augment.writer import write_namespace, write_parquet_namespace

if TYPE_CHECKING:
    from fs_augment.adapter import FeatureStoreAdapter
    from fs_augment.stores.base import OfflineStore
    from tests.support.bqemulator import BigQueryEmulator

__all__ = [
    "BIGQUERY_PROJECT",
    "SEED_FRAMES",
    "SEED_KEYS",
    "OfflineHarness",
    "StoreHarness",
    "flush_cluster",
    "new_bigquery_store",
    "redis_host_and_db",
    "store_config",
    "write_parquet",
]

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

#: The project the BigQuery emulator serves.
BIGQUERY_PROJECT = "test-project"


def redis_host_and_db(client: redis.Redis) -> tuple[str, int]:
    """The ``host:port`` and database number a client talks to, as a config file names them."""
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs['host']}:{kwargs['port']}", int(kwargs.get("db", 0))


def store_config(kind: str, **settings: Any) -> dict[str, Any]:
    """A ``feature_store`` section with test-friendly timeouts, plus ``settings``."""
    section: dict[str, Any] = {"provider": "local" if kind == "local" else "redis",
                               "connection_timeout": 2000, "retry_attempts": 1}
    info = settings.pop("connection_info", {})
    section.update(settings)
    section["connection_info"] = info
    return {"feature_store": section}


def flush_cluster(client: ClusterClient) -> None:
    """FLUSHDB on every master of a private cluster."""
    for node in client.get_primaries():
        client.get_redis_connection(node).flushdb()


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write a namespace as parquet, zoned times as naive UTC (which the parquet store reads as UTC)."""
    plain_times = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            plain_times[column] = frame[column].dt.tz_convert(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain_times.to_parquet(path, index=False)


def new_bigquery_store(emulator: BigQueryEmulator, cls: type | None = None, **options: Any) -> Any:
    """A BigQuery offline store over a fresh dataset of the emulator (``cls`` for a subclass)."""
    from fs_augment.stores.bigquery import BigQueryOfflineStore

    options.setdefault("timeout", 30)
    options.setdefault("retry_attempts", 1)
    store_class = BigQueryOfflineStore if cls is None else cls
    return store_class(BIGQUERY_PROJECT, f"ds_{uuid.uuid4().hex[:12]}", api_endpoint=emulator.endpoint, **options)


@dataclass
class StoreHarness:
    """An online store under test: its adapter and how to put data in it."""

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


@dataclass
class OfflineHarness:
    """An offline store under test (``parquet`` or ``bigquery``) and how to put history in it."""

    kind: str
    store: OfflineStore
    folder: Path | None = None

    def write(self, namespace: str, frame: pd.DataFrame) -> None:
        """Store ``frame`` as the namespace's table: a parquet file, or a BigQuery table load."""
        if self.folder is not None:
            write_parquet(frame, self.folder / f"{namespace}.parquet")
        else:
            self.store.write_table(frame, namespace)  # type: ignore[attr-defined]

    @property
    def location(self) -> str:
        """How the store's messages name where it is: the folder, or ``PROJECT.DATASET``."""
        if self.folder is not None:
            return str(self.folder)
        return f"{self.store.project}.{self.store.dataset}"  # type: ignore[attr-defined]
