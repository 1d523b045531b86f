"""``FeatureStoreAugmenter``: the scikit-learn transformer that adds a recipe's features.

It orchestrates and holds no I/O code: lookups go through the adapter of the
environment where it runs (:mod:`fs_augment.connections`), dtypes through
:mod:`fs_augment.dtypes`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn import get_config
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from fs_augment import dtypes
from fs_augment._compat import create_dataframe_from_blocks as _create_dataframe_from_blocks
from fs_augment._compat import one_text
from fs_augment.connections import get_adapter
from fs_augment.errors import FeatureQualityWarning, MissingFeaturesError, RecipeError, SpineError
from fs_augment.keys import entity_texts, entity_to_text
from fs_augment.recipe import Recipe, load_recipe

__all__ = ["MODE_VARIABLE", "FeatureStoreAugmenter"]

#: Environment variable read by ``mode="auto"``: ``batch`` or ``online``.
MODE_VARIABLE = "FS_AUGMENT_MODE"
_MODES = ("auto", "batch", "online")
#: Frames up to this many rows are looked up online in one round trip; larger ones in chunks.
ONLINE_MAX_ROWS = 1000
_NO_DEFAULT = object()


def _by_position(column: Any, index: pd.Index) -> Any:
    """``column`` ready to be the next column of a frame with ``index``, its values in row order.

    A Series would be aligned on its own labels, so its values are taken by position; an
    object-dtype column is given as a Series on ``index`` itself (no realignment, duplicated labels
    included) and told its dtype, because pandas infers ``str`` from an object array of all-text
    values.
    """
    if isinstance(column, pd.Series):
        column = column.array
    if pd.api.types.is_object_dtype(getattr(column, "dtype", None)):
        return pd.Series(np.asarray(column, dtype=object), index=index, dtype=object, copy=False)
    return column


class _Layout:
    """The output's shape, worked out once from the fitted state (not pickled; rebuilt after a fit).

    Every transform reuses it: which input columns to read, the output's column index, and each
    feature's kind and default, so a served 1-row transform does no per-call bookkeeping.
    """

    __slots__ = ("columns", "entity_columns", "extract", "features", "fitted_labels", "names", "passthrough", "row",
                 "wanted")

    def __init__(self, augmenter: FeatureStoreAugmenter) -> None:
        recipe = augmenter.recipe_
        self.passthrough = tuple(augmenter._passthrough_columns_)
        self.entity_columns = recipe.entity_columns
        #: input columns read once per transform: passed through, or keys of a namespace
        self.extract = tuple(dict.fromkeys((*self.passthrough, *self.entity_columns)))
        #: the index pd.DataFrame would infer from the output's labels (built once here)
        self.columns = pd.Index([*self.passthrough, *augmenter.feature_columns_])
        defaults = augmenter._defaults_
        self.features = tuple(
            (name, qualified, augmenter.feature_kinds_[name], defaults.get(name, _NO_DEFAULT))
            for name, qualified in zip(augmenter.feature_columns_, augmenter._qualified_, strict=True)
        )
        self.names = tuple(augmenter.feature_columns_)
        #: the input columns seen at fit (unique: fit refuses duplicates) and the set of those read
        self.fitted_labels = list(augmenter.feature_names_in_)
        self.wanted = frozenset(self.extract)
        self.row = _RowLayout.build(self, augmenter._nullable_)


#: Input arrays a one-row output takes as they are, as pd.DataFrame(..., copy=False) would.
_ROW_PASSTHROUGH_EAS = (pd.arrays.StringArray, pd.arrays.ArrowStringArray, pd.arrays.IntegerArray,
                        pd.arrays.FloatingArray, pd.arrays.BooleanArray)
_NumpyExtensionArray = pd.arrays.NumpyExtensionArray
_ArrowStringArray = pd.arrays.ArrowStringArray
_STR = dtypes.STR_DTYPE
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class _RowLayout:
    """The block layout of a one-row output whose features are all float64 or ``str`` (the defaults).

    A served request's output is built from a handful of blocks — the passed-through input
    arrays, one 2-D ``float64`` block of every numeric feature and one ``str`` array per text
    feature — with ``pandas.api.internals.create_dataframe_from_blocks``, pandas' public
    constructor for arrays already in block form (pd.DataFrame validates and re-blocks each
    column; on a 1-row frame that costs more than the lookup's CPU). The frame equals the one
    :meth:`FeatureStoreAugmenter._assemble` builds: same labels, dtypes, values and index.
    """

    __slots__ = ("float_placement", "kinds", "passthrough_placements", "str_placements")

    @classmethod
    def build(cls, layout: _Layout, nullable: bool) -> _RowLayout | None:
        if _create_dataframe_from_blocks is None:
            return None
        kinds: list[tuple[bool, str, Any]] = []
        floats: list[int] = []
        texts: list[int] = []
        at = len(layout.passthrough)
        for _, _, kind, default in layout.features:
            if kind == "str":
                filled = None
                if default is not _NO_DEFAULT:  # the value dtypes.fill gives a missing one
                    filled = dtypes.fill(one_text(np.nan), kind, default)
                    if filled.dtype != _STR or type(filled[0]) is not str:
                        return None
                    filled = filled[0]
                kinds.append((True, kind, filled))
                texts.append(at)
            elif kind == "float" or (kind in ("int", "bool") and not nullable):
                filled = np.nan
                if default is not _NO_DEFAULT:
                    try:
                        out = dtypes.fill(np.array([np.nan]), kind, default)
                    except (TypeError, ValueError, OverflowError):
                        return None
                    if out.dtype != np.float64:
                        return None
                    filled = float(out[0])
                kinds.append((False, kind, filled))
                floats.append(at)
            else:  # object, or nullable int/bool: the general path
                return None
            at += 1
        self = cls()
        self.kinds = tuple(kinds)
        self.passthrough_placements = tuple(np.array([i], dtype=np.intp) for i in range(len(layout.passthrough)))
        self.float_placement = np.array(floats, dtype=np.intp) if floats else None
        self.str_placements = tuple(np.array([i], dtype=np.intp) for i in texts)
        return self


class FeatureStoreAugmenter(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Add the features a recipe declares, looked up in the environment's feature store.

    Parameters
    ----------
    recipe : str, path-like, dict or Recipe
        The recipe (a YAML file or its content). Its content is read at ``fit``
        and kept in the fitted object, so a pickle carries it.
    env : str, optional
        Pin the environment. By default the environment is resolved where the
        transformer runs: ``$FS_AUGMENT_ENV``, else ``local``.
    config_dir : str, optional
        Pin the config folder; by default ``$FS_AUGMENT_CONFIG_DIR``, else ``./config``.
    mode : {"auto", "batch", "online"}, default="auto"
        ``batch`` reads many entities at once (point in time when the recipe
        names a ``timestamp_column`` present in the spine); ``online`` reads
        the latest values in one round trip, as a served model does. ``auto``
        is ``$FS_AUGMENT_MODE`` if set, else ``batch``; the MLflow model
        switches its augmenters to ``online``.
    feature_name_separator : str, default="__"
        Output columns are ``namespace + separator + feature``
        (``user_demographics__age``); ``":"`` gives the store's own names.
    passthrough : bool, default=True
        Keep the input columns (seen at fit) in front of the features.
    drop_entity_columns : bool, default=False
        Drop the entity and timestamp columns from the passed-through columns.
    max_missing_rate : float, optional
        Warn or raise (see ``on_missing``) when a feature's fraction of missing
        values in a transform exceeds this.
    on_missing : {"warn", "raise"}, default="warn"
        What exceeding ``max_missing_rate`` does.
    nullable_dtypes : bool, default=False
        Pin int features to ``Int64`` and bool features to ``boolean`` (missing
        as ``pd.NA``) instead of ``float64`` (missing as NaN), which every
        scikit-learn estimator accepts.

    Attributes
    ----------
    recipe_ : Recipe
        The parsed recipe.
    feature_names_in_ : ndarray of str
        The input columns seen at fit.
    n_features_in_ : int
    feature_columns_ : list of str
        The output names of the features, in recipe order.
    feature_dtypes_ : dict
        Output feature name → pinned dtype (``float64``, ``str``, ``object``; with
        ``nullable_dtypes`` also ``Int64``, ``boolean``).
    feature_kinds_ : dict
        Output feature name → kind (``int``, ``float``, ``bool``, ``str``, ``object``).
    fitted_env_ : str
        The environment the training lookup read (recorded, not used to choose
        where to read later).
    missing_rate_ : dict
        Output feature name → fraction missing in the last fit or transform
        (before defaults).
    invalid_count_ : dict
        Output feature name → values in the last transform that did not fit
        the pinned dtype (turned missing).
    feature_stats_ : dict
        Output feature name → summary of its training values (count, missing
        rate; mean, std and quantiles of numbers; top values of categories),
        for later skew checks.

    Examples
    --------
    >>> from fs_augment import FeatureStoreAugmenter
    >>> aug = FeatureStoreAugmenter("recipes/experiment.yaml", env="local")
    >>> aug
    FeatureStoreAugmenter(env='local', recipe='recipes/experiment.yaml')
    >>> out = aug.fit_transform(spine)  # doctest: +SKIP
    """

    def __init__(
        self,
        recipe: Any,
        *,
        env: str | None = None,
        config_dir: str | None = None,
        mode: str = "auto",
        feature_name_separator: str = "__",
        passthrough: bool = True,
        drop_entity_columns: bool = False,
        max_missing_rate: float | None = None,
        on_missing: str = "warn",
        nullable_dtypes: bool = False,
    ) -> None:
        self.recipe = recipe
        self.env = env
        self.config_dir = config_dir
        self.mode = mode
        self.feature_name_separator = feature_name_separator
        self.passthrough = passthrough
        self.drop_entity_columns = drop_entity_columns
        self.max_missing_rate = max_missing_rate
        self.on_missing = on_missing
        self.nullable_dtypes = nullable_dtypes

    # --- scikit-learn API ---------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> FeatureStoreAugmenter:
        """Read the recipe, do the training lookup and pin the output's names and dtypes.

        Parameters
        ----------
        X : DataFrame
            The entity spine: the recipe's entity columns (and its timestamp
            column for point-in-time lookups).
        y : ignored

        Returns
        -------
        self
        """
        self.fit_transform(X)
        return self

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **fit_params: Any) -> pd.DataFrame:
        """Fit and return the augmented spine, with one lookup.

        A fit that fails leaves a fitted augmenter as it was before the call.
        """
        fitted = {k: v for k, v in vars(self).items() if k.endswith("_")}
        try:
            values = self._fit_lookup(X)
            out = self._assemble(X, values)
        except BaseException:
            for name in [k for k in vars(self) if k.endswith("_")]:
                delattr(self, name)
            vars(self).update(fitted)
            raise
        self.feature_stats_ = {
            name: {**summarize(out[name], self.feature_kinds_[name]),
                   "missing_rate": self.missing_rate_[name]}  # as looked up, before the recipe's defaults
            for name in self.feature_columns_
        }
        return self._output(out, X)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Return ``X`` augmented with the recipe's features.

        The output keeps ``X``'s index and row order; its features have the
        names, order and dtypes pinned at fit, in every mode.

        Parameters
        ----------
        X : DataFrame
            Entity columns (and any other columns seen at fit).

        Returns
        -------
        DataFrame
        """
        if not hasattr(self, "feature_columns_"):
            check_is_fitted(self, "feature_columns_")  # raises NotFittedError with sklearn's message
        arrays = self._input_arrays(X)
        online = self._resolve_mode() == "online"
        adapter = get_adapter(self.env, self.config_dir)
        if online and len(X.index) == 1:  # a served request: one row, one round trip
            out = self._transform_row(X, adapter, arrays)
        else:
            values = self._lookup(X, online=online, adapter=adapter, arrays=arrays)
            out = self._assemble(X, values, adapter=adapter, arrays=arrays)
        return self._output(out, X)

    def set_output(self, *, transform: str | None = None) -> FeatureStoreAugmenter:
        """Set the output container of ``transform`` and ``fit_transform``, as scikit-learn's ``set_output``.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"}, optional
            ``"default"`` and ``"pandas"`` both give a DataFrame (the augmenter's own output);
            ``"polars"`` a polars DataFrame; None leaves the configuration unchanged.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        if not hasattr(self, "_sklearn_output_config"):  # the attribute scikit-learn's clone carries over
            self._sklearn_output_config = {}
        self._sklearn_output_config["transform"] = transform
        return self

    def _output(self, out: pd.DataFrame, X: Any) -> Any:
        """``out`` in the configured output container (``set_output``, else scikit-learn's ``transform_output``).

        The class opts out of scikit-learn's automatic wrapping of ``transform``
        (``auto_wrap_output_keys=None``), whose per-call bookkeeping is a measurable part of a served
        1-row transform: the default container is answered here at once, and any other is made by
        scikit-learn's own wrapper (:class:`_Container`), so the result is exactly scikit-learn's.
        """
        config = self.__dict__.get("_sklearn_output_config")
        dense = config["transform"] if config and "transform" in config else get_config()["transform_output"]
        if dense == "default":
            return out
        return _Container(out, self.get_feature_names_out).set_output(transform=dense).transform(X)

    def _transform_row(self, X: pd.DataFrame, adapter: Any, arrays: Mapping[Any, Any]) -> pd.DataFrame:
        """:meth:`transform` of a one-row frame online: the same lookup and output, with less per-call work."""
        layout = self._layout()
        texts = []
        for column in layout.entity_columns:
            array = arrays[column]
            if type(array) is _ArrowStringArray:  # its Arrow data read directly: a third of array[0]'s cost
                texts.append(entity_to_text(array.__arrow_array__().to_pylist()[0], column))
            elif array.dtype.kind == "O":  # what entity_texts does with one value of an object-kind array
                texts.append(entity_to_text(array[0], column))
            else:
                texts.append(entity_texts(array, column)[0])
        flat = adapter.lookup_row(texts, self.recipe_.groups, online=True)
        row = layout.row
        if row is not None:
            frame = self._assemble_row(X, flat, layout, row, adapter, arrays)
            if frame is not None:
                return frame
        values = {qualified: [value] for (_, qualified, _, _), value in zip(layout.features, flat, strict=True)}
        return self._assemble(X, values, adapter=adapter, arrays=arrays)

    def _assemble_row(self, X: pd.DataFrame, flat: list[Any], layout: _Layout, row: _RowLayout, adapter: Any,
                      arrays: Mapping[Any, Any]) -> pd.DataFrame | None:
        """:meth:`_assemble` of one row whose values plainly fit their kinds (see ``dtypes._coerce_one``),
        built from blocks; None for anything else (the general path decides then)."""
        blocks: list[tuple[Any, np.ndarray]] = []
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
        floats: list[float] = []
        texts: list[Any] = []
        missing: list[float] = []
        for value, (is_text, kind, filled) in zip(flat, row.kinds, strict=True):
            if value is None:
                missing.append(1.0)
                if is_text:
                    texts.append(np.nan if filled is None else filled)
                else:
                    floats.append(filled)
                continue
            t = type(value)
            if is_text:
                if t is not str:
                    return None
                texts.append(value)
            elif kind == "float":
                if t is float:
                    if value != value:  # NaN: missing, as np.array([nan]) counts it
                        missing.append(1.0)
                        floats.append(filled)
                        continue
                elif t is not int or not _INT64_MIN <= value <= _INT64_MAX:
                    return None
                floats.append(value)
            elif kind == "int":
                if t is not int or not _INT64_MIN <= value <= _INT64_MAX or abs(float(value)) >= 2.0**63:
                    return None
                floats.append(value)
            elif t is bool:
                floats.append(value)
            else:
                return None
            missing.append(0.0)
        if row.float_placement is not None:
            blocks.append((np.array(floats, dtype="float64").reshape(-1, 1), row.float_placement.copy()))
        for text, placement in zip(texts, row.str_placements, strict=True):
            blocks.append((one_text(text), placement.copy()))
        names = layout.names
        missing_rate = dict(zip(names, missing, strict=True))
        invalid_count = dict.fromkeys(names, 0)
        frame = _create_dataframe_from_blocks(blocks, index=X.index, columns=layout.columns)
        self.missing_rate_ = missing_rate
        self.invalid_count_ = invalid_count
        adapter.metrics.record_features(1, self._qualified_, missing_rate, invalid_count)
        if self.max_missing_rate is not None:
            self._check_quality(missing_rate, invalid_count)
        return frame

    def _input_arrays(self, X: Any) -> dict[Any, Any]:
        """Check ``X`` against the fit; the arrays of the columns a transform reads (passed through, or keys)."""
        layout = self._layout()
        extract = layout.extract
        if not isinstance(X, pd.DataFrame) or len(X.columns) > len(extract) + 2:
            X = self._check_frame(X, fitting=False)
            return {column: X[column].array for column in extract}
        # a frame of (about) the fitted columns: reading them by position builds no column lookup table,
        # which costs more than the read itself on the fresh 1-row frame of each served request
        columns = list(X.items())
        labels = [label for label, _ in columns]
        if labels != layout.fitted_labels:  # the fitted columns, unique, none missing: nothing to check
            self._check_frame(X, fitting=False, labels=labels)
        wanted = layout.wanted
        arrays = {label: series.array for label, series in columns if label in wanted}
        if len(arrays) < len(extract):
            arrays.update((column, X[column].array) for column in extract if column not in arrays)
        return arrays

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_layout_", None)  # derived from the fitted state; rebuilt where the pickle is loaded
        return state

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output column names: passed-through input columns, then the features."""
        check_is_fitted(self, "feature_columns_")
        return np.asarray(self._passthrough_columns_ + self.feature_columns_, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.requires_fit = True
        return tags

    # --- internals -------------------------------------------------------------
    def _check_params(self) -> None:
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, _MODES))}, got {self.mode!r}")
        if self.on_missing not in ("warn", "raise"):
            raise ValueError(f"on_missing must be 'warn' or 'raise', got {self.on_missing!r}")
        if self.max_missing_rate is not None and not 0 <= self.max_missing_rate <= 1:
            raise ValueError(f"max_missing_rate must be between 0 and 1, got {self.max_missing_rate!r}")
        if not isinstance(self.feature_name_separator, str) or not self.feature_name_separator:
            raise ValueError(f"feature_name_separator must be a non-empty string, got {self.feature_name_separator!r}")

    def _resolve_mode(self) -> str:
        if self.mode != "auto":
            return self.mode
        mode = os.environ.get(MODE_VARIABLE, "batch")
        if mode not in ("batch", "online"):
            raise ValueError(f"{MODE_VARIABLE} must be 'batch' or 'online', got {mode!r}")
        return mode

    def _fit_lookup(self, X: pd.DataFrame) -> dict[str, Any]:
        self.__dict__.pop("_layout_", None)  # a refit pins a new output
        self._check_params()
        recipe: Recipe = load_recipe(self.recipe)
        self.recipe_ = recipe
        X = self._check_frame(X, fitting=True)
        if len(X) == 0:
            raise SpineError("cannot fit on an empty spine: the feature dtypes are pinned from the training lookup")
        sep = self.feature_name_separator
        self._qualified_ = list(recipe.qualified_names)
        self.feature_columns_ = [name.replace(":", sep, 1) for name in self._qualified_]
        if len(set(self.feature_columns_)) < len(self.feature_columns_):
            first: dict[str, str] = {}
            for qualified, name in zip(self._qualified_, self.feature_columns_, strict=True):
                if name in first:
                    raise RecipeError(
                        f"{recipe.source or 'recipe'}: features {first[name]} and {qualified} both become the output "
                        f"column {name!r} with feature_name_separator={sep!r}; choose another separator"
                    )
                first[name] = qualified
        clash = sorted(set(self.feature_columns_) & set(map(str, X.columns)))
        if clash:
            raise SpineError(f"input column(s) {', '.join(clash)} have the names of output features; rename them")
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        dropped = set(recipe.entity_columns) | ({recipe.timestamp_column} if recipe.timestamp_column else set())
        self._passthrough_columns_ = [
            c for c in X.columns if self.passthrough and not (self.drop_entity_columns and c in dropped)
        ]
        if recipe.timestamp_column is not None and recipe.timestamp_column not in X.columns:
            raise SpineError(
                f"the recipe's timestamp_column {recipe.timestamp_column!r} is not in the spine; the spine has "
                f"columns: {', '.join(map(str, X.columns))}"
            )
        adapter = get_adapter(self.env, self.config_dir)
        self.fitted_env_ = adapter.env
        values = self._lookup(X, online=self._resolve_mode() == "online", verify=True)
        defaults = {
            f"{g.namespace}{sep}{feature}": value for g in recipe.groups for feature, value in g.defaults.items()
        }
        self.feature_kinds_ = {}
        for name, qualified in zip(self.feature_columns_, self._qualified_, strict=True):
            kind = dtypes.infer_kind(values[qualified])
            if name in defaults:
                kind = self._kind_with_default(name, kind, values[qualified], defaults[name])
            self.feature_kinds_[name] = kind
        self._defaults_ = {k: v for k, v in defaults.items() if v is not None}
        self._nullable_ = bool(self.nullable_dtypes)
        self.feature_dtypes_ = {
            name: dtypes.dtype_name(kind, self._nullable_) for name, kind in self.feature_kinds_.items()
        }
        return values

    def _kind_with_default(self, name: str, kind: str, values: Any, default: Any) -> str:
        if default is None:
            return kind
        default_kind = dtypes.infer_kind([default])
        if default_kind == kind or (kind == "object" and default_kind != "object"):
            return kind
        if {kind, default_kind} <= {"int", "float"}:
            return "float"
        if dtypes.coerce(values, kind).missing == len(values):  # nothing to infer from but the default
            return default_kind
        raise RecipeError(
            f"{self.recipe_.source or 'recipe'}: default {default!r} of feature {name} does not fit its "
            f"dtype ({kind}, from the training lookup)"
        )

    def _check_frame(self, X: Any, *, fitting: bool, labels: list[Any] | None = None) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise SpineError(
                f"{type(self).__name__} takes a pandas DataFrame of entity columns, got {type(X).__name__}"
            )
        if labels is None:
            labels = X.columns.tolist()
        seen = set(labels)  # cheaper than the Index's own lookup table, which a fresh frame would build
        # a float label may be NaN, which a set does not unify: the Index decides then
        if (len(seen) != len(labels) or any(type(c) is float for c in seen)) and X.columns.has_duplicates:
            dupes = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
            raise SpineError(f"the spine has duplicated column names: {', '.join(dupes)}")
        if not fitting:
            columns = X.columns
            missing = [c for c in self.feature_names_in_ if c not in seen and c not in columns]
            if missing:
                raise SpineError(
                    f"the spine lacks column(s) seen at fit: {', '.join(map(str, missing))}; it has: "
                    f"{', '.join(map(str, X.columns))}"
                )
        return X

    def _layout(self) -> _Layout:
        layout = self.__dict__.get("_layout_")
        if layout is None:
            layout = self._layout_ = _Layout(self)
        return layout

    def _lookup(self, X: pd.DataFrame, *, online: bool, verify: bool = False, adapter: Any = None,
                arrays: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if adapter is None:
            adapter = get_adapter(self.env, self.config_dir)
        recipe = self.recipe_
        timestamp = recipe.timestamp_column
        use_time = not online and timestamp is not None and timestamp in X.columns
        online = online and len(X) <= ONLINE_MAX_ROWS
        if arrays is None or use_time:
            return adapter.lookup_columns(X, recipe.groups, online=online,
                                          timestamp_column=timestamp if use_time else None, verify=verify)
        texts = {column: entity_texts(arrays[column], column) for column in self._layout().entity_columns}
        return adapter.lookup_texts(texts, recipe.groups, online=online, verify=verify)

    def _assemble(self, X: pd.DataFrame, values: Mapping[str, Any], *, adapter: Any = None,
                  arrays: Mapping[str, Any] | None = None) -> pd.DataFrame:
        layout = self._layout()
        # keyed by position, labelled once at the end: pandas infers no column index per call; the spine's
        # arrays copied (copy-on-write tracks Series, not bare arrays: a write to the output would reach X)
        data: dict[int, Any] = dict(enumerate(
            _by_position((arrays[column] if arrays is not None else X[column].array).copy(), X.index)
            for column in layout.passthrough))
        at = len(data)
        n = len(X)
        nullable = self._nullable_
        missing_rate: dict[str, float] = {}
        invalid_count: dict[str, int] = {}
        for name, qualified, kind, default in layout.features:
            if n == 0:
                data[at] = _by_position(dtypes.empty(kind, nullable), X.index)
                missing_rate[name] = 0.0
                invalid_count[name] = 0
                at += 1
                continue
            coerced = dtypes.coerce(values[qualified], kind, nullable)
            column = coerced.values
            if coerced.missing and default is not _NO_DEFAULT:
                column = dtypes.fill(column, kind, default)
            data[at] = _by_position(column, X.index)
            at += 1
            missing_rate[name] = coerced.missing / n
            invalid_count[name] = coerced.invalid
        self.missing_rate_ = missing_rate
        self.invalid_count_ = invalid_count
        if adapter is None:
            adapter = get_adapter(self.env, self.config_dir)
        adapter.metrics.record_features(n, self._qualified_, missing_rate, invalid_count)
        self._check_quality(missing_rate, invalid_count)
        frame = pd.DataFrame(data, index=X.index, copy=False)
        frame.columns = layout.columns
        return frame

    def _check_quality(self, missing_rate: Mapping[str, float], invalid: Mapping[str, int]) -> None:
        bad_types = {k: v for k, v in invalid.items() if v}
        if bad_types:
            shown = ", ".join(f"{k} ({v})" for k, v in bad_types.items())
            warnings.warn(
                f"stored values that do not fit the feature's dtype were read as missing: {shown}",
                FeatureQualityWarning,
                stacklevel=3,
            )
        if self.max_missing_rate is None:
            return
        over = {k: v for k, v in missing_rate.items() if v > self.max_missing_rate}
        if not over:
            return
        shown = ", ".join(f"{k} {v:.1%}" for k, v in over.items())
        message = f"features missing more often than max_missing_rate={self.max_missing_rate}: {shown}"
        if self.on_missing == "raise":
            raise MissingFeaturesError(message)
        warnings.warn(message, FeatureQualityWarning, stacklevel=3)


class _Container(TransformerMixin):
    """Hands an augmenter's output to scikit-learn's ``set_output`` wrapping, for the non-default containers.

    Its ``transform`` is wrapped by scikit-learn (``_SetOutputMixin``) as the augmenter's was before it
    opted out, so ``pandas``/``polars`` output and the errors for unknown ones are scikit-learn's.
    """

    def __init__(self, out: pd.DataFrame, names: Any) -> None:
        self._out = out
        self._names = names

    def fit(self, X: Any, y: Any = None) -> _Container:
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        return self._out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return self._names()


def summarize(column: pd.Series, kind: str, top: int = 20) -> dict[str, Any]:
    """Summary statistics of one feature column, as plain JSON-ready data."""
    n = len(column)
    present = column.dropna()
    out: dict[str, Any] = {
        "kind": kind,
        "dtype": str(column.dtype),
        "count": len(present),
        "missing_rate": float(1 - len(present) / n) if n else 0.0,
    }
    if kind in ("int", "float") and len(present):
        numbers = present.astype("float64").clip(-1e150, 1e150)  # keeps std finite
        q = numbers.quantile([0.05, 0.5, 0.95]).tolist()
        out.update(mean=float(numbers.mean()), std=float(numbers.std(ddof=0)), min=float(numbers.min()),
                   max=float(numbers.max()), p05=q[0], p50=q[1], p95=q[2])
    elif kind in ("str", "bool") and len(present):
        counts = present.astype(str).value_counts(normalize=True).head(top)
        out["top_values"] = {str(k): float(v) for k, v in counts.items()}
        out["distinct"] = int(present.astype(str).nunique())
    return out
