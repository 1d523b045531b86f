"""The store backends: one registry entry each, by provider name or URI scheme.

* ``ONLINE_PROVIDERS`` — ``feature_store.provider`` → the online store's backend.
* ``OFFLINE_SCHEMES`` — the scheme of ``connection_info.offline_store_uri`` → the
  offline store's backend.

An entry names its factory and its store class as ``"module:attribute"``, so
nothing here imports a store client: ``import fs_augment`` and
:func:`~fs_augment.config.load_config` stay light, and only the backends an
environment uses are ever imported (by :func:`fs_augment.connect`). Adding a
backend is one module under ``fs_augment/stores/`` and one entry here.

A factory takes the environment's :class:`~fs_augment.config.Config` (an online
factory also the offline store, or None) and returns a store that does no I/O
until it is first used.

Examples
--------
>>> ONLINE_PROVIDERS["redis"].store_class
'fs_augment.stores.redis:RedisStore'
>>> offline_backend("bq://my-project.features").name
'bq'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["OFFLINE_SCHEMES", "ONLINE_PROVIDERS", "Backend", "offline_backend", "uri_scheme"]


@dataclass(frozen=True)
class Backend:
    """One store backend.

    Parameters
    ----------
    name : str
        The provider name (online) or URI scheme (offline) that selects it.
    kind : {"online", "offline"}
        Which interface its stores implement
        (:class:`~fs_augment.stores.base.OnlineStore` or
        :class:`~fs_augment.stores.base.OfflineStore`).
    factory : str
        ``"module:function"`` building a store from a config.
    store_class : str
        ``"module:Class"`` of the stores the factory returns.
    summary : str
        One line for messages and the docs.
    """

    name: str
    kind: Literal["online", "offline"]
    factory: str
    store_class: str
    summary: str

    @staticmethod
    def _load(spec: str) -> Any:
        module, _, attribute = spec.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def load_factory(self) -> Callable[..., Any]:
        """The factory function (imports the backend's module)."""
        return self._load(self.factory)

    def load_store_class(self) -> type:
        """The store class (imports the backend's module)."""
        return self._load(self.store_class)


ONLINE_PROVIDERS: dict[str, Backend] = {
    "redis": Backend("redis", "online", "fs_augment.stores.redis:open_redis_store",
                     "fs_augment.stores.redis:RedisStore", "Redis or Redis Cluster"),
    "local": Backend("local", "online", "fs_augment.stores.local:open_local_store",
                     "fs_augment.stores.local:LocalOnlineStore",
                     "embedded: latest values from the file:// offline store, no server"),
}

OFFLINE_SCHEMES: dict[str, Backend] = {
    "file": Backend("file", "offline", "fs_augment.stores.offline:open_parquet_store",
                    "fs_augment.stores.offline:ParquetOfflineStore", "a folder of parquet files, joined with DuckDB"),
    "bq": Backend("bq", "offline", "fs_augment.stores.bigquery:open_bigquery_store",
                  "fs_augment.stores.bigquery:BigQueryOfflineStore", "a BigQuery dataset, joined inside BigQuery"),
}


def uri_scheme(uri: str) -> str:
    """The scheme of a URI (``"file"`` for ``file://x``), or ``""`` without one.

    Examples
    --------
    >>> uri_scheme("bq://p.d"), uri_scheme("localhost:6379")
    ('bq', '')
    """
    scheme, sep, _ = uri.partition("://")
    return scheme if sep else ""


def offline_backend(uri: str) -> Backend:
    """The backend of an ``offline_store_uri``.

    Raises
    ------
    KeyError
        No backend has the URI's scheme.
    """
    return OFFLINE_SCHEMES[uri_scheme(uri)]
