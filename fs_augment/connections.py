"""Which store adapter an augmenter uses: the one given with :func:`use`, else the environment's.

Augmenters never hold a connection themselves (a pickle carries none): they ask
here, at fit and transform time, for their adapter. Inside ``with use(adapter):``
that is ``adapter`` (for the current thread or asyncio task only); elsewhere it
is the shared adapter of the environment where they run, one per (environment,
config folder) in this process, opened on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from fs_augment.adapter import FeatureStoreAdapter
from fs_augment.config import CONFIG_DIR_VARIABLE, ENV_VARIABLE, resolve_config_dir, resolve_env_name
from fs_augment.errors import ConfigError

__all__ = ["close_all", "current_adapter", "get_adapter", "use"]

_given: ContextVar[FeatureStoreAdapter | None] = ContextVar("fs_augment_adapter", default=None)

_lock = threading.Lock()
_adapters: dict[tuple[str, str], FeatureStoreAdapter] = {}
# (env, config_dir, $FS_AUGMENT_ENV, $FS_AUGMENT_CONFIG_DIR) as given -> adapter: spares the
# path resolution on every lookup
_by_request: dict[tuple[object, object, str | None, str | None], FeatureStoreAdapter] = {}


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
            from fs_augment.stores import connect

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
