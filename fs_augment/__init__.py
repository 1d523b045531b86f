"""fs_augment: feed feature-store features into scikit-learn models, with train/serve parity.

The public names are imported lazily, so ``import fs_augment`` is cheap and
pulls in neither scikit-learn nor a store client until they are used.

Examples
--------
>>> import fs_augment
>>> fs_augment.keys.feature_key("user_demographics", "age", "user123")
'user_demographics:age:user123'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "FeatureStoreAugmenter": "fs_augment.augmenter",
    "FeatureStoreAdapter": "fs_augment.adapter",
    "connect": "fs_augment.connections",
    "load_config": "fs_augment.config",
    "Config": "fs_augment.config",
    "load_recipe": "fs_augment.recipe",
    "Recipe": "fs_augment.recipe",
    "FeatureGroup": "fs_augment.recipe",
    "load_spine": "fs_augment.loader",
    "write_namespace": "fs_augment.writer",
    "materialize": "fs_augment.writer",
    "train": "fs_augment.training",
    "use": "fs_augment.connections",
    "check_skew": "fs_augment.skew",
    "SpineQuery": "fs_augment.spine_query",
}
_SUBMODULES = {"errors", "keys", "config", "recipe", "adapter", "augmenter", "stores", "cache", "monitoring",
               "writer", "loader", "cli", "demo", "mlflow", "training", "checks", "skew", "dtypes", "connections",
               "backends", "spine_query"}

__all__ = ["__version__", *sorted(_LAZY)]

def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"fs_augment.{name}")
    raise AttributeError(f"module 'fs_augment' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
