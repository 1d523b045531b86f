"""One open store adapter per (environment, config folder) in this process.

Augmenters never hold a connection themselves (a pickle carries none): they ask
here, at transform time, for the adapter of the environment where they run.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from fs_augment.adapter import FeatureStoreAdapter
from fs_augment.config import CONFIG_DIR_VARIABLE, ENV_VARIABLE, resolve_config_dir, resolve_env_name

__all__ = ["close_all", "get_adapter"]

_lock = threading.Lock()
_adapters: dict[tuple[str, str], FeatureStoreAdapter] = {}
# (env, config_dir, $FS_AUGMENT_ENV, $FS_AUGMENT_CONFIG_DIR) as given -> adapter: spares the
# path resolution on every lookup
_by_request: dict[tuple[object, object, str | None, str | None], FeatureStoreAdapter] = {}


def get_adapter(env: str | None = None, config_dir: str | os.PathLike[str] | None = None) -> FeatureStoreAdapter:
    """The shared adapter of an environment, opened on first use.

    ``env`` and ``config_dir`` default to ``$FS_AUGMENT_ENV`` / ``$FS_AUGMENT_CONFIG_DIR``
    read now, so the environment is chosen where the code runs.
    """
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
