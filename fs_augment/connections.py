"""The composition root: :func:`connect` builds an environment's adapter; which adapter an augmenter uses.

:func:`connect` is the one place where the pieces meet: the configuration is
loaded (and checked), the backends it names are looked up in
:mod:`fs_augment.backends` and opened, the lookup metrics (and their pusher, with
monitoring on) are created, and a :class:`~fs_augment.adapter.FeatureStoreAdapter`
is handed out. Nothing below this module (config, stores) knows about the
adapter or monitoring.

Augmenters never hold a connection themselves (a pickle carries none): they ask
here, at fit and transform time, for their adapter. Inside ``with use(adapter):``
that is ``adapter`` (for the current thread or asyncio task only); elsewhere it
is the shared adapter of the environment where they run, one per (environment,
config folder) in this process, opened on first use.

Shared adapters belong to the process that opened them. A process forked from
it (a pre-forking server's worker, Spark's Python workers, ``multiprocessing``
with ``fork``) starts with none: it opens its own, with its own connection
pool, at its first lookup, and never reuses a socket, lock or monitoring thread
it inherited (the parent's adapters are forgotten in the child, not closed, so
the parent's connections stay intact).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from fs_augment.adapter import FeatureStoreAdapter
from fs_augment.backends import ONLINE_PROVIDERS, offline_backend
from fs_augment.config import (
    CONFIG_DIR_VARIABLE,
    ENV_VARIABLE,
    Config,
    load_config,
    resolve_config_dir,
    resolve_env_name,
)
from fs_augment.errors import ConfigError
from fs_augment.monitoring import LookupMetrics, MetricsPusher
from fs_augment.stores.base import OfflineStore, OnlineStore

__all__ = ["close_all", "connect", "current_adapter", "get_adapter", "open_offline_store", "open_online_store",
           "use"]

def open_online_store(config: Config, offline: OfflineStore | None = None) -> OnlineStore:
    """The online store of an environment's ``provider`` (not connected yet)."""
    provider = config.feature_store.provider
    backend = ONLINE_PROVIDERS.get(provider)
    if backend is None:
        raise ConfigError(f"environment {config.env!r}: unknown feature_store.provider {provider!r}; "
                          f"providers: {', '.join(sorted(ONLINE_PROVIDERS))}")
    store: OnlineStore = backend.load_factory()(config, offline)
    return store


def open_offline_store(config: Config) -> OfflineStore | None:
    """The offline store of ``offline_store_uri``, or None when none is configured."""
    uri = config.feature_store.connection_info.offline_store_uri
    if uri is None:
        return None
    try:
        backend = offline_backend(uri)
    except KeyError:
        raise ConfigError(f"environment {config.env!r}: feature_store.connection_info.offline_store_uri "
                          f"{uri!r} has no offline store backend") from None
    store: OfflineStore = backend.load_factory()(config)
    return store


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
    >>> import tempfile
    >>> import fs_augment
    >>> from fs_augment.demo import write_demo_data
    >>> project = write_demo_data(tempfile.mkdtemp(), users=20, products=5, rows=50)
    >>> with fs_augment.connect("local", project.config_dir) as store:
    ...     store.batch_get_features([{"user_id": "user1"}],
    ...                              [{"namespace": "user_demographics", "features": ["age"]}])
    {'user1': {'user_demographics:age': 26}}
    """
    config = config if config is not None else load_config(env, config_dir)  # checks the settings
    store = config.feature_store
    endpoint = store.monitoring_endpoint if store.enable_monitoring else None
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
        config=config,
    )


# --- which adapter augmenters use ------------------------------------------------------

_given: ContextVar[FeatureStoreAdapter | None] = ContextVar("fs_augment_adapter", default=None)

_lock = threading.Lock()
_adapters: dict[tuple[str, str], FeatureStoreAdapter] = {}
# (env, config_dir, $FS_AUGMENT_ENV, $FS_AUGMENT_CONFIG_DIR) as given -> adapter: spares the
# path resolution on every lookup
_by_request: dict[tuple[object, object, str | None, str | None], FeatureStoreAdapter] = {}
#: The process that opened the adapters above; another one (a fork) forgets them before any lookup.
_owner_pid = os.getpid()


def _forget_inherited() -> None:
    """In a forked child: drop the parent's adapters (and a lock another thread may have held at the fork)."""
    global _lock, _owner_pid
    _lock = threading.Lock()
    _adapters.clear()
    _by_request.clear()
    _owner_pid = os.getpid()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_forget_inherited)


def get_adapter(env: str | None = None, config_dir: str | os.PathLike[str] | None = None) -> FeatureStoreAdapter:
    """The adapter given with :func:`use`, else the shared adapter of an environment, opened on first use.

    ``env`` and ``config_dir`` default to ``$FS_AUGMENT_ENV`` / ``$FS_AUGMENT_CONFIG_DIR``
    read now, so the environment is chosen where the code runs.

    Raises
    ------
    ConfigError
        ``env`` names another environment than the adapter given with :func:`use`.
    """
    given = _given.get()
    if given is not None:
        if env is not None and env != given.env:
            raise ConfigError(
                f"an augmenter pinned to environment {env!r} runs inside fs_augment.use() of an adapter of "
                f"environment {given.env!r}; unpin it (env=None) or use an adapter of {env!r}"
            )
        return given
    if _owner_pid != os.getpid():  # forked without the fork hook (a raw fork): start clean
        _forget_inherited()
    if env is not None and config_dir is not None:  # both given: the process environment has no say
        request: tuple[object, object, str | None, str | None] = (env, config_dir, None, None)
    else:
        request = (env, config_dir, os.environ.get(ENV_VARIABLE), os.environ.get(CONFIG_DIR_VARIABLE))
    if config_dir is not None or request[3]:  # a relative ./config moves with cwd
        adapter = _by_request.get(request)
        if adapter is not None:
            return adapter
    key = (resolve_env_name(env), str(Path(resolve_config_dir(config_dir)).resolve()))
    adapter = _adapters.get(key)
    if adapter is not None:
        _by_request[request] = adapter
        return adapter
    with _lock:
        adapter = _adapters.get(key)
        if adapter is None:
            adapter = connect(key[0], key[1])
            _adapters[key] = adapter
        _by_request[request] = adapter
    return adapter


def close_all() -> None:
    """Close every shared adapter (they reopen on next use)."""
    with _lock:
        adapters = list(_adapters.values())
        _adapters.clear()
        _by_request.clear()
    for adapter in adapters:
        adapter.close()


@contextmanager
def use(adapter: FeatureStoreAdapter) -> Iterator[FeatureStoreAdapter]:
    """Make every augmenter inside the block look features up through ``adapter``.

    The process environment is neither read nor written: the choice holds for the
    current thread (or asyncio task) until the block ends, and blocks nest. An
    augmenter pinned to another environment (``env=...``) raises
    :class:`~fs_augment.errors.ConfigError` inside the block. ``adapter`` is not
    closed at the end; open and close it with ``with fs_augment.connect(...)``.
    Worker processes (joblib's, Spark's) do not see the choice: they resolve their
    environment where they run (``FS_AUGMENT_ENV``).

    Parameters
    ----------
    adapter : FeatureStoreAdapter
        The adapter to use, e.g. from :func:`fs_augment.connect`.

    Yields
    ------
    FeatureStoreAdapter
        ``adapter``.

    Examples
    --------
    >>> import tempfile
    >>> import fs_augment
    >>> from fs_augment.demo import write_demo_data
    >>> project = write_demo_data(tempfile.mkdtemp(), users=20, products=5, rows=50)
    >>> with fs_augment.connect("local", project.config_dir) as adapter, fs_augment.use(adapter):
    ...     fs_augment.connections.current_adapter() is adapter
    True
    >>> fs_augment.connections.current_adapter() is None
    True
    """
    if not hasattr(adapter, "lookup_columns"):
        raise TypeError(
            f"fs_augment.use() takes a FeatureStoreAdapter (from fs_augment.connect()), got {type(adapter).__name__}")
    token = _given.set(adapter)
    try:
        yield adapter
    finally:
        _given.reset(token)


def current_adapter() -> FeatureStoreAdapter | None:
    """The adapter given with :func:`use` for the current thread or task, else None."""
    return _given.get()
