"""The settings of the configuration, read from their one declaration, for the config reference.

:func:`declared_settings` reads :func:`fs_augment.config.describe_settings` (key, type,
default, bounds and help of every setting, as declared once in :mod:`fs_augment.settings`
and :mod:`fs_augment.backends`); :func:`row` turns each into table cells. No Sphinx import
here: the tests read it too.
"""

from __future__ import annotations

from typing import Any


def declared_settings() -> list[Any]:
    """Every setting, from its one declaration (:func:`fs_augment.config.describe_settings`)."""
    from fs_augment import config

    return list(config.describe_settings())


def row(item: Any) -> dict[str, str]:
    get = item.get if isinstance(item, dict) else lambda name, default=None: getattr(item, name, default)
    default = get("default")
    return {
        "key": str(get("key") or get("path")),
        "type": str(get("type") or ""),
        "default": "" if default is None else repr(default),
        "accepts": str(get("accepts") or get("bounds") or ""),
        "help": str(get("help") or ""),
    }
