"""The store backends: one registry entry each, by provider name or URI scheme, with its settings.

* ``ONLINE_PROVIDERS`` — ``feature_store.provider`` → the online store's backend.
* ``OFFLINE_SCHEMES`` — the scheme of ``connection_info.offline_store_uri`` → the
  offline store's backend.

An entry names its factory and its store class as ``"module:attribute"``, so
nothing here imports a store client: ``import fs_augment`` and
:func:`~fs_augment.config.load_config` stay light, and only the backends an
environment uses are ever imported (by :func:`fs_augment.connect`). An entry
also carries the backend's settings class (its keys under
``feature_store.connection_info``, declared once with :func:`~fs_augment.settings.setting`)
and its check, which :func:`~fs_augment.config.load_config` runs on the loaded
settings, so a backend's misconfiguration is reported when the config loads,
with the file and the key. Adding a backend is one module under
``fs_augment/stores/``, one entry here, and its settings class among the bases
of :class:`~fs_augment.config.ConnectionInfo`.

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
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from urllib.parse import parse_qs, urlsplit

from fs_augment.errors import ConfigError
from fs_augment.settings import Integer, OneOf, Secret, SecretText, Text, setting

if TYPE_CHECKING:
    from fs_augment.config import FeatureStoreConfig

__all__ = [
    "OFFLINE_SCHEMES",
    "ONLINE_PROVIDERS",
    "Backend",
    "BigQuerySettings",
    "Fail",
    "RedisSettings",
    "offline_backend",
    "parse_bigquery_uri",
    "redis_database",
    "redis_tls_problem",
    "uri_scheme",
]

#: ``fail(dotted_key, text)`` raises the ConfigError "``FILE: dotted_key text``".
Fail = Callable[[str, str], NoReturn]
INFO = "feature_store.connection_info"


# --- Redis -------------------------------------------------------------------------------

def _redis_host_shape(value: str) -> str | None:
    if "://" in value:
        return None if value.startswith(("redis://", "rediss://")) else "'host:port' or a redis:// / rediss:// URL"
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        return "'host:port' (e.g. 'localhost:6379') or a redis:// / rediss:// URL"
    return None


@dataclass(frozen=True, repr=False)
class RedisSettings:
    """The ``redis`` provider's keys under ``feature_store.connection_info``."""

    redis_host: str = setting(
        "localhost:6379", Text(optional=False, shape=_redis_host_shape, bounds="host:port, redis://, rediss://"),
        "Where Redis is: ``host:port`` or a ``redis://`` / ``rediss://`` URL, which may carry "
        "``user:password@`` and ``/db`` (what the URL says wins).", backend="redis")
    redis_db: int = setting(0, Integer(0), "Database number (standalone Redis; a cluster has only 0).",
                            backend="redis")
    redis_password: Secret | None = setting(
        None, SecretText(), "Password; write ``${VARIABLE}`` to read it from the environment. Never shown.",
        backend="redis")
    redis_mode: str = setting(
        "auto", OneOf(("auto", "standalone", "cluster")),
        "Client class: ``auto`` asks the server once (``INFO cluster``) at first use.", backend="redis")
    redis_username: str | None = setting(None, Text(), "ACL user name.", backend="redis")
    redis_ssl_ca_certs: str | None = setting(
        None, Text(), "CA file for TLS: turns TLS on with ``host:port``; with a URL it needs ``rediss://``.",
        backend="redis")


def redis_tls_problem(host: str, ssl_ca_certs: str | None) -> str | None:
    """Why a CA file cannot be used with ``host`` (a ``redis://`` URL), or None.

    Examples
    --------
    >>> redis_tls_problem("redis://cache:6380/0", "ca.pem")
    'is set but redis_host is a redis:// URL; use rediss://cache:6380 for TLS'
    """
    if ssl_ca_certs is None or not host.startswith("redis://"):
        return None
    address = urlsplit(host).netloc.rpartition("@")[2]
    return f"is set but redis_host is a redis:// URL; use rediss://{address} for TLS"


def redis_database(host: str, db: int) -> int:
    """The database in effect: a URL's ``/db`` (or ``?db=``) wins over ``db``.

    Examples
    --------
    >>> redis_database("redis://cache:6379/3", 0), redis_database("cache:6379", 2)
    (3, 2)
    """
    if "://" not in host:
        return db
    parts = urlsplit(host)
    path = parts.path.strip("/")
    if path.isdigit():
        return int(path)
    query = parse_qs(parts.query).get("db")
    return int(query[0]) if query and query[0].isdigit() else db


def check_redis(store: FeatureStoreConfig, fail: Fail) -> None:
    """The ``redis`` provider's checks of settings that cannot work together."""
    info = store.connection_info
    problem = redis_tls_problem(info.redis_host, info.redis_ssl_ca_certs)
    if problem is not None:
        fail(f"{INFO}.redis_ssl_ca_certs", problem)
    if info.redis_mode == "cluster":
        database = redis_database(info.redis_host, info.redis_db)
        if database != 0:
            key = "redis_db" if database == info.redis_db and "://" not in info.redis_host else "redis_host"
            fail(f"{INFO}.{key}", f"asks for database {database}, but redis_mode is 'cluster' and a Redis Cluster "
                                  "has only database 0; set redis_db: 0")


# --- BigQuery --------------------------------------------------------------------------------

BIGQUERY_SHAPE = "bq://PROJECT.DATASET"
_PROJECT = r"[A-Za-z0-9.:_-]+"
_DATASET = r"[A-Za-z0-9_]+"


@dataclass(frozen=True, repr=False)
class BigQuerySettings:
    """The ``bq://`` offline store's keys under ``feature_store.connection_info``."""

    bigquery_api_endpoint: str | None = setting(
        None, Text(), "A BigQuery API endpoint other than Google's (an emulator), used with anonymous "
        "credentials.", backend="bq")
    bigquery_location: str | None = setting(None, Text(), "Where the jobs run (``US``, ``EU``, ...).",
                                            backend="bq")
    bigquery_scratch_dataset: str | None = setting(
        None, Text(), "``DATASET`` or ``PROJECT.DATASET`` for the scratch tables of uploaded spines "
        "(default: the features' dataset).", backend="bq")


def parse_bigquery_uri(uri: str) -> tuple[str, str]:
    """``bq://PROJECT.DATASET`` → ``(PROJECT, DATASET)``.

    The dataset is the part after the last dot, so domain-scoped projects
    (``example.com:project``) work.

    Raises
    ------
    ConfigError
        The URI does not have that shape.

    Examples
    --------
    >>> parse_bigquery_uri("bq://my-project.features")
    ('my-project', 'features')
    """
    body = uri[len("bq://"):] if uri.startswith("bq://") else None
    project, _, dataset = (body or "").rpartition(".")
    if body is None or not re.fullmatch(_PROJECT, project) or not re.fullmatch(_DATASET, dataset):
        raise ConfigError(f"a BigQuery URI must look like {BIGQUERY_SHAPE!r}, got {uri!r}")
    return project, dataset


def check_bigquery(store: FeatureStoreConfig, fail: Fail) -> None:
    """The ``bq://`` URI must name a project and a dataset."""
    uri = store.connection_info.offline_store_uri
    try:
        parse_bigquery_uri(uri or "")
    except ConfigError:
        fail(f"{INFO}.offline_store_uri", f"must look like {BIGQUERY_SHAPE!r}, got {uri!r}")


# --- the registry ----------------------------------------------------------------------------

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
    settings : type, optional
        Its settings class (keys under ``feature_store.connection_info``).
    check : callable, optional
        ``check(feature_store_config, fail)``, run when a config using the
        backend loads; it calls ``fail(dotted_key, text)`` for a problem.
    example : str
        What selects it, as a user writes it (``bq://PROJECT.DATASET``).
    """

    name: str
    kind: Literal["online", "offline"]
    factory: str
    store_class: str
    summary: str
    settings: type | None = None
    check: Callable[[FeatureStoreConfig, Fail], None] | None = None
    example: str = ""

    @staticmethod
    def _load(spec: str) -> Any:
        module, _, attribute = spec.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def load_factory(self) -> Callable[..., Any]:
        """The factory function (imports the backend's module)."""
        factory: Callable[..., Any] = self._load(self.factory)
        return factory

    def load_store_class(self) -> type:
        """The store class (imports the backend's module)."""
        store_class: type = self._load(self.store_class)
        return store_class


ONLINE_PROVIDERS: dict[str, Backend] = {
    "redis": Backend("redis", "online", "fs_augment.stores.redis:open_redis_store",
                     "fs_augment.stores.redis:RedisStore", "Redis or Redis Cluster",
                     settings=RedisSettings, check=check_redis, example="redis"),
    "local": Backend("local", "online", "fs_augment.stores.local:open_local_store",
                     "fs_augment.stores.local:LocalOnlineStore",
                     "embedded: latest values from the file:// offline store, no server", example="local"),
}

OFFLINE_SCHEMES: dict[str, Backend] = {
    "file": Backend("file", "offline", "fs_augment.stores.offline:open_parquet_store",
                    "fs_augment.stores.offline:ParquetOfflineStore", "a folder of parquet files, joined with DuckDB",
                    example="file://FOLDER"),
    "bq": Backend("bq", "offline", "fs_augment.stores.bigquery:open_bigquery_store",
                  "fs_augment.stores.bigquery:BigQueryOfflineStore", "a BigQuery dataset, joined inside BigQuery",
                  settings=BigQuerySettings, check=check_bigquery, example="bq://PROJECT.DATASET"),
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


def offline_uri_shape(value: str) -> str | None:
    """Why ``value`` is not a URI of a registered offline store, or None."""
    if uri_scheme(value) in OFFLINE_SCHEMES:
        return None
    return "a URI of an offline store: " + " or ".join(repr(b.example) for b in OFFLINE_SCHEMES.values())
