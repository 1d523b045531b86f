"""``FeatureStoreAugmenter``: the scikit-learn transformer that adds a recipe's features.

It orchestrates and holds no I/O code: lookups go through the adapter of the
environment where it runs (:mod:`fs_augment.connections`), dtypes through
:mod:`fs_augment.dtypes`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from fs_augment import dtypes
from fs_augment._frames import Frame, as_pandas, by_position, in_container
from fs_augment._serving import NO_DEFAULT, Layout, column_arrays, transform_row
from fs_augment.connections import get_adapter
from fs_augment.drift import DriftMonitor, reference
from fs_augment.errors import FeatureQualityWarning, MissingFeaturesError, RecipeError, SpineError
from fs_augment.keys import entity_texts, parse_as_of
from fs_augment.plan import LookupPlan
from fs_augment.recipe import Recipe, load_recipe
from fs_augment.spine_query import SpineQuery, run_spine_query
from fs_augment.training_values import summarize, warn_about_training_values

if TYPE_CHECKING:
    import pyarrow as pa
    from sklearn.utils import Tags

    from fs_augment.adapter import FeatureStoreAdapter

__all__ = ["MODE_VARIABLE", "FeatureStoreAugmenter"]

#: Environment variable read by ``mode="auto"``: ``batch`` or ``online``.
MODE_VARIABLE = "FS_AUGMENT_MODE"
_MODES = ("auto", "batch", "online")
#: Frames up to this many rows are looked up online in one round trip; larger ones in chunks.
ONLINE_MAX_ROWS = 1000


def _aligned(table: pa.Table) -> dict[str, Any]:
    """The feature values of a spine joined in place."""
    from fs_augment.stores._conversion import aligned_values  # pyarrow: only for spine queries

    return aligned_values(table)


# scikit-learn has no hints, so mypy checks the keyword against object.__init_subclass__
class FeatureStoreAugmenter(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[call-arg]
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
    as_of : datetime or str, optional
        Read the offline store as it was at this time (a datetime, naive meaning
        UTC, or ISO 8601 text), so that a training set can be rebuilt exactly
        later: batch lookups ignore the feature rows created after it (created
        is ``created_timestamp`` where the table has it and it is not null, else
        ``event_timestamp``). Point-in-time lookups then use only rows created
        by ``as_of``; batch lookups without a timestamp column read each
        entity's latest row created by then from the offline store (not the
        online store). Online lookups do not apply it: the online store holds
        only the values of now. See :doc:`/point_in_time`.

    Attributes
    ----------
    recipe_ : Recipe
        The parsed recipe.
    feature_names_in_ : ndarray of str
        The input columns seen at fit.
    n_features_in_ : int
    input_kinds_ : dict
        Input column → kind of its values at fit (``str``, ``int``, ``float``,
        ``bool``, ``datetime``, or ``object`` when ambiguous; see
        :func:`fs_augment.dtypes.input_kind`), which a logged model declares
        in its signature.
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
    as_of_ : Timestamp or None
        ``as_of`` read as a UTC :class:`pandas.Timestamp` (None when unset); every
        batch lookup of the fitted augmenter, fit and transform, reads the
        offline store as of this time.
    missing_rate_ : dict
        Output feature name → fraction missing in the training lookup (before
        defaults). A transform changes no fitted state: its figures go to the
        adapter's metrics (``fs_augment.connect(...).metrics``).
    invalid_count_ : dict
        Output feature name → values in the training lookup that did not fit
        the pinned dtype (turned missing).
    feature_stats_ : dict
        Output feature name → summary of its training values (count, missing
        rate; mean, std and quantiles of numbers; top values of categories),
        for later skew checks, and what serving drift is measured against
        (``bins`` of a number, ``categories`` of a text, from the values as looked
        up: see :mod:`fs_augment.drift` and :meth:`monitor_drift`).

    Examples
    --------
    A demo project (its ``local`` environment serves features from parquet files, no server):

    >>> import tempfile
    >>> import pandas as pd
    >>> from fs_augment import FeatureStoreAugmenter
    >>> from fs_augment.demo import write_demo_data
    >>> project = write_demo_data(tempfile.mkdtemp(), users=20, products=5, rows=50)
    >>> recipe = {"augmenter": {"features": [
    ...     {"feature_namespace": "user_demographics", "features": ["age", "country_code"]}]}}
    >>> aug = FeatureStoreAugmenter(recipe, env="local", config_dir=project.config_dir)
    >>> spine = pd.DataFrame({"user_id": ["user1", "user2", "nobody"]})
    >>> aug.fit_transform(spine)
      user_id  user_demographics__age user_demographics__country_code
    0   user1                    26.0                              GB
    1   user2                    35.0                              KR
    2  nobody                     NaN                             NaN
    >>> aug.get_feature_names_out().tolist()
    ['user_id', 'user_demographics__age', 'user_demographics__country_code']
    >>> aug.missing_rate_
    {'user_demographics__age': 0.3333333333333333, 'user_demographics__country_code': 0.3333333333333333}
    """

    def __init__(
        self,
        recipe: str | os.PathLike[str] | Mapping[str, Any] | Recipe,
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
        as_of: Any = None,
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
        self.as_of = as_of

    # --- scikit-learn API ---------------------------------------------------
    def fit(self, X: Frame | SpineQuery, y: Any = None) -> FeatureStoreAugmenter:
        """Read the recipe, do the training lookup and pin the output's names and dtypes.

        Parameters
        ----------
        X : DataFrame or SpineQuery
            The entity spine: the recipe's entity columns (and its timestamp
            column for point-in-time lookups). A polars DataFrame is converted
            to pandas first. A :class:`~fs_augment.SpineQuery` is Loader SQL
            whose rows are the spine: in BigQuery, point in time, it is joined
            in place (see :mod:`fs_augment.spine_query`).
        y : ignored

        Returns
        -------
        self
        """
        self.fit_transform(X)
        return self

    def fit_transform(self, X: Frame | SpineQuery, y: Any = None, **fit_params: Any) -> Frame:
        """Fit and return the augmented spine, with one lookup.

        A fit that fails leaves a fitted augmenter as it was before the call.

        Parameters
        ----------
        X : DataFrame or SpineQuery
            The entity spine, as for :meth:`fit`.
        y : ignored
        **fit_params
            Passed on to ``fit`` as scikit-learn's ``TransformerMixin`` does;
            ``fit`` takes none, so any raises ``TypeError`` rather than being
            dropped silently (e.g. ``pipeline.fit(X, y, augment__sample_weight=w)``).

        Returns
        -------
        DataFrame
        """
        if fit_params:
            raise TypeError(
                f"{type(self).__name__}.fit() got unexpected keyword argument(s) "
                f"{', '.join(map(repr, sorted(fit_params)))}: it takes only X and y")
        values = None
        if isinstance(X, SpineQuery):
            X, table = self._run_spine_query(X, load_recipe(self.recipe), self.as_of)
            values = None if table is None else _aligned(table)
        return self._fit_transform_values(as_pandas(X), values)

    def _fit_transform_values(self, X: pd.DataFrame, values: Mapping[str, Any] | None) -> Frame:
        """:meth:`fit_transform` of a spine whose feature values were looked up already (None: look them up)."""
        fitted = {k: v for k, v in vars(self).items() if k.endswith("_")}
        looked_up: dict[str, Any] = {}
        try:
            values = self._fit_lookup(X, values)
            out, self.missing_rate_, self.invalid_count_ = self._assemble(X, values, looked_up=looked_up)
            self._layout()  # built now, so that no transform writes the estimator
        except BaseException:
            for name in [k for k in vars(self) if k.endswith("_")]:
                delattr(self, name)
            self.__dict__.update(fitted)
            raise
        self.feature_stats_ = {
            name: {**summarize(out[name], self.feature_kinds_[name]),
                   "missing_rate": self.missing_rate_[name],  # as looked up, before the recipe's defaults
                   **reference(looked_up[name], self.feature_kinds_[name])}
            for name in self.feature_columns_
        }
        return self._output(out, X)

    def transform(self, X: Frame | SpineQuery) -> Frame:
        """Return ``X`` augmented with the recipe's features.

        The output keeps ``X``'s index and row order; its features have the
        names, order and dtypes pinned at fit, in every mode.

        Parameters
        ----------
        X : DataFrame or SpineQuery
            Entity columns (and any other columns seen at fit); pandas, or
            polars (converted to pandas first), or a :class:`~fs_augment.SpineQuery`
            returning them (the output then has the query's rows, in its order).

        Returns
        -------
        DataFrame
        """
        if not hasattr(self, "feature_columns_"):
            check_is_fitted(self, "feature_columns_")  # raises NotFittedError with sklearn's message
        if isinstance(X, SpineQuery):
            X, table = self._run_spine_query(X, self.recipe_, self.__dict__.get("as_of_"))
            if table is not None:
                return self._transform_values(X, _aligned(table))
        X = as_pandas(X)
        arrays = self._input_arrays(X)
        online = self._resolve_mode() == "online"
        adapter = get_adapter(self.env, self.config_dir)
        if online and len(X.index) == 1:  # a served request: one row, one round trip
            out = transform_row(self, X, adapter, arrays)
        else:
            values = self._lookup(X, online=online, adapter=adapter, arrays=arrays)
            out = self._assemble(X, values, adapter=adapter, arrays=arrays)[0]
        return self._output(out, X)

    def _transform_values(self, X: pd.DataFrame, values: Mapping[str, Any]) -> Frame:
        """:meth:`transform` of a spine whose feature values were looked up already."""
        arrays = self._input_arrays(X)
        adapter = get_adapter(self.env, self.config_dir)
        return self._output(self._assemble(X, values, adapter=adapter, arrays=arrays)[0], X)

    def _run_spine_query(self, query: SpineQuery, recipe: Recipe, as_of: Any) -> tuple[pd.DataFrame, pa.Table | None]:
        """The rows of ``query`` and, when joined in place, their features (see :func:`run_spine_query`)."""
        from fs_augment.config import load_config

        self._check_params()
        adapter = get_adapter(self.env, self.config_dir)
        config = adapter.config if adapter.config is not None else load_config(adapter.env, self.config_dir)
        timestamp = recipe.timestamp_column if self._resolve_mode() == "batch" else None
        return run_spine_query(query, adapter, recipe.groups, timestamp, config, as_of=as_of)

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

    def _output(self, out: pd.DataFrame, X: Any) -> Frame:
        """``out`` in the configured output container (``set_output``, else scikit-learn's ``transform_output``).

        The class opts out of scikit-learn's automatic wrapping of ``transform``
        (``auto_wrap_output_keys=None``), whose per-call bookkeeping is a measurable part of a served
        1-row transform: the default container is answered at once, and any other is made by
        scikit-learn's own wrapper (:func:`fs_augment._frames.in_container`), so the result is scikit-learn's.
        """
        return in_container(out, X, self.__dict__.get("_sklearn_output_config"), self.get_feature_names_out)

    def _input_arrays(self, X: Any) -> dict[Any, Any]:
        """Check ``X`` against the fit; the arrays of the columns a transform reads (passed through, or keys)."""
        layout = self._layout()
        extract = layout.extract
        if not isinstance(X, pd.DataFrame) or len(X.columns) > len(extract) + 2:
            X = self._check_frame(X, fitting=False)
            return {column: X[column].array for column in extract}
        # a frame of (about) the fitted columns: reading them by position builds no column lookup table,
        # which costs more than the read itself on the fresh 1-row frame of each served request
        columns = column_arrays(X)
        labels = [label for label, _ in columns]
        if labels != layout.fitted_labels:  # the fitted columns, unique, none missing: nothing to check
            self._check_frame(X, fitting=False, labels=labels)
        wanted = layout.wanted
        arrays = {label: array for label, array in columns if label in wanted}
        if len(arrays) < len(extract):
            arrays.update((column, X[column].array) for column in extract if column not in arrays)
        return arrays

    def monitor_drift(self, enabled: bool = True, **options: Any) -> DriftMonitor | None:
        """Keep rolling statistics of what :meth:`transform` looks up, against the training values.

        The monitor's report (``monitor.report()``) is also published under ``drift`` in the
        snapshots of the adapter's metrics (``adapter.metrics.snapshot()``, and the monitoring
        payload). It is not pickled, and a refit drops it. A model logged with
        :func:`fs_augment.mlflow.log_model` turns it on when it loads.

        Parameters
        ----------
        enabled : bool, default=True
            False stops monitoring (and returns None).
        **options
            Passed on to :class:`~fs_augment.drift.DriftMonitor` (``window``, ``sub_windows``,
            ``clock``, ``psi_threshold``, ``missing_threshold``, ``min_rows``, ``warn_every``).

        Returns
        -------
        DriftMonitor or None

        Examples
        --------
        >>> monitor = aug.monitor_drift(window=600)  # doctest: +SKIP
        >>> aug.transform(requests)  # doctest: +SKIP
        >>> monitor.report()["user_demographics__age"]["psi"]  # doctest: +SKIP
        0.013
        """
        check_is_fitted(self, "feature_columns_")
        if not enabled:
            self.__dict__.pop("_drift_monitor", None)
            return None
        monitor = DriftMonitor(self.feature_columns_, self.feature_kinds_, self.feature_stats_, **options)
        self._drift_monitor = monitor
        return monitor

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # object.__getstate__ gives the live __dict__ itself
        state.pop("_layout_", None)  # derived from the fitted state; rebuilt where the pickle is loaded
        state.pop("_drift_monitor", None)  # serving state: counts of one process, and a lock
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "feature_columns_" in self.__dict__:  # built here, so that no transform writes the estimator
            self._layout_ = Layout(self)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output column names: passed-through input columns, then the features."""
        check_is_fitted(self, "feature_columns_")
        return np.asarray(self._passthrough_columns_ + self.feature_columns_, dtype=object)

    def __sklearn_tags__(self) -> Tags:
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

    def _fit_lookup(self, X: pd.DataFrame, values: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        self.__dict__.pop("_layout_", None)  # a refit pins a new output
        self.__dict__.pop("_drift_monitor", None)  # ... and new training values to compare with
        self._check_params()
        self.as_of_ = None if self.as_of is None else parse_as_of(self.as_of, "as_of")
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
        self.input_kinds_ = {column: dtypes.input_kind(X[column]) for column in X.columns}
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
        if values is None:
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
        warn_about_training_values(self.feature_columns_, self._qualified_, self.feature_kinds_, values)
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
            what = type(X).__name__
            if hasattr(X, "tocsr") or hasattr(X, "to_scipy_sparse"):  # scipy.sparse matrices and arrays
                what = f"sparse input ({what}); sparse matrices hold numbers, not entity keys"
            elif type(X).__module__.partition(".")[0] == "polars" and what == "LazyFrame":
                what = "a polars LazyFrame; collect() it first"
            raise SpineError(
                f"{type(self).__name__} takes a pandas or polars DataFrame of entity columns, got {what}"
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

    def _layout(self) -> Layout:
        layout = self.__dict__.get("_layout_")
        if layout is None:
            layout = self._layout_ = Layout(self)
        return layout

    def _lookup(self, X: pd.DataFrame, *, online: bool, verify: bool = False,
                adapter: FeatureStoreAdapter | None = None,
                arrays: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if adapter is None:
            adapter = get_adapter(self.env, self.config_dir)
        recipe = self.recipe_
        # a transform reuses the fitted layout's plan; the fit's own lookup comes before the layout
        plan = self._layout().plan if arrays is not None else LookupPlan(recipe.groups)
        timestamp = recipe.timestamp_column
        use_time = not online and timestamp is not None and timestamp in X.columns
        as_of = None if online else self.__dict__.get("as_of_")  # the online store has only the values of now
        online = online and len(X) <= ONLINE_MAX_ROWS
        if arrays is None or use_time or as_of is not None:
            return adapter.lookup_columns(X, plan, online=online, timestamp_column=timestamp if use_time else None,
                                          verify=verify, as_of=as_of)
        texts = {column: entity_texts(arrays[column], column) for column in plan.columns}
        return adapter.lookup_texts(texts, plan, online=online, verify=verify)

    def _assemble(self, X: pd.DataFrame, values: Mapping[str, Any], *, adapter: Any = None,
                  arrays: Mapping[str, Any] | None = None, looked_up: dict[str, Any] | None = None,
                  ) -> tuple[pd.DataFrame, dict[str, float], dict[str, int]]:
        """The output frame, and each feature's missing rate (before defaults) and invalid count.

        Nothing is stored on the estimator: a fit keeps the figures as ``missing_rate_`` and
        ``invalid_count_``; a transform only records them in the adapter's metrics (and its
        values as looked up, before defaults, in the drift monitor). ``looked_up`` receives
        those values, by output name.
        """
        layout = self._layout()
        monitor = self.__dict__.get("_drift_monitor")
        if looked_up is None and monitor is not None:
            looked_up = {}
        # keyed by position, labelled once at the end: pandas infers no column index per call; the spine's
        # arrays copied (copy-on-write tracks Series, not bare arrays: a write to the output would reach X)
        data: dict[int, Any] = dict(enumerate(
            by_position((arrays[column] if arrays is not None else X[column].array).copy(), X.index)
            for column in layout.passthrough))
        at = len(data)
        n = len(X)
        nullable = self._nullable_
        missing_rate: dict[str, float] = {}
        invalid_count: dict[str, int] = {}
        for name, qualified, kind, default in layout.features:
            if n == 0:
                data[at] = by_position(dtypes.empty(kind, nullable), X.index)
                missing_rate[name] = 0.0
                invalid_count[name] = 0
                at += 1
                continue
            coerced = dtypes.coerce(values[qualified], kind, nullable)
            column = coerced.values
            if looked_up is not None:
                looked_up[name] = column
            if coerced.missing and default is not NO_DEFAULT:
                column = dtypes.fill(column, kind, default)
            data[at] = by_position(column, X.index)
            at += 1
            missing_rate[name] = coerced.missing / n
            invalid_count[name] = coerced.invalid
        if adapter is None:
            adapter = get_adapter(self.env, self.config_dir)
        adapter.metrics.record_features(n, self._qualified_, missing_rate, invalid_count)
        if monitor is not None and looked_up is not None:
            monitor.attach(adapter.metrics)
            monitor.observe(looked_up, n)
        self._check_quality(missing_rate, invalid_count)
        frame = pd.DataFrame(data, index=X.index, copy=False)
        frame.columns = layout.columns
        return frame, missing_rate, invalid_count

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
