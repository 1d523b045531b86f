"""The one error hierarchy of fs_augment.

Every error the package raises on purpose is an :class:`FsAugmentError`. The
subclasses also derive from the builtin a generic handler would expect
(``ValueError`` for bad input, ``KeyError`` for an unknown feature,
``ImportError`` for a missing optional dependency), so existing ``except``
clauses keep working.

Errors raised by redis-py, DuckDB or the Google clients are translated at the
store boundary (``raise ... from exc``); messages name the file, key path,
column, namespace or host involved, and never a password.
"""

from __future__ import annotations

from types import ModuleType

__all__ = [
    "ConfigError",
    "FeatureNotFoundError",
    "FeatureQualityWarning",
    "FsAugmentError",
    "MissingDependencyError",
    "MissingFeaturesError",
    "ParameterError",
    "RecipeError",
    "SpineError",
    "StoreError",
    "StoreUnavailableError",
]


class FsAugmentError(Exception):
    """Base class of every error fs_augment raises on purpose."""


class ConfigError(FsAugmentError, ValueError):
    """An environment configuration is missing, malformed or invalid.

    The message names the file and the dotted key path.
    """


class RecipeError(FsAugmentError, ValueError):
    """A recipe is malformed or invalid; the message names the file and item."""


class SpineError(FsAugmentError, ValueError):
    """The entity spine handed to a lookup cannot be used as it is.

    Raised for a missing entity column, an entity value of an unsupported type
    or an unusable timestamp column; the message names the column.
    """


class ParameterError(FsAugmentError, ValueError):
    """A function was given a parameter value it does not take.

    The message names the parameter, the values it takes and the value received.
    """


class StoreError(FsAugmentError):
    """A feature store call failed."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The store could not be reached, even after the configured retries.

    The message names the store, the environment and the host, never the
    password. It is a :class:`ConnectionError`, hence an :class:`OSError`:
    ``except OSError`` (or ``except ConnectionError``) around a lookup catches
    it, as it catches the socket errors it stands for.
    """


class FeatureNotFoundError(StoreError, KeyError):
    """A namespace or feature declared in a recipe does not exist in the store.

    The message lists what the store does have for that namespace.
    """

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(FsAugmentError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise :class:`MissingDependencyError`.

    Parameters
    ----------
    module : str
        Dotted module name to import.
    extra : str
        Name of the ``fs_augment`` extra that installs it.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is not installed; install it with "
            f"pip install 'fs_augment[{extra}]'"
        ) from exc


class MissingFeaturesError(FsAugmentError, ValueError):
    """More feature values were missing in a transform than the configured threshold allows."""


class FeatureQualityWarning(UserWarning):
    """Many feature values were missing, or stored values did not fit the pinned dtype."""
