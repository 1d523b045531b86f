"""Store backends and :func:`connect`, which opens the stores of an environment.

Adding a backend is one module and one entry in ``ONLINE_PROVIDERS`` or
``OFFLINE_SCHEMES``. Backend modules are imported only when used, so
``import fs_augment`` stays light.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fs_augment.config import Config, load_config, mask_url
from fs_augment.errors import ConfigError
from fs_augment.monitoring import LookupMetrics, MetricsPusher

if TYPE_CHECKING:
    from fs_augment.adapter import FeatureStoreAdapter
    from fs_augment.stores.base import OfflineStore, OnlineStore

__all__ = ["OFFLINE_SCHEMES", "ONLINE_PROVIDERS", "connect", "open_offline_store", "open_online_store",
           "resolve_file_uri"]

#: provider name -> "module:factory"; the factory takes (config, offline store or None)
#: and returns an OnlineStore.
ONLINE_PROVIDERS = {
    "redis": "fs_augment.stores.redis:open_redis_store",
    "local": "fs_augment.stores.local:open_local_store",
}

#: URI scheme -> "module:factory"; the factory takes (config) and returns an OfflineStore.
OFFLINE_SCHEMES = {
    "file": "fs_augment.stores.offline:open_parquet_store",
    "bq": "fs_augment.stores.bigquery:open_bigquery_store",
}


def _factory(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def resolve_file_uri(uri: str, config: Config) -> Path:
    """The folder of a ``file://`` URI.

    A relative path (``file://./local_features``) is taken relative to the
    folder that holds the config folder (the project root), so the same
    config works whatever the working directory of the process.
    """
    if not uri.startswith("file://"):
        raise ConfigError(f"environment {config.env!r}: expected a file:// URI, got {uri!r}")
    path = Path(os.path.expanduser(uri[len("file://"):]))
    if not path.is_absolute():
        path = Path(config.config_dir).resolve().parent / path
    return path


def open_online_store(config: Config, offline: OfflineStore | None = None) -> OnlineStore:
    """The online store of an environment's ``provider``."""
    return _factory(ONLINE_PROVIDERS[config.feature_store.provider])(config, offline)


def open_offline_store(config: Config) -> OfflineStore | None:
    """The offline store of ``offline_store_uri``, or None when none is configured."""
    uri = config.feature_store.connection_info.offline_store_uri
    if uri is None:
        return None
    scheme = uri.split("://", 1)[0]
    return _factory(OFFLINE_SCHEMES[scheme])(config)


def connect(
    env: str | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    *,
    config: Config | None = None,
) -> FeatureStoreAdapter:
    """Open the feature store of an environment.

    Parameters
    ----------
    env : str, optional
        Environment name (default ``$FS_AUGMENT_ENV``, else ``local``).
    config_dir : path-like, optional
        Config folder (default ``$FS_AUGMENT_CONFIG_DIR``, else ``./config``).
    config : Config, optional
        An already loaded configuration; ``env`` and ``config_dir`` are then ignored.

    Returns
    -------
    FeatureStoreAdapter
        Usable as a context manager; ``close()`` releases connections.

    Examples
    --------
    >>> import fs_augment
    >>> with fs_augment.connect("local", "config") as store:  # doctest: +SKIP
    ...     store.batch_get_features([{"user_id": "user123"}],
    ...                              [{"namespace": "user_demographics", "features": ["age"]}])
    {'user123': {'user_demographics:age': 34}}
    """
    from fs_augment.adapter import FeatureStoreAdapter

    config = config if config is not None else load_config(env, config_dir)
    store = config.feature_store
    endpoint = store.monitoring_endpoint if store.enable_monitoring else None
    if endpoint is not None:
        check_monitoring_endpoint(endpoint, config)
    offline = open_offline_store(config)
    try:
        online = open_online_store(config, offline)
    except BaseException:
        if offline is not None:
            offline.close()
        raise
    metrics = LookupMetrics(per_feature=store.enable_monitoring)
    pusher = None
    if endpoint is not None:
        pusher = MetricsPusher(metrics, endpoint, source={"env": config.env, "store": online.describe()})
    return FeatureStoreAdapter(
        online,
        offline,
        env=config.env,
        cache_ttl=store.cache_ttl,
        cache_max_entries=store.cache_max_entries,
        on_store_error=store.on_store_error,
        debug_logging=store.enable_debug_logging,
        metrics=metrics,
        pusher=pusher,
    )


def check_monitoring_endpoint(endpoint: str, config: Config) -> None:
    """Raise :class:`ConfigError` unless ``endpoint`` is an ``http(s)://`` URL (never shown whole)."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{config.config_dir}: feature_store.monitoring_endpoint of environment {config.env!r} must be an "
            f"http:// or https:// URL, got {mask_url(endpoint)!r}"
        )
