"""``FeatureStoreAdapter``: the contract's batch and online lookups over any store.

Build one with :func:`fs_augment.connect` (from an environment's config) or
directly from backend instances. The adapter owns no I/O code of its own: it
turns entity values into keys, asks the backends, and shapes the answers.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from fs_augment.cache import TTLCache
from fs_augment.errors import FeatureNotFoundError, SpineError, StoreError, StoreUnavailableError
from fs_augment.keys import entity_texts, entity_to_text, parse_event_time
from fs_augment.monitoring import LookupMetrics, MetricsPusher
from fs_augment.plan import LookupPlan
from fs_augment.recipe import FeatureGroup, parse_feature_specs
from fs_augment.stores.base import FeatureRequest, OfflineStore, OnlineStore

if TYPE_CHECKING:
    import pyarrow as pa

    from fs_augment.config import Config

__all__ = ["FeatureStoreAdapter"]

logger = logging.getLogger("fs_augment.lookups")

#: Seconds between two warnings that online lookups were answered with defaults.
DEGRADED_WARNING_INTERVAL = 60.0

#: What the lookups take: a plan (the augmenter's, built once per recipe) or the groups themselves.
Groups = LookupPlan | Sequence[FeatureGroup]
#: What the public lookups take: the seed's feature-spec dicts, or groups as above.
FeatureSpecs = Sequence[Mapping[str, Any]] | Groups


#: max_age is remembered only as text ("7d"): == on numbers would take 1 for True
_PLAIN_SPEC_KEYS = frozenset({"namespace", "feature_namespace", "features", "entity_column", "max_age"})
#: feature_specs lists an adapter remembers, parsed (see FeatureStoreAdapter._plan_of)
_MAX_PARSED = 16


def _plain_specs(specs: Any) -> bool:
    """Whether ``specs`` is a list of dicts of names only (== on them is exact: no 1 == True)."""
    return type(specs) is list and all(
        type(item) is dict and item.keys() <= _PLAIN_SPEC_KEYS and all(
            type(v) is str or (type(v) in (list, tuple) and all(type(f) is str for f in v)) for v in item.values())
        for item in specs)


def missing_entity_column(column: str, available: Sequence[Any], namespaces: Sequence[str]) -> SpineError:
    """The error for a spine that lacks the column a namespace is keyed by."""
    shown = ", ".join(map(str, available)) or "none"
    return SpineError(
        f"entity column {column!r} (keys namespace {', '.join(namespaces)}) is not in the spine; "
        f"the spine has columns: {shown}. Add the column, or set entity_column for the "
        "namespace in the recipe"
    )


def to_utc(values: pd.Series, column: str) -> pd.Series:
    """Timestamps as ``datetime64[ns, UTC]``: naive times are read as UTC."""
    try:
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out = values.dt.tz_convert("UTC")
        else:
            out = pd.to_datetime(values, utc=True)
        utc: pd.Series = out.astype("datetime64[ns, UTC]")
        return utc
    except (ValueError, TypeError, OverflowError) as exc:  # OutOfBoundsDatetime is a ValueError
        raise SpineError(f"timestamp column {column!r} cannot be read as times: {exc}") from None


class FeatureStoreAdapter:
    """The standard feature store interface of one environment.

    Parameters
    ----------
    online : OnlineStore
        Latest values by key (Redis, Redis Cluster or the embedded store).
    offline : OfflineStore, optional
        Feature history for point-in-time training lookups.
    env : str
        The environment's name, for messages.
    cache_ttl : float
        Seconds an online lookup's values are cached in process; 0 disables.
    cache_max_entries : int
        Bound of the cache, in values.
    on_store_error : {"raise", "default"}
        What an online lookup does when the store is down: raise, or answer
        missing values (the recipe's defaults) and count it. Batch lookups
        always raise.
    debug_logging : bool
        Log every lookup (counts and timings, never values) at DEBUG.
    metrics : LookupMetrics, optional
        Where lookups are counted (``adapter.metrics.snapshot()``); a new one by default.
    pusher : MetricsPusher, optional
        Pushes ``metrics`` to a monitoring endpoint; closed (flushed) by :meth:`close`.
    clock : callable, optional
        The time lookups are at, as nanoseconds since the Unix epoch (UTC); default
        :func:`time.time_ns`. A namespace with ``max_age`` (in the recipe or a feature spec) has its
        values treated as missing when its event time (``{namespace}:event_timestamp:{entity}``) is
        more than ``max_age`` before this time; exactly ``max_age`` old still counts, no event time
        means no age. Stale answers are counted in ``metrics`` (``stale``, ``stale_by_namespace``).
    config : Config, optional
        The configuration the adapter was opened from (:func:`fs_augment.connect` passes it): where
        the Loader SQL of a :class:`~fs_augment.SpineQuery` runs (its data lake).

    Examples
    --------
    >>> import fs_augment
    >>> with fs_augment.connect("local", "config") as store:  # doctest: +SKIP
    ...     store.online_get_features({"user_id": "user123"},
    ...                               [{"namespace": "user_demographics", "features": ["age"]}])
    {'user_demographics:age': 34}
    """

    def __init__(
        self,
        online: OnlineStore,
        offline: OfflineStore | None = None,
        *,
        env: str = "custom",
        cache_ttl: float = 0,
        cache_max_entries: int = 100_000,
        on_store_error: str = "raise",
        debug_logging: bool = False,
        metrics: LookupMetrics | None = None,
        pusher: MetricsPusher | None = None,
        clock: Callable[[], int] | None = None,
        config: Config | None = None,
    ) -> None:
        if on_store_error not in ("raise", "default"):
            raise ValueError(f"on_store_error must be 'raise' or 'default', got {on_store_error!r}")
        self.online = online
        self.offline = offline
        self.env = env
        self.cache = TTLCache(cache_ttl, cache_max_entries) if cache_ttl else None
        self.on_store_error = on_store_error
        self._last_degraded_warning = float("-inf")
        self.debug_logging = debug_logging
        self.metrics = metrics if metrics is not None else LookupMetrics()
        if self.cache is not None:
            self.metrics.attach_cache(self.cache)
        self.pusher = pusher
        self.clock: Callable[[], int] = clock if clock is not None else time.time_ns
        self.config = config
        #: feature_specs lists parsed lately, newest first: (a deep copy of the list, its plan). A
        #: caller of the seed-level API passes the same specs on every call; == costs less than parsing.
        self._parsed: list[tuple[list[Any], LookupPlan]] = []
        self._parsed_lock = threading.Lock()
        #: the online store's one-row reader of each plan served lately (see OnlineStore.row_reader)
        self._row_readers: dict[LookupPlan, Callable[[Sequence[str]], list[Any]]] = {}

    # --- lifecycle -------------------------------------------------------
    def close(self) -> None:
        """Release the stores' connections; flush monitoring (bounded) if it pushes."""
        if self.pusher is not None:
            self.pusher.close()
        self.online.close()
        if self.offline is not None:
            self.offline.close()

    def __enter__(self) -> FeatureStoreAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        offline = self.offline.describe() if self.offline is not None else None
        return f"FeatureStoreAdapter(env={self.env!r}, online={self.online.describe()!r}, offline={offline!r})"

    # --- the contract's two calls -----------------------------------------
    def batch_get_features(
        self, entity_spine: list[dict[str, Any]], feature_specs: FeatureSpecs
    ) -> dict[str, dict[str, Any]]:
        """Latest features of many entities (CONTRACT 4.2).

        Parameters
        ----------
        entity_spine : list of dict
            Rows of entity keys, e.g. ``[{"user_id": "123", "product_id": "456"}]``.
        feature_specs : list of dict
            ``[{"namespace": "user_demographics", "features": ["age"]}]``
            (``feature_namespace`` is accepted too; ``entity_column``,
            ``defaults`` and ``max_age``, e.g. ``"7d"``, as in a recipe).

        Returns
        -------
        dict
            ``{entity_key: {"namespace:feature": value, ...}}``: each entity key
            holds the features of the namespaces keyed by its column; absent
            values (and values older than the spec's ``max_age``) are None.

        Raises
        ------
        FeatureNotFoundError
            A feature is absent for every entity of the call and the store does
            not know it at all; the message lists what the namespace has (a
            bounded check made only then).
        """
        groups = self._plan_of(feature_specs).groups
        if isinstance(entity_spine, Mapping) or not isinstance(entity_spine, Sequence):
            raise SpineError(f"entity_spine must be a list of dicts, got {type(entity_spine).__name__}")
        columns: dict[str, list[str | None]] = {}
        for group in groups:
            if group.entity_column in columns:
                continue
            texts: list[str | None] = []
            for i, row in enumerate(entity_spine):
                if not isinstance(row, Mapping):
                    raise SpineError(f"entity_spine[{i}] must be a dict, got {type(row).__name__}")
                if group.entity_column not in row:
                    raise missing_entity_column(
                        group.entity_column, list(row), [g.namespace for g in groups
                                                         if g.entity_column == group.entity_column])
                texts.append(entity_to_text(row[group.entity_column], group.entity_column))
            columns[group.entity_column] = texts
        values = self._latest(columns, self._plan_of(feature_specs), online=False, verify=True)
        result: dict[str, dict[str, Any]] = {}
        for group in groups:
            entities = columns[group.entity_column]
            for name in group.qualified_names:
                for entity, value in zip(entities, values[name], strict=True):
                    if entity is not None:
                        result.setdefault(entity, {})[name] = value
        return result

    def online_get_features(
        self, entity_keys: dict[str, Any], feature_specs: FeatureSpecs
    ) -> dict[str, Any]:
        """Latest features of one entity row, in one round trip (CONTRACT 4.3).

        Parameters
        ----------
        entity_keys : dict
            ``{"user_id": "123", "product_id": "456"}``.
        feature_specs : list of dict
            As for :meth:`batch_get_features`; a namespace's ``max_age`` reads its
            event-time key in the same round trip.

        Returns
        -------
        dict
            ``{"namespace:feature": value}``; None where absent or older than the
            spec's ``max_age``.
        """
        plan = self._plan_of(feature_specs)
        if type(entity_keys) is not dict and not isinstance(entity_keys, Mapping):
            raise SpineError(f"entity_keys must be a dict, got {type(entity_keys).__name__}")
        try:
            texts = [value if type(value := entity_keys[column]) is str else entity_to_text(value, column)
                     for column in plan.columns]
        except KeyError:
            for column, namespace in zip(plan.columns, plan.first_namespace, strict=True):
                if column not in entity_keys:
                    raise missing_entity_column(column, list(entity_keys), [namespace]) from None
            raise
        return dict(zip(plan.names, self._latest_row(texts, plan, online=True), strict=True))

    # --- DataFrame level ---------------------------------------------------
    def entity_columns(self, spine: pd.DataFrame, groups: Groups) -> dict[str, list[str | None]]:
        """The spine's entity columns as key text (None for no entity), by column name."""
        out: dict[str, list[str | None]] = {}
        groups = self._plan_of(groups).groups
        for group in groups:
            column = group.entity_column
            if column in out:
                continue
            if column not in spine.columns:
                raise missing_entity_column(
                    column, list(spine.columns), [g.namespace for g in groups if g.entity_column == column])
            series: pd.Series | pd.DataFrame = spine[column]  # a frame when the name is duplicated
            if isinstance(series, pd.DataFrame):
                raise SpineError(f"the spine has more than one column named {column!r}")
            out[column] = entity_texts(series, column)
        return out

    def lookup_columns(
        self,
        spine: pd.DataFrame,
        groups: Groups,
        *,
        online: bool = False,
        timestamp_column: str | None = None,
        verify: bool | None = None,
        as_of: pd.Timestamp | None = None,
    ) -> dict[str, Any]:
        """Feature values aligned row by row with ``spine`` (positionally).

        With ``timestamp_column`` and ``online=False`` the values come from the
        offline store, point-in-time correct; otherwise the latest values from
        the online store. ``verify`` (default: for batch lookups, not online ones)
        checks that a feature absent for every row exists at all, raising
        :class:`FeatureNotFoundError` if not.

        ``as_of`` (a UTC time, see :func:`fs_augment.keys.parse_as_of`) makes a batch
        lookup read the offline store as it was then: point-in-time lookups ignore the
        rows created after it, and lookups without ``timestamp_column`` give each entity
        its latest row created by then (:meth:`OfflineStore.latest_as_of`) instead of
        the online store's value. Online lookups (``online=True``) do not apply it: the
        online store holds only the values of now.

        Returns
        -------
        dict
            ``"namespace:feature"`` → sequence of values (None/NaN for missing).
        """
        plan = self._plan_of(groups)
        if timestamp_column is not None and not online:
            return self._point_in_time(spine, plan, timestamp_column, as_of)
        if as_of is not None and not online:
            return self._latest_as_of(spine, plan, as_of)
        columns = self.entity_columns(spine, plan)
        return self._latest(columns, plan, online=online, verify=not online if verify is None else verify)

    def joins_queries_of(self, data_lake_uri: str) -> bool:
        """Whether the offline store joins Loader SQL of ``data_lake_uri`` in place (see :meth:`lookup_query`)."""
        return self.offline is not None and self.offline.joins_queries_of(data_lake_uri)

    def lookup_query(
        self, sql: str, data_lake_uri: str, groups: Groups, timestamp_column: str, *,
        as_of: pd.Timestamp | None = None,
    ) -> tuple[pd.DataFrame, pa.Table]:
        """The rows of a Loader SQL query and their point-in-time correct features, in one query.

        The offline store runs the Loader SQL as a subquery of its point-in-time
        join (:meth:`joins_queries_of` must be True): the spine is neither
        downloaded nor uploaded; only the joined rows come back.

        Returns
        -------
        tuple
            The query's rows (DataFrame, RangeIndex) and their features, one
            Arrow column ``"namespace:feature"`` a feature aligned with them
            (:func:`fs_augment.stores._conversion.aligned_values` gives :meth:`lookup_columns`'s values).
        """
        if not self.joins_queries_of(data_lake_uri):
            where = self.offline.describe() if self.offline is not None else "no offline store"
            raise StoreError(f"environment {self.env!r} ({where}) cannot join Loader SQL of {data_lake_uri} "
                             "in place: load the spine and look it up as a DataFrame")
        assert self.offline is not None
        start = time.perf_counter()
        groups = self._plan_of(groups).groups
        spine, values = self.offline.point_in_time_query(sql, data_lake_uri, groups, timestamp_column, as_of=as_of)
        missing = sum(column.null_count for column in values.columns)
        self.metrics.record("point_in_time", time.perf_counter() - start,
                            values=len(spine) * sum(len(g.features) for g in groups), missing=missing)
        return spine, values

    def lookup_texts(
        self,
        texts: Mapping[str, Sequence[str | None]],
        groups: Groups,
        *,
        online: bool = False,
        verify: bool | None = None,
    ) -> dict[str, Any]:
        """Latest feature values for entity keys already turned into text, aligned with them.

        Like :meth:`lookup_columns` without the spine: ``texts`` maps every
        entity column of ``groups`` to the key text of each row (None for no
        entity), as :func:`fs_augment.keys.entity_texts` gives them.
        """
        verify = not online if verify is None else verify
        return self._latest(texts, self._plan_of(groups), online=online, verify=verify)

    def get_feature_frame(
        self,
        spine: pd.DataFrame,
        feature_specs: FeatureSpecs,
        *,
        online: bool = False,
        timestamp_column: str | None = None,
        as_of: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Feature values as a DataFrame with ``spine``'s index, one column per feature.

        ``online``, ``timestamp_column`` and ``as_of`` are as for :meth:`lookup_columns`.

        Examples
        --------
        >>> frame = store.get_feature_frame(spine, [{"namespace": "user_demographics",
        ...                                          "features": ["age"]}])  # doctest: +SKIP
        >>> list(frame.columns)  # doctest: +SKIP
        ['user_demographics:age']
        """
        plan = self._plan_of(feature_specs)
        values = self.lookup_columns(spine, plan, online=online, timestamp_column=timestamp_column, as_of=as_of)
        data = {}
        for name in plan.names:
            column = values[name]
            if not isinstance(column, np.ndarray):
                values_ = np.empty(len(column), dtype=object)  # element-wise: list values stay lists
                values_[:] = list(column) if len(column) else []
                column = values_
            data[name] = pd.Series(column, index=spine.index, copy=False)
        return pd.DataFrame(data, index=spine.index, copy=False)

    def lookup_row(self, texts: Sequence[str | None], groups: Groups, *, online: bool = True) -> list[Any]:
        """The latest values of one entity row, flat in the order of the groups' qualified names.

        ``texts`` holds the key text (None for no entity) of each distinct entity column of
        ``groups``, in recipe order — what :meth:`lookup_texts` takes for a one-row spine, without
        the per-name lists around the values.
        """
        return self._latest_row(list(texts), self._plan_of(groups), online=online)

    # --- internals -----------------------------------------------------------
    def _plan_of(self, specs: Any) -> LookupPlan:
        """The plan of ``specs``: a plan, a sequence of FeatureGroup, or the seed's list of dicts."""
        if type(specs) is LookupPlan:
            return specs
        if type(specs) is list and specs and type(specs[0]) is dict:  # the seed's specs, parsed once
            for seen, plan in self._parsed:
                if seen == specs:
                    return plan
        elif isinstance(specs, (tuple, list)) and specs and all(isinstance(g, FeatureGroup) for g in specs):
            return LookupPlan(specs)
        plan = LookupPlan(parse_feature_specs(specs))
        if _plain_specs(specs):
            with self._parsed_lock:
                self._parsed = [(copy.deepcopy(specs), plan), *self._parsed[:_MAX_PARSED - 1]]
        return plan

    def _latest(
        self,
        columns: Mapping[str, Sequence[str | None]],
        plan: LookupPlan,
        *,
        online: bool,
        verify: bool = False,
    ) -> dict[str, Any]:
        if not verify and all(len(columns[c]) == 1 for c in plan.columns):  # one row: a served request
            values = self._latest_row([columns[c][0] for c in plan.columns], plan, online=online)
            return {name: [value] for name, value in zip(plan.names, values, strict=True)}
        start = time.perf_counter()
        requests: list[FeatureRequest] = []
        codes_by_group: list[np.ndarray | None] = []
        no_entity: list[int] = []
        for namespace, features, column, _ in plan.requests:
            texts = columns[column]
            if len(texts) == 1:
                entity = texts[0]
                requests.append(FeatureRequest(namespace, features, [] if entity is None else [entity], column))
                codes_by_group.append(None)
                no_entity.append(int(entity is None))
                continue
            # pandas-stubs wants str items for dtype=object; None (no entity) is what the sentinel is for
            codes, uniques = pd.factorize(pd.Series(texts, dtype=object), use_na_sentinel=True)  # type: ignore[arg-type]
            requests.append(FeatureRequest(namespace, features, uniques.tolist(), column))
            codes_by_group.append(codes)
            no_entity.append(int(np.count_nonzero(codes < 0)))

        fetched = self._fetch(requests, online=online, may_degrade=not verify)  # training never degrades

        out: dict[str, Any] = {}
        total = missing = 0
        names = iter(plan.names)
        now = self.clock() if plan.timed else 0
        stale: dict[str, int] = {}
        unreadable: dict[str, int] = {}
        for group, group_codes, absent, result, limit in zip(plan.groups, codes_by_group, no_entity, fetched,
                                                             plan.max_age_ns, strict=True):
            old: list[int] = []
            if limit is not None:  # the last column read is the event time of each entity
                stamps, result = result[-1], result[:-1]
                old = [at for at, stamp in enumerate(stamps)
                       if stamp is not None and self._is_stale(stamp, limit, now, group.namespace, unreadable)]
                if old:
                    stale[group.namespace] = len(old)
            for feature, values in zip(group.features, result, strict=True):
                name = next(names)
                if verify and values and (values.count(None) if type(values) is list
                                          else sum(v is None for v in values)) == len(values):
                    self.verify_feature(group.namespace, feature)  # on what the store has, before max_age
                if old:
                    values = list(values)
                    for at in old:
                        values[at] = None
                if group_codes is None:
                    looked_up: Any = values if values else [None]
                else:
                    lookup = np.empty(len(values) + 1, dtype=object)
                    lookup[:-1] = values
                    lookup[-1] = None
                    looked_up = lookup[group_codes]
                out[name] = looked_up
                n_missing = (values.count(None) if type(values) is list else sum(v is None for v in values)) + absent
                total += len(values)
                missing += n_missing
        self._record("online" if online else "batch", time.perf_counter() - start, total, missing,
                     stale, unreadable)
        return out

    def _latest_row(self, texts: list[str | None], plan: LookupPlan, *, online: bool) -> list[Any]:
        """The latest values of one entity row (key text per entity column of ``plan``), flat in name order."""
        start = time.perf_counter()
        unknown = None in texts
        if unknown or (online and self.cache is not None):
            requests = [FeatureRequest(namespace, features, [] if (text := texts[at]) is None else [text], column)
                        for namespace, features, column, at in plan.requests]
            read = [column[0] if column else None for result in self._fetch(requests, online=online)
                    for column in result]
        else:  # every entity known, no cache: the store's one-row reader, worked out once per plan
            reader = self._row_readers.get(plan) or self._row_reader(plan)
            try:
                read = reader(cast("list[str]", texts))  # no None in texts here
            except StoreError as exc:
                read = self._row_failed(exc, plan, online=online)
        stale: dict[str, int] | None = None
        unreadable: dict[str, int] | None = None
        if plan.timed:
            values, stale, unreadable = self._fresh_row(read, plan)
        else:
            values = read
        total = len(values)
        if unknown:  # a namespace without entity: its features are missing, not looked up
            total -= sum(w for w, (_, _, _, at) in zip(plan.widths, plan.requests, strict=True) if texts[at] is None)
        kind = "online" if online else "batch"
        elapsed = time.perf_counter() - start
        missing = values.count(None)
        if not (stale or unreadable):
            self.metrics.record_lookup(kind, elapsed, total, missing)
        else:
            self.metrics.record(kind, elapsed, values=total, missing=missing, stale=stale,
                                unreadable_event_times=unreadable)
        if self.debug_logging:
            self._log_lookup(kind, elapsed, total, missing)
        return values

    def _row_reader(self, plan: LookupPlan) -> Callable[[Sequence[str]], list[Any]]:
        """The online store's one-row reader of ``plan``, made on its first use."""
        if len(self._row_readers) >= _MAX_PARSED:  # plans come from a few recipes; never grow without bound
            self._row_readers.clear()
        reader = self._row_readers[plan] = self.online.row_reader(plan.requests)
        return reader

    def _row_failed(self, exc: StoreError, plan: LookupPlan, *, online: bool) -> list[Any]:
        """A failed one-row read: answered with missing values when the store is down and serving degrades."""
        if isinstance(exc, StoreUnavailableError) and online and self.on_store_error == "default":
            self._degrade(exc)
            return [None] * sum(len(features) for _, features, _, _ in plan.requests)
        self.metrics.record_error("online" if online else "batch", exc)
        raise exc

    def _fresh_row(self, read: list[Any], plan: LookupPlan) -> tuple[list[Any], dict[str, int], dict[str, int]]:
        """One row's values (``read``: flat, event times included) with the namespaces older than max_age missing."""
        now = self.clock()
        values: list[Any] = []
        stale: dict[str, int] = {}
        unreadable: dict[str, int] = {}
        at = 0
        for group, width, limit in zip(plan.groups, plan.widths, plan.max_age_ns, strict=True):
            end = at + width
            if limit is None:
                values += read[at:end]
                at = end
                continue
            stamp = read[end]
            if stamp is not None and self._is_stale(stamp, limit, now, group.namespace, unreadable):
                stale[group.namespace] = 1
                values += [None] * width
            else:
                values += read[at:end]
            at = end + 1
        return values, stale, unreadable

    def _is_stale(self, stamp: Any, limit: int, now: int, namespace: str, unreadable: dict[str, int]) -> bool:
        """Whether a stored event time is more than ``limit`` ns before ``now``; an unreadable one counts as stale."""
        try:
            moment = parse_event_time(stamp)
        except ValueError:
            unreadable[namespace] = unreadable.get(namespace, 0) + 1
            return True
        return moment is not None and now - moment > limit

    def _record(self, kind: str, elapsed: float, total: int, missing: int,
                stale: Mapping[str, int] | None = None, unreadable: Mapping[str, int] | None = None) -> None:
        self.metrics.record(kind, elapsed, values=total, missing=missing, stale=stale or None,
                            unreadable_event_times=unreadable or None)
        if self.debug_logging:
            self._log_lookup(kind, elapsed, total, missing)

    def _log_lookup(self, kind: str, elapsed: float, total: int, missing: int) -> None:
        logger.debug("%s lookup: %d keys, %d missing, %.3f ms (env %s)", kind, total, missing, elapsed * 1e3, self.env)

    def _fetch(self, requests: list[FeatureRequest], *, online: bool,
               may_degrade: bool = True) -> list[list[list[Any]]]:
        wanted = [r for r in requests if r.entities]
        if len(wanted) < len(requests):  # backends only ever see requests with entities
            answers = iter(self._fetch(wanted, online=online, may_degrade=may_degrade) if wanted else ())
            return [next(answers) if r.entities else [[] for _ in r.features] for r in requests]
        cache = self.cache if online else None
        if cache is not None:
            cached = self._from_cache(requests)
            if cached is not None:
                return cached
        try:
            result = self.online.fetch(requests, online=online)
        except StoreUnavailableError as exc:
            if online and may_degrade and self.on_store_error == "default":
                return self._degraded(requests, exc)
            self.metrics.record_error("online" if online else "batch", exc)
            raise
        except StoreError as exc:
            self.metrics.record_error("online" if online else "batch", exc)
            raise
        if cache is not None:
            self._remember(requests, result)
        return result

    def _degraded(self, requests: list[FeatureRequest], exc: StoreUnavailableError) -> list[list[list[Any]]]:
        """Every value missing (the recipe's defaults apply), counted, and warned at most once a minute."""
        self._degrade(exc)
        return [[[None] * len(r.entities) for _ in r.features] for r in requests]

    def _degrade(self, exc: StoreUnavailableError) -> None:
        """Count a lookup answered with defaults; warn at most once a minute."""
        self.metrics.record_error("online", exc, degraded=True)
        now = time.monotonic()
        if now - self._last_degraded_warning >= DEGRADED_WARNING_INTERVAL:  # not one line a request
            self._last_degraded_warning = now
            logger.warning("online lookups answered with defaults while the store is down "
                           "(counted in metrics; this warning repeats at most once a minute): %s", exc)

    def _remember(self, requests: list[FeatureRequest], result: list[list[list[Any]]]) -> None:
        assert self.cache is not None
        for request, values in zip(requests, result, strict=True):
            for feature, column in zip(request.features, values, strict=True):
                for entity, value in zip(request.entities, column, strict=True):
                    if value is not None:  # an absent value may be materialised any moment
                        self.cache.set((request.namespace, feature, entity), value)

    def _from_cache(self, requests: list[FeatureRequest]) -> list[list[list[Any]]] | None:
        assert self.cache is not None
        absent = object()
        out = []
        for request in requests:
            per_feature = []
            for feature in request.features:
                column = []
                for entity in request.entities:
                    value = self.cache.get((request.namespace, feature, entity), absent)
                    if value is absent:
                        return None
                    column.append(value)
                per_feature.append(column)
            out.append(per_feature)
        return out

    def verify_feature(self, namespace: str, feature: str) -> None:
        """Raise :class:`FeatureNotFoundError`, listing what the namespace has, unless the store has the feature.

        Asks the online store (for Redis a bounded SCAN): for error paths and checks, never per lookup.
        """
        if not self.online.has_feature(namespace, feature):
            have = self.online.list_features(namespace)
            listing = ", ".join(have) if have else "no features at all (unknown namespace?)"
            raise FeatureNotFoundError(
                f"feature {feature!r} of namespace {namespace!r} is not in the {self.online.describe()} "
                f"store of environment {self.env!r}; the namespace has: {listing}"
            )

    def _offline_store(self, what: str) -> OfflineStore:
        if self.offline is None:
            raise StoreError(
                f"{what} need an offline store, but environment {self.env!r} has no "
                "feature_store.connection_info.offline_store_uri"
            )
        return self.offline

    def _latest_as_of(self, spine: pd.DataFrame, plan: LookupPlan, as_of: pd.Timestamp) -> dict[str, Any]:
        offline = self._offline_store("batch lookups with as_of")
        start = time.perf_counter()
        values = offline.latest_as_of(self._offline_spine(spine, plan), plan.groups, as_of)
        self._record_offline("batch", start, len(spine), plan, values)
        return values

    def _record_offline(self, kind: str, start: float, rows: int, plan: LookupPlan, values: Mapping[str, Any]) -> None:
        missing = sum(int(np.count_nonzero(pd.isna(column))) for column in values.values())
        self.metrics.record(kind, time.perf_counter() - start, values=rows * sum(plan.widths), missing=missing)

    def _offline_spine(self, spine: pd.DataFrame, plan: LookupPlan) -> pd.DataFrame:
        """The entity columns of ``plan`` as the offline stores take them: text, None/NaN for no entity."""
        groups = plan.groups
        columns = plan.columns
        prepared: dict[str, Any] = {}
        for column in columns:
            series = spine[column] if column in spine.columns else None
            if isinstance(series, pd.Series) and isinstance(series.dtype, pd.StringDtype):
                # text already, NaN for no entity: handed on as it is (Arrow-backed str costs no conversion)
                prepared[column] = series.array
        others = [g for g in groups if g.entity_column not in prepared]
        if others:
            for column, texts in self.entity_columns(spine, others).items():
                prepared[column] = pd.Series(texts, dtype=object)
        return pd.DataFrame({column: prepared[column] for column in columns})

    def _point_in_time(self, spine: pd.DataFrame, plan: LookupPlan, timestamp_column: str,
                       as_of: pd.Timestamp | None = None) -> dict[str, Any]:
        offline = self._offline_store("point-in-time lookups")
        if timestamp_column not in spine.columns:
            raise SpineError(
                f"timestamp column {timestamp_column!r} is not in the spine; the spine has columns: "
                f"{', '.join(map(str, spine.columns))}"
            )
        start = time.perf_counter()
        prepared = self._offline_spine(spine, plan)
        prepared[timestamp_column] = to_utc(spine[timestamp_column], timestamp_column).array
        values = offline.point_in_time(prepared, plan.groups, timestamp_column, as_of=as_of)
        self._record_offline("point_in_time", start, len(spine), plan, values)
        return values
