"""The fitted layout of an augmenter's output, and the one-row online path a served request takes.

:class:`Layout` is worked out once from a fitted :class:`~fs_augment.FeatureStoreAugmenter`
(which input columns to read, the output's column index, each feature's kind and default,
the recipe's :class:`~fs_augment.plan.LookupPlan`); every transform reuses it.

:func:`transform_row` is ``transform`` of a one-row frame online: the same lookup and the same
output as the general path of :mod:`fs_augment.augmenter`, with less per-call work. When the
features are all float64 or ``str`` (the defaults) the output is built from a handful of
blocks (:class:`RowLayout`); for anything else, or a value that does not plainly fit its kind,
it falls back to the general path, so the two always agree (``tests/test_serving_path.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fs_augment import dtypes
from fs_augment._compat import create_dataframe_from_blocks as _create_dataframe_from_blocks
from fs_augment._compat import one_text
from fs_augment.keys import entity_texts, entity_to_text
from fs_augment.plan import LookupPlan

if TYPE_CHECKING:
    from fs_augment.adapter import FeatureStoreAdapter
    from fs_augment.augmenter import FeatureStoreAugmenter

__all__ = ["NO_DEFAULT", "Layout", "RowLayout", "column_arrays", "transform_row"]

#: A feature without a recipe default.
NO_DEFAULT: Any = object()

#: Input arrays a one-row output takes as they are, as pd.DataFrame(..., copy=False) would.
_ROW_PASSTHROUGH_EAS = (pd.arrays.StringArray, pd.arrays.ArrowStringArray, pd.arrays.IntegerArray,
                        pd.arrays.FloatingArray, pd.arrays.BooleanArray)
_NumpyExtensionArray = pd.arrays.NumpyExtensionArray
_ArrowStringArray = pd.arrays.ArrowStringArray
_STR = dtypes.STR_DTYPE
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INFINITIES = (float("inf"), float("-inf"))
#: A value that does not plainly fit its kind: the general path decides what it is.
_UNPLAIN = object()


class Layout:
    """The output's shape, worked out once from the fitted state (not pickled; rebuilt after a fit or unpickling).

    Parameters
    ----------
    augmenter : FeatureStoreAugmenter
        A fitted augmenter.
    """

    __slots__ = ("columns", "entity_columns", "extract", "features", "fitted_labels", "names", "passthrough", "plan",
                 "row", "wanted")

    def __init__(self, augmenter: FeatureStoreAugmenter) -> None:
        recipe = augmenter.recipe_
        #: the recipe's lookup plan, handed to the adapter on every call
        self.plan = LookupPlan(recipe.groups)
        self.passthrough = tuple(augmenter._passthrough_columns_)
        self.entity_columns = recipe.entity_columns
        #: input columns read once per transform: passed through, or keys of a namespace
        self.extract = tuple(dict.fromkeys((*self.passthrough, *self.entity_columns)))
        #: the index pd.DataFrame would infer from the output's labels (built once here)
        self.columns = pd.Index([*self.passthrough, *augmenter.feature_columns_])
        defaults = augmenter._defaults_
        self.features = tuple(
            (name, qualified, augmenter.feature_kinds_[name], defaults.get(name, NO_DEFAULT))
            for name, qualified in zip(augmenter.feature_columns_, augmenter._qualified_, strict=True)
        )
        self.names = tuple(augmenter.feature_columns_)
        #: the input columns seen at fit (unique: fit refuses duplicates) and the set of those read
        self.fitted_labels = list(augmenter.feature_names_in_)
        self.wanted = frozenset(self.extract)
        self.row = RowLayout.build(self, augmenter._nullable_)


class RowLayout:
    """The block layout of a one-row output whose features are all float64 or ``str`` (the defaults).

    A served request's output is built from a handful of blocks — the passed-through input
    arrays, one 2-D ``float64`` block of every numeric feature and one ``str`` array per text
    feature — with ``pandas.api.internals.create_dataframe_from_blocks``, pandas' public
    constructor for arrays already in block form (pd.DataFrame validates and re-blocks each
    column; on a 1-row frame that costs more than the lookup's CPU). The frame equals the one
    the general path builds: same labels, dtypes, values and index.
    """

    __slots__ = ("float_placement", "kinds", "passthrough_placements", "str_placements")
    kinds: tuple[tuple[bool, str, Any], ...]
    passthrough_placements: tuple[np.ndarray, ...]
    float_placement: np.ndarray | None
    str_placements: tuple[np.ndarray, ...]

    @classmethod
    def build(cls, layout: Layout, nullable: bool) -> RowLayout | None:
        """The block layout of ``layout``'s one-row output, or None when a feature needs the general path."""
        if _create_dataframe_from_blocks is None:
            return None
        kinds: list[tuple[bool, str, Any]] = []
        floats: list[int] = []
        texts: list[int] = []
        for at, (_, _, kind, default) in enumerate(layout.features, start=len(layout.passthrough)):
            if kind == "str":
                filled = _text_fill(default)
                texts.append(at)
            elif kind == "float" or (kind in ("int", "bool") and not nullable):
                filled = _number_fill(kind, default)
                floats.append(at)
            else:  # object, or nullable int/bool: the general path
                return None
            if filled is _UNPLAIN:
                return None
            kinds.append((kind == "str", kind, filled))
        self = cls()
        self.kinds = tuple(kinds)
        self.passthrough_placements = tuple(np.array([i], dtype=np.intp) for i in range(len(layout.passthrough)))
        self.float_placement = np.array(floats, dtype=np.intp) if floats else None
        self.str_placements = tuple(np.array([i], dtype=np.intp) for i in texts)
        return self


def _text_fill(default: Any) -> Any:
    """What a missing value of a ``str`` feature becomes (None: stays missing), as dtypes.fill gives it."""
    if default is NO_DEFAULT:
        return None
    filled = dtypes.fill(one_text(np.nan), "str", default)
    if filled.dtype != _STR or type(filled[0]) is not str:
        return _UNPLAIN
    return filled[0]


def _number_fill(kind: str, default: Any) -> Any:
    """What a missing value of a float64 feature becomes, as dtypes.fill gives it."""
    if default is NO_DEFAULT:
        return np.nan
    try:
        out = dtypes.fill(np.array([np.nan]), kind, default)
    except (TypeError, ValueError, OverflowError):
        return _UNPLAIN
    return float(out[0]) if out.dtype == np.float64 else _UNPLAIN


def column_arrays(X: pd.DataFrame) -> list[tuple[Any, Any]]:
    """``(label, array)`` of every column of ``X``, in order, without a Series per column.

    ``DataFrame._get_column_array`` is pandas' own accessor (2.x and 3.x); a served request's
    fresh frame reads its columns in a third of ``DataFrame.items()``'s time with it. Its
    behaviour is pinned by ``tests/test_serving_path.py``; without it, ``items()`` serves.
    """
    if _GET_COLUMN_ARRAY is None:  # pragma: no cover - a pandas without it
        return [(label, series.array) for label, series in X.items()]
    get = _GET_COLUMN_ARRAY
    return [(label, _as_extension_array(get(X, i))) for i, label in enumerate(column_labels(X.columns))]


def column_labels(columns: pd.Index) -> list[Any]:
    """``list(columns)``; the labels of a ``str`` index read from its Arrow data (a quarter of the cost)."""
    array = columns.array
    if type(array) is _ArrowStringArray:
        arrow = array.__arrow_array__()
        if not arrow.null_count:  # a missing label is NaN in list(columns), None in Arrow's list
            return arrow.to_pylist()  # type: ignore[no-any-return]
    return list(columns)


def _as_extension_array(array: Any) -> Any:
    """The array ``Series.array`` gives for a column's values (numpy ones are wrapped as pandas wraps them)."""
    return _NumpyExtensionArray(array) if isinstance(array, np.ndarray) else array


_GET_COLUMN_ARRAY = getattr(pd.DataFrame, "_get_column_array", None)


def row_texts(layout: Layout, arrays: Mapping[Any, Any]) -> list[str | None]:
    """The key text of the one row's entity in each of the layout's entity columns."""
    texts = []
    for column in layout.entity_columns:
        array = arrays[column]
        if type(array) is _ArrowStringArray:  # its Arrow data read directly: a third of array[0]'s cost
            texts.append(entity_to_text(array.__arrow_array__().to_pylist()[0], column))
        elif array.dtype.kind == "O":  # what entity_texts does with one value of an object-kind array
            texts.append(entity_to_text(array[0], column))
        else:
            texts.append(entity_texts(array, column)[0])
    return texts


def transform_row(augmenter: FeatureStoreAugmenter, X: pd.DataFrame, adapter: FeatureStoreAdapter,
                  arrays: Mapping[Any, Any]) -> pd.DataFrame:
    """``augmenter.transform`` of the one-row frame ``X`` online, with ``arrays`` its columns' arrays."""
    layout = augmenter._layout()
    flat = adapter.lookup_row(row_texts(layout, arrays), layout.plan, online=True)
    row = layout.row
    if row is not None:
        built = assemble_row(X.index, flat, layout, row, arrays)
        if built is not None:
            frame, missing_rate = built
            invalid_count = dict.fromkeys(layout.names, 0)
            adapter.metrics.record_features(1, augmenter._qualified_, missing_rate, invalid_count)
            monitor = augmenter.__dict__.get("_drift_monitor")
            if monitor is not None:  # the values plainly fit their kinds: counted as they are
                monitor.attach(adapter.metrics)
                monitor.observe_row(flat)
            if augmenter.max_missing_rate is not None:
                augmenter._check_quality(missing_rate, invalid_count)
            return frame
    values = {qualified: [value] for (_, qualified, _, _), value in zip(layout.features, flat, strict=True)}
    return augmenter._assemble(X, values, adapter=adapter, arrays=arrays)[0]


def assemble_row(index: pd.Index, flat: list[Any], layout: Layout, row: RowLayout,
                 arrays: Mapping[Any, Any]) -> tuple[pd.DataFrame, dict[str, float]] | None:
    """The one-row output and each feature's missing rate, built from blocks; None unless every value plainly fits.

    "Plainly" is what ``dtypes`` would keep as it is: text for ``str``, a finite float or an
    int64 for ``float``, an int64 for ``int``, a bool for ``bool``. Anything else (an invalid
    value to count, a big int, an object column passed through) goes the general path.
    """
    blocks = _passthrough_blocks(layout, row, arrays)
    if blocks is None:
        return None
    floats: list[float] = []
    texts: list[Any] = []
    missing: list[float] = []
    for value, (is_text, kind, filled) in zip(flat, row.kinds, strict=True):
        cell = _plain_cell(value, is_text, kind)
        if cell is _UNPLAIN:
            return None
        if cell is None:
            missing.append(1.0)
            cell = (np.nan if filled is None else filled) if is_text else filled
        else:
            missing.append(0.0)
        (texts if is_text else floats).append(cell)
    if row.float_placement is not None:
        blocks.append((np.array(floats, dtype="float64").reshape(-1, 1), row.float_placement.copy()))
    for text, placement in zip(texts, row.str_placements, strict=True):
        blocks.append((one_text(text), placement.copy()))
    assert _create_dataframe_from_blocks is not None  # RowLayout.build gives None without it
    frame = _create_dataframe_from_blocks(blocks, index=index, columns=layout.columns)
    return frame, dict(zip(layout.names, missing, strict=True))


def _passthrough_blocks(layout: Layout, row: RowLayout, arrays: Mapping[Any, Any]) -> list[tuple[Any, Any]] | None:
    """The passed-through input columns as blocks, or None when one needs pd.DataFrame's inference (object)."""
    blocks: list[tuple[Any, Any]] = []
    for column, placement in zip(layout.passthrough, row.passthrough_placements, strict=True):
        array = arrays[column]
        if type(array) is _NumpyExtensionArray:
            array = array.to_numpy(copy=True)
            if array.dtype.kind not in "biuf":  # object columns are inferred by pd.DataFrame
                return None
            array = array.reshape(1, 1)
        elif isinstance(array, _ROW_PASSTHROUGH_EAS):
            array = array.copy()
        else:
            return None
        # the frame owns its arrays (a write to it must not reach the spine) and placements (pandas keeps them)
        blocks.append((array, placement.copy()))
    return blocks


def _plain_cell(value: Any, is_text: bool, kind: str) -> Any:
    """``value`` as its cell (None: missing), or ``_UNPLAIN`` when it does not plainly fit ``kind``."""
    if value is None:
        return None
    t = type(value)
    if is_text:
        return value if t is str else _UNPLAIN
    if t is float:
        if kind != "float" or value in _INFINITIES:  # an infinity is invalid: counted on the general path
            return _UNPLAIN
        return None if value != value else value  # NaN: missing, as np.array([nan]) counts it
    if t is int:
        if not _INT64_MIN <= value <= _INT64_MAX or (kind == "int" and abs(float(value)) >= 2.0**63):
            return _UNPLAIN
        return value if kind in ("float", "int") else _UNPLAIN
    if t is bool and kind == "bool":
        return value
    return _UNPLAIN
