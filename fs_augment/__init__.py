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
from typing import TYPE_CHECKING, Any

# A name added to _LAZY below goes in __all__ and here too (tests/test_public_names.py checks both).
if TYPE_CHECKING:  # what a type checker sees; at run time __getattr__ imports these on first use
    from fs_augment import adapter as adapter
    from fs_augment import augmenter as augmenter
    from fs_augment import backends as backends
    from fs_augment import cache as cache
    from fs_augment import checks as checks
    from fs_augment import cli as cli
    from fs_augment import config as config
    from fs_augment import connections as connections
    from fs_augment import demo as demo
    from fs_augment import dtypes as dtypes
    from fs_augment import errors as errors
    from fs_augment import keys as keys
    from fs_augment import loader as loader
    from fs_augment import mlflow as mlflow
    from fs_augment import monitoring as monitoring
    from fs_augment import recipe as recipe
    from fs_augment import report as report
    from fs_augment import skew as skew
    from fs_augment import spine_query as spine_query
    from fs_augment import stores as stores
    from fs_augment import training as training
    from fs_augment import writer as writer
    from fs_augment.adapter import FeatureStoreAdapter
    from fs_augment.augmenter import FeatureStoreAugmenter
    from fs_augment.config import Config, load_config
    from fs_augment.connections import connect, use
    from fs_augment.loader import load_spine
    from fs_augment.recipe import FeatureGroup, Recipe, load_recipe
    from fs_augment.report import build_report
    from fs_augment.skew import check_skew
    from fs_augment.spine_query import SpineQuery
    from fs_augment.training import train
    from fs_augment.writer import materialize, write_namespace

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
    "build_report": "fs_augment.report",
    "use": "fs_augment.connections",
    "check_skew": "fs_augment.skew",
    "SpineQuery": "fs_augment.spine_query",
}
_SUBMODULES = {"errors", "keys", "config", "recipe", "adapter", "augmenter", "stores", "cache", "monitoring",
               "writer", "loader", "cli", "demo", "mlflow", "training", "checks", "skew", "dtypes", "connections",
               "backends", "spine_query", "report"}

__all__ = [
    "Config",
    "FeatureGroup",
    "FeatureStoreAdapter",
    "FeatureStoreAugmenter",
    "Recipe",
    "SpineQuery",
    "__version__",
    "build_report",
    "check_skew",
    "connect",
    "load_config",
    "load_recipe",
    "load_spine",
    "materialize",
    "train",
    "use",
    "write_namespace",
]


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
