"""Recipes: which features a model is augmented with, and how the job runs.

A recipe is YAML (or the same structure as a dict). The seed's recipe parses as
it is::

    augmenter:
      type: feature_store
      features:
        - feature_namespace: user_demographics
          features: [age, country_code, gender]

Optional additions: per namespace ``entity_column``, ``defaults`` (value used
when a feature is missing) and ``max_age`` (seconds or ``"30d"``, ``"12h"``,
``"15m"``, ``"45s"``: point-in-time lookups ignore older rows, and latest-value
lookups from the online store treat values whose event time, the
``{namespace}:event_timestamp:{entity}`` key, is older at lookup time as missing); for the augmenter
``timestamp_column`` (the spine column with each row's time); and the
``loader``, ``model`` and ``evaluation`` sections used by ``fs-augment train``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fs_augment.errors import RecipeError
from fs_augment.keys import TIMESTAMP_COLUMN, entity_column_for, validate_name

__all__ = ["FeatureGroup", "LoaderSpec", "ModelSpec", "Recipe", "load_recipe", "parse_feature_specs"]

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class FeatureGroup:
    """The features read from one namespace, and the spine column that keys them.

    Examples
    --------
    >>> g = FeatureGroup("user_demographics", ("age",), "user_id")
    >>> g.qualified_names
    ('user_demographics:age',)
    """

    namespace: str
    features: tuple[str, ...]
    entity_column: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    max_age: float | None = None

    @property
    def qualified_names(self) -> tuple[str, ...]:
        """``namespace:feature`` for every feature, in order."""
        return tuple(f"{self.namespace}:{f}" for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "feature_namespace": self.namespace,
            "features": list(self.features),
            "entity_column": self.entity_column,
        }
        if self.defaults:
            out["defaults"] = dict(self.defaults)
        if self.max_age is not None:
            out["max_age"] = self.max_age
        return out


@dataclass(frozen=True)
class LoaderSpec:
    """How ``fs-augment train`` loads the entity spine from the data lake."""

    sql: str
    entity_columns: tuple[str, ...] = ()
    timestamp_column: str | None = None
    target_column: str | None = None
    uri: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """The estimator ``fs-augment train`` fits: an importable class and its parameters."""

    class_path: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """A parsed, validated recipe. Build it with :func:`load_recipe`."""

    groups: tuple[FeatureGroup, ...]
    timestamp_column: str | None = None
    loader: LoaderSpec | None = None
    model: ModelSpec | None = None
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None

    @property
    def entity_columns(self) -> tuple[str, ...]:
        """The spine columns the features are keyed by, in recipe order."""
        return tuple(dict.fromkeys(g.entity_column for g in self.groups))

    @property
    def qualified_names(self) -> tuple[str, ...]:
        """``namespace:feature`` for every declared feature, in recipe order."""
        return tuple(n for g in self.groups for n in g.qualified_names)

    def feature_specs(self) -> list[dict[str, Any]]:
        """The features as the store interface's ``feature_specs`` list."""
        return [{"namespace": g.namespace, "features": list(g.features)} for g in self.groups]

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :func:`load_recipe` reads back to an equal recipe."""
        augmenter: dict[str, Any] = {
            "type": "feature_store",
            "features": [g.to_dict() for g in self.groups],
        }
        if self.timestamp_column:
            augmenter["timestamp_column"] = self.timestamp_column
        out: dict[str, Any] = {"augmenter": augmenter}
        if self.loader is not None:
            loader = {"sql": self.loader.sql, "entity_columns": list(self.loader.entity_columns)}
            for key in ("timestamp_column", "target_column", "uri"):
                if getattr(self.loader, key) is not None:
                    loader[key] = getattr(self.loader, key)
            out["loader"] = loader
        if self.model is not None:
            out["model"] = {"class": self.model.class_path, "params": dict(self.model.params)}
        if self.evaluation:
            out["evaluation"] = dict(self.evaluation)
        return out

    def to_yaml(self) -> str:
        """The recipe as YAML text that :func:`load_recipe` reads back to an equal recipe."""
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that double-quotes text holding NEL, LS or PS.

    With ``allow_unicode`` PyYAML writes them raw in plain or single-quoted
    scalars, where reading folds them into spaces; double quotes escape them.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(c in value for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _parse_duration(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match and float(match.group(1)) > 0:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise RecipeError(f"{where}: max_age must be a positive number of seconds or like '30d', '12h', "
                      f"'15m', '45s', got {value!r}")


def _parse_group(item: Any, where: str) -> FeatureGroup:
    if not isinstance(item, Mapping):
        raise RecipeError(f"{where} must be a mapping with feature_namespace and features, "
                          f"got {type(item).__name__}")
    known = {"feature_namespace", "namespace", "features", "entity_column", "defaults", "max_age"}
    unknown = sorted(set(map(str, item)) - known)
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if "feature_namespace" in item and "namespace" in item:
        raise RecipeError(f"{where}: give feature_namespace or namespace, not both")
    namespace = item.get("feature_namespace", item.get("namespace"))
    if namespace is None:
        raise RecipeError(f"{where}: feature_namespace is missing")
    namespace = validate_name(namespace, "namespace", where)
    where = f"{where} ({namespace})"
    features = item.get("features")
    if isinstance(features, str) or not isinstance(features, Sequence) or not features:
        raise RecipeError(f"{where}: features must be a non-empty list of names, got {features!r}")
    names = tuple(validate_name(f, "feature", where) for f in features)
    if TIMESTAMP_COLUMN in names:
        raise RecipeError(f"{where}: {TIMESTAMP_COLUMN!r} is the namespace's event time, not a feature "
                          "(CONTRACT 4.4, 4.5); set max_age to use it")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RecipeError(f"{where}: feature(s) listed twice: {', '.join(dupes)}")
    entity = item.get("entity_column") or entity_column_for(namespace)
    if not isinstance(entity, str):
        raise RecipeError(f"{where}: entity_column must be a column name, got {entity!r}")
    defaults = item.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise RecipeError(f"{where}: defaults must map feature names to values, got {defaults!r}")
    stray = sorted(map(str, set(defaults) - set(names)))
    if stray:
        raise RecipeError(f"{where}: defaults for feature(s) not listed in features: {', '.join(stray)}")
    bad = [k for k, v in defaults.items() if isinstance(v, Mapping | list)]
    if bad:
        raise RecipeError(f"{where}: default of {bad[0]!r} must be a scalar")
    return FeatureGroup(namespace, names, entity, dict(defaults), _parse_duration(item.get("max_age"), where))


def parse_feature_specs(specs: Any, where: str = "feature_specs") -> tuple[FeatureGroup, ...]:
    """Parse a ``feature_specs`` list (``namespace`` or ``feature_namespace`` items).

    Examples
    --------
    >>> [g.entity_column for g in parse_feature_specs([{"namespace": "product_details", "features": ["price"]}])]
    ['product_id']
    """
    if isinstance(specs, str | Mapping) or not isinstance(specs, Sequence) or not specs:
        raise RecipeError(f"{where} must be a non-empty list of namespaces, got {specs!r}")
    groups = tuple(_parse_group(item, f"{where}[{i}]") for i, item in enumerate(specs))
    seen: set[str] = set()
    for group in groups:
        if group.namespace in seen:
            raise RecipeError(f"{where}: namespace {group.namespace!r} is listed twice; "
                              "list all its features in one item")
        seen.add(group.namespace)
    return groups


def _optional_str(section: Mapping[str, Any], key: str, where: str) -> str | None:
    value = section.get(key)
    if value is not None and not isinstance(value, str):
        raise RecipeError(f"{where}.{key} must be a string, got {value!r}")
    return value


def _parse_loader(section: Any, where: str, base_dir: Path | None) -> LoaderSpec | None:
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise RecipeError(f"{where} must be a mapping")
    sql = section.get("sql")
    sql_file = section.get("sql_file")
    if (sql is None) == (sql_file is None):
        raise RecipeError(f"{where}: give exactly one of sql or sql_file")
    if sql_file is not None:
        path = Path(sql_file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            sql = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RecipeError(f"{where}.sql_file: cannot read {path} ({exc.strerror})") from None
    if not isinstance(sql, str) or not sql.strip():
        raise RecipeError(f"{where}.sql must be a non-empty SQL string")
    entities = section.get("entity_columns") or ()
    if isinstance(entities, str) or not isinstance(entities, Sequence) or not all(isinstance(e, str) for e in entities):
        raise RecipeError(f"{where}.entity_columns must be a list of column names")
    return LoaderSpec(
        sql=sql,
        entity_columns=tuple(entities),
        timestamp_column=_optional_str(section, "timestamp_column", where),
        target_column=_optional_str(section, "target_column", where),
        uri=_optional_str(section, "uri", where),
    )


def _parse_model(section: Any, where: str) -> ModelSpec | None:
    if section is None:
        return None
    if not isinstance(section, Mapping) or not isinstance(section.get("class"), str):
        raise RecipeError(f"{where} needs 'class': an importable estimator such as "
                          "sklearn.ensemble.HistGradientBoostingClassifier")
    params = section.get("params") or {}
    if not isinstance(params, Mapping):
        raise RecipeError(f"{where}.params must be a mapping")
    return ModelSpec(section["class"], dict(params))


def _parse(data: Any, source: str | None, base_dir: Path | None) -> Recipe:
    name = source or "recipe"
    if not isinstance(data, Mapping):
        raise RecipeError(f"{name}: a recipe must be a mapping with an 'augmenter' section")
    unknown = sorted(set(map(str, data)) - {"augmenter", "loader", "model", "evaluation"})
    if unknown:
        raise RecipeError(f"{name}: unknown section(s) {', '.join(unknown)} "
                          "(known: augmenter, loader, model, evaluation)")
    augmenter = data.get("augmenter")
    if not isinstance(augmenter, Mapping):
        raise RecipeError(f"{name}: the 'augmenter' section is missing or not a mapping")
    kind = augmenter.get("type", "feature_store")
    if kind != "feature_store":
        raise RecipeError(f"{name}: augmenter.type must be 'feature_store', got {kind!r}")
    extra = sorted(set(map(str, augmenter)) - {"type", "features", "timestamp_column"})
    if extra:
        raise RecipeError(f"{name}: unknown key(s) in augmenter: {', '.join(extra)}")
    groups = parse_feature_specs(augmenter.get("features"), f"{name}: augmenter.features")
    evaluation = data.get("evaluation") or {}
    if not isinstance(evaluation, Mapping):
        raise RecipeError(f"{name}: evaluation must be a mapping")
    test_size = evaluation.get("test_size", 0.25)
    if isinstance(test_size, bool) or not isinstance(test_size, int | float) or not 0 < test_size < 1:
        raise RecipeError(f"{name}: evaluation.test_size must be between 0 and 1, got {test_size!r}")
    return Recipe(
        groups=groups,
        timestamp_column=_optional_str(augmenter, "timestamp_column", f"{name}: augmenter"),
        loader=_parse_loader(data.get("loader"), f"{name}: loader", base_dir),
        model=_parse_model(data.get("model"), f"{name}: model"),
        evaluation=dict(evaluation),
        source=source,
    )


def load_recipe(recipe: str | os.PathLike[str] | Mapping[str, Any] | Recipe) -> Recipe:
    """Load and validate a recipe from a YAML file, a dict, or pass a Recipe through.

    Parameters
    ----------
    recipe : path-like, dict or Recipe
        A YAML file, the same structure as a dict, or an already parsed recipe.

    Returns
    -------
    Recipe

    Raises
    ------
    RecipeError
        The file is missing or malformed or an item is invalid; the message
        names the file and the item.

    Examples
    --------
    >>> r = load_recipe({"augmenter": {"type": "feature_store", "features": [
    ...     {"feature_namespace": "user_demographics", "features": ["age", "country_code"]}]}})
    >>> r.qualified_names, r.entity_columns
    (('user_demographics:age', 'user_demographics:country_code'), ('user_id',))
    """
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, Mapping):
        return _parse(recipe, None, None)
    if not isinstance(recipe, str | os.PathLike):
        raise RecipeError(f"a recipe is a YAML path, a dict or a Recipe, got {type(recipe).__name__}")
    from fs_augment.config import read_yaml_file

    path = Path(recipe)
    data = read_yaml_file(path, RecipeError, "recipe")
    return _parse(data, str(path), path.parent)
