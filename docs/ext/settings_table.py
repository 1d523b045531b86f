"""The settings of the configuration, read from their declaration, for the config reference.

:func:`declared_settings` is the one place that reads the declaration. Today it
reads what :mod:`fs_augment.config` declares: the dataclass fields (key, type,
default) and the schema's validators (what each key accepts, in the words of
the validator's own error message). When the config module offers
``describe_settings()``, the body of :func:`declared_settings` becomes
``return list(config.describe_settings())``; :func:`row` already reads its
items (mappings or objects with ``key`` or ``path``, ``type``, ``default``,
``accepts`` and ``help``). No Sphinx import here: the tests read it too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# Values no setting accepts, tried on each validator: what it says about them is what it accepts.
_PROBES: tuple[Any, ...] = (object(), "\0", -1, 10**18)


def declared_settings() -> list[dict[str, Any]]:
    """Every setting: ``key`` (dotted path), ``type``, ``default`` and ``accepts``."""
    from fs_augment import config

    sections = {"feature_store": config.FeatureStoreConfig, "feature_store.connection_info": config.ConnectionInfo}
    rows: list[dict[str, Any]] = []

    def walk(schema: dict[str, Any], prefix: str) -> None:
        fields = {f.name: f for f in dataclasses.fields(sections[prefix])} if prefix in sections else {}
        for key, rule in schema.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(rule, dict):
                walk(rule, path)
                continue
            field = fields.get(key)
            default = None if field is None else (
                field.default_factory() if field.default is dataclasses.MISSING else field.default)
            rows.append({"key": path, "type": "str | None" if field is None else str(field.type),
                         "default": default, "accepts": _accepts(rule)})

    walk(config._SCHEMA, "")
    return rows


def _accepts(rule: Any) -> str:
    said: list[str] = []
    for probe in _PROBES:
        try:
            rule(probe)
        except TypeError as exc:
            if str(exc) not in said:
                said.append(str(exc))
    return "; ".join(said)


def row(item: Any) -> dict[str, str]:
    get = item.get if isinstance(item, dict) else lambda name, default=None: getattr(item, name, default)
    default = get("default")
    return {
        "key": str(get("key") or get("path")),
        "type": str(get("type") or ""),
        "default": "" if default is None else repr(default),
        "accepts": str(get("accepts") or ""),
        "help": str(get("help") or ""),
    }
