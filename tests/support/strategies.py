"""Hypothesis strategies shared by the test suite.

Names say what a strategy draws; every strategy draws values the library is
meant to accept unless its name says otherwise (``bad_...``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "config_trees",
    "entity_values",
    "env_var_names",
    "feature_columns",
    "integral_floats",
    "json_scalars",
    "json_values",
    "names",
    "passwords",
    "recipe_dicts",
    "texts_without_placeholder",
]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# --- JSON values ------------------------------------------------------------------


def json_scalars() -> st.SearchStrategy[Any]:
    """Every JSON scalar as Python decodes it: None, bools, ints (big ones too), finite floats, text.

    Text includes strings that look like other JSON values (``"34"``, ``"true"``, ``"null"``).
    """
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),
        st.sampled_from(["34", "-7", "1250.50", "1e3", "true", "false", "null", "NaN", "KR", "", " 5 "]),
    )


def json_values() -> st.SearchStrategy[Any]:
    """A JSON scalar or a (possibly nested) list of them."""
    return st.recursive(json_scalars(), lambda inner: st.lists(inner, max_size=5), max_leaves=12)


# --- names and entities ------------------------------------------------------------

_NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


def names(max_size: int = 12) -> st.SearchStrategy[str]:
    """A valid namespace or feature name: ``[A-Za-z0-9_.-]+``."""
    return st.text(alphabet=_NAME_ALPHABET, min_size=1, max_size=max_size)


def integral_floats() -> st.SearchStrategy[float]:
    """Finite floats with an integral value, small and far beyond int64."""
    return st.one_of(
        st.integers(min_value=-(2**53), max_value=2**53).map(float),
        st.floats(allow_nan=False, allow_infinity=False).map(math.floor),
    ).map(float)


def entity_values() -> st.SearchStrategy[Any]:
    """An entity value the key contract accepts (str, Python/NumPy ints, integral floats)."""
    return st.one_of(
        st.text(),
        st.integers(),
        st.integers(min_value=INT64_MIN, max_value=INT64_MAX).map(np.int64),
        integral_floats(),
        integral_floats().map(np.float64),
    )


# --- configuration -------------------------------------------------------------------

_PASSWORD_CHARACTERS = st.characters(
    categories=("L", "M", "N", "P", "S", "Zs"),
    include_characters="'\"$:{}\\%#@!`",
    codec="utf-8",
)


def passwords() -> st.SearchStrategy[str]:
    """A non-empty password of printable unicode, quotes, ``$``, ``:`` and braces included.

    Includes strings YAML would read as other types (``"0x10"``, ``"true"``, ``"1.5"``, ``"~"``).
    """
    return st.one_of(
        st.text(alphabet=_PASSWORD_CHARACTERS, min_size=1, max_size=40),
        st.sampled_from(["0x10", "010", "1_000", "1.5", "true", "no", "null", "~", "12:30", "${X}", "a: b"]),
    )


def env_var_names() -> st.SearchStrategy[str]:
    """A name ``${NAME}`` interpolation accepts."""
    return st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)


def texts_without_placeholder(**kwargs: Any) -> st.SearchStrategy[str]:
    """Text that contains no ``${`` (and so is never interpolated)."""
    return st.text(**kwargs).filter(lambda s: "${" not in s)


_TREE_KEYS = st.text(alphabet="abcd", min_size=1, max_size=2)


def config_trees(max_leaves: int = 20) -> st.SearchStrategy[dict[str, Any]]:
    """A parsed YAML mapping: nested maps of short keys (so two trees share keys), scalars and lists."""
    leaves = st.one_of(json_scalars(), st.lists(json_scalars(), max_size=3))
    return st.dictionaries(
        _TREE_KEYS,
        st.recursive(leaves, lambda inner: st.dictionaries(_TREE_KEYS, inner, max_size=4), max_leaves=max_leaves),
        max_size=4,
    )


# --- recipes -------------------------------------------------------------------------


def _max_ages() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=1, max_value=10**9),
        st.floats(min_value=0.001, max_value=1e9),
        st.builds(lambda n, unit: f"{n}{unit}", st.integers(min_value=1, max_value=999), st.sampled_from("smhdw")),
    )


@st.composite
def _feature_groups(draw: st.DrawFn, namespace: str) -> dict[str, Any]:
    features = draw(st.lists(names(), min_size=1, max_size=5, unique=True))
    group: dict[str, Any] = {
        draw(st.sampled_from(["feature_namespace", "namespace"])): namespace,
        "features": features,
    }
    if draw(st.booleans()):
        group["entity_column"] = draw(names())
    if draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(features), unique=True, max_size=len(features)))
        group["defaults"] = {f: draw(json_scalars()) for f in chosen}
    if draw(st.booleans()):
        group["max_age"] = draw(_max_ages())
    return group


@st.composite
def recipe_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid recipe as plain data, every optional section drawn or left out."""
    namespaces = draw(st.lists(names(), min_size=1, max_size=4, unique=True))
    augmenter: dict[str, Any] = {
        "type": "feature_store",
        "features": [draw(_feature_groups(ns)) for ns in namespaces],
    }
    if draw(st.booleans()):
        augmenter["timestamp_column"] = draw(names())
    recipe: dict[str, Any] = {"augmenter": augmenter}
    if draw(st.booleans()):
        loader: dict[str, Any] = {
            "sql": draw(st.text(min_size=1).filter(str.strip)),
            "entity_columns": draw(st.lists(names(), max_size=3)),
        }
        for key in ("timestamp_column", "target_column"):
            if draw(st.booleans()):
                loader[key] = draw(names())
        if draw(st.booleans()):
            loader["uri"] = draw(st.sampled_from(["file://./lake", "bq://project.dataset"]))
        recipe["loader"] = loader
    if draw(st.booleans()):
        recipe["model"] = {
            "class": "sklearn.linear_model.LogisticRegression",
            "params": draw(st.dictionaries(names(), json_scalars(), max_size=3)),
        }
    if draw(st.booleans()):
        recipe["evaluation"] = {"test_size": draw(st.floats(min_value=0.01, max_value=0.99))}
    return recipe


# --- looked-up feature values ---------------------------------------------------------

_FEATURE_FAMILIES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    "float": st.floats(),
    "bool": st.booleans(),
    "str": st.text(max_size=8),
    "object": st.lists(st.integers(), max_size=3),
}


@st.composite
def feature_columns(draw: st.DrawFn, kind: str | None = None) -> tuple[str, list[Any]]:
    """``(kind, values)``: a homogeneous column of decoded values of one kind, with None for missing.

    ``object`` columns hold JSON arrays. A column that happens to hold only missing values has
    kind ``float``, as :func:`fs_augment.dtypes.infer_kind` reads it.
    """
    kind = kind or draw(st.sampled_from(sorted(_FEATURE_FAMILIES)))
    values = draw(st.lists(st.one_of(st.none(), _FEATURE_FAMILIES[kind]), max_size=30))
    if all(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
        kind = "float"
    return kind, values
