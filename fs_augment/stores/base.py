"""The backend interfaces every store implements.

Two small interfaces, each a couple of methods plus ``close()``:

* :class:`OnlineStore` reads the **latest** value of features for entity keys
  (Redis, Redis Cluster, the embedded parquet store).
* :class:`OfflineStore` reads feature **history**: point-in-time joins for
  training and the latest row per entity for materialisation (a parquet
  folder with DuckDB, BigQuery).

Both are context managers (``with store: ...`` closes it). Backends translate
their client's errors into :mod:`fs_augment.errors` at exactly this boundary.
Code above the stores (the adapter, the writer, the checks) uses only what is
declared here, never a backend's class. The public entry point is
:class:`fs_augment.adapter.FeatureStoreAdapter`, built by :func:`fs_augment.connect`;
the backends themselves are listed in :mod:`fs_augment.backends`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from fs_augment.errors import StoreError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from pandas.api.typing import NaTType

    from fs_augment.recipe import FeatureGroup

__all__ = ["FeatureRequest", "OfflineStore", "OnlineStore", "RowShape"]

#: Per namespace of a one-row lookup: ``(namespace, features, entity column, slot)``, where ``slot``
#: is the position of the namespace's entity key in the texts the row reader is given.
RowShape = Sequence[tuple[str, Sequence[str], str | None, int]]


class FeatureRequest(NamedTuple):
    """The features of one namespace wanted for a list of entity keys (text).

    ``entity_column`` is the column that keys the namespace (stores whose
    tables have entity columns use it; key-value stores ignore it).
    """

    namespace: str
    features: Sequence[str]
    entities: Sequence[str]
    entity_column: str | None = None


class _Closable:
    """``close()`` and the context manager that calls it."""

    def close(self) -> None:
        """Release connections and files."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OnlineStore(_Closable, ABC):
    """Latest feature values by key ``{namespace}:{feature}:{entity}``."""

    #: A short name for messages: ``"redis"``, ``"redis-cluster"``, ``"local"``.
    name: str = "store"
    #: Whether :meth:`write` stores values (the reference writer's and ``materialize``'s target).
    writable: bool = False

    @abstractmethod
    def fetch(self, requests: Sequence[FeatureRequest], *, online: bool = False) -> list[list[list[Any]]]:
        """Read the latest values.

        Parameters
        ----------
        requests : sequence of FeatureRequest
            What to read; entity keys are already text.
        online : bool
            True for a serving lookup: the whole call must be one round trip
            to the store. False for a batch lookup, which may chunk.

        Returns
        -------
        list
            ``result[i][j][k]`` is the decoded value of feature ``j`` of
            request ``i`` for entity ``k``; None where the key is absent.

        Raises
        ------
        StoreUnavailableError
            The store could not be reached after the configured retries.
        """

    def row_reader(self, shape: RowShape) -> Callable[[Sequence[str]], list[Any]]:
        """A reader of one entity row in this ``shape``, worked out once and called per request.

        The served request's path: the reader takes one entity key text per slot and returns
        the decoded values flat, namespace by namespace and feature by feature (None where
        absent), in one round trip. It reads what :meth:`fetch` would, with ``online=True``;
        a backend may override it to skip the per-call bookkeeping of ``fetch``.

        Parameters
        ----------
        shape : sequence of (namespace, features, entity column, slot)
            What each namespace reads, and which of the texts keys it.

        Returns
        -------
        callable
            ``reader(texts) -> list``; raises what :meth:`fetch` raises.
        """
        requests = tuple((namespace, tuple(features), column, slot) for namespace, features, column, slot in shape)
        fetch = self.fetch

        def read(texts: Sequence[str]) -> list[Any]:
            result = fetch([FeatureRequest(namespace, features, [texts[slot]], column)
                            for namespace, features, column, slot in requests], online=True)
            return [values[0] if values else None for per_request in result for values in per_request]

        return read

    @abstractmethod
    def list_features(self, namespace: str) -> list[str]:
        """The features the store holds for ``namespace`` (error path only: may scan)."""

    def has_feature(self, namespace: str, feature: str) -> bool:
        """Whether any entity has a value for this feature (error path only)."""
        return feature in self.list_features(namespace)

    def describe(self) -> str:
        """Where the store is, for messages (host and database, never a password)."""
        return self.name

    def write(self, pairs: Iterable[tuple[str, str | None]], *, ttl: float | None = None,
              chunk_size: int = 10_000, group: int = 1) -> int:
        """Store JSON text under keys; a None value deletes its key.

        Parameters
        ----------
        pairs : iterable of (str, str or None)
            ``(key, JSON text)``; None deletes the key (a value that became missing).
        ttl : float, optional
            Seconds until the written keys expire; None keeps them.
        chunk_size : int
            Keys per round trip (rounded to whole groups).
        group : int
            The pairs come in runs of ``group`` keys (one entity's features and
            event time) that no command splits.

        Returns
        -------
        int
            Keys written (deleted keys not counted).

        Raises
        ------
        StoreError
            The store is read-only (``writable`` is False).
        """
        raise StoreError(f"the {self.describe()} store is read-only: the reference writer writes to Redis")


class OfflineStore(_Closable, ABC):
    """Feature history: a table per namespace with entity column, ``event_timestamp`` and features."""

    name: str = "offline store"

    @abstractmethod
    def point_in_time(
        self,
        spine: pd.DataFrame,
        groups: Sequence[FeatureGroup],
        timestamp_column: str,
        *,
        as_of: pd.Timestamp | None = None,
    ) -> dict[str, Any]:
        """Point-in-time correct feature values for every spine row.

        Parameters
        ----------
        spine : DataFrame
            One column per distinct entity column of ``groups`` holding entity
            keys as text (None for no entity), and ``timestamp_column`` as
            ``datetime64[..., UTC]``. Its index is a plain RangeIndex.
        groups : sequence of FeatureGroup
        timestamp_column : str
        as_of : Timestamp, optional
            Ignore the rows created after this time: created is the row's
            ``created_timestamp`` where the table has one and it is not null,
            else its ``event_timestamp``.

        Returns
        -------
        dict
            ``"namespace:feature"`` → array-like of values aligned with the
            spine's rows, None/NaN where no row is at or before the row's time
            (or the newest such row is older than the group's ``max_age``).
        """

    @abstractmethod
    def latest_as_of(self, spine: pd.DataFrame, groups: Sequence[FeatureGroup], as_of: pd.Timestamp) -> dict[str, Any]:
        """The latest values each spine row's entities had at ``as_of``, from the rows created by then.

        The row of an entity is the one :meth:`read_latest` would have picked
        at ``as_of``: the latest by ``event_timestamp`` of the rows created
        (as for :meth:`point_in_time`) at or before ``as_of``. With a group's
        ``max_age``, a row more than ``max_age`` older than ``as_of`` gives
        missing values. ``spine`` is as for :meth:`point_in_time`, without
        times; the result is aligned with its rows.
        """

    @abstractmethod
    def read_latest(self, group: FeatureGroup) -> pd.DataFrame:
        """The latest row per entity: the entity column (as text), the group's features and, when the
        table has times, ``event_timestamp`` (``datetime64[ns, UTC]``), what ``materialize`` writes."""

    @abstractmethod
    def latest_table(
        self, namespace: str, features: Sequence[str], entity_column: str | None = None, *,
        with_time: bool = False,
    ) -> tuple[str, pa.Table]:
        """The latest row per entity as an Arrow table (what :meth:`read_latest` reads).

        Parameters
        ----------
        namespace : str
        features : sequence of str
        entity_column : str, optional
            The table's entity column; by default the namespace's default
            entity column if the table has it, else its first column.
        with_time : bool
            Add, last, the ``event_timestamp`` of each latest row as int64
            nanoseconds since the epoch (UTC), when the table has the column.

        Returns
        -------
        tuple
            The entity column's name and a table with the entity (as text,
            first column, sorted) and one column a feature.
        """

    @abstractmethod
    def newest_timestamp(self, namespace: str) -> pd.Timestamp | NaTType | None:
        """The newest ``event_timestamp`` of a namespace's table, in UTC.

        Returns
        -------
        Timestamp, NaT or None
            None when the table has no ``event_timestamp`` column (its rows
            have no time); ``NaT`` when no row has one.

        Raises
        ------
        FeatureNotFoundError
            The store has no table for ``namespace``.
        StoreError
            The table cannot be read.
        """

    @abstractmethod
    def list_features(self, namespace: str) -> list[str]:
        """The feature columns of a namespace's table (raises FeatureNotFoundError if no table)."""

    def joins_queries_of(self, data_lake_uri: str) -> bool:
        """Whether :meth:`point_in_time_query` takes Loader SQL of ``data_lake_uri`` as its spine.

        False unless a store says otherwise: the spine is then loaded and passed to :meth:`point_in_time`.
        """
        return False

    def point_in_time_query(
        self,
        sql: str,
        data_lake_uri: str,
        groups: Sequence[FeatureGroup],
        timestamp_column: str,
        *,
        as_of: pd.Timestamp | None = None,
    ) -> tuple[pd.DataFrame, pa.Table]:
        """The rows of a Loader SQL query and their point-in-time correct features, in one query.

        The query runs where the store's tables are, as a subquery of the join:
        its rows never travel but once, joined.

        Parameters
        ----------
        sql : str
            The Loader SQL (the spine): the entity columns of ``groups`` and
            ``timestamp_column``, and any other column.
        data_lake_uri : str
            Where the Loader SQL runs (:meth:`joins_queries_of` is True for it).
        groups : sequence of FeatureGroup
        timestamp_column : str
        as_of : Timestamp, optional
            Ignore the rows created after this time, as :meth:`point_in_time` does.

        Returns
        -------
        tuple
            The query's rows (a DataFrame with a RangeIndex) and their
            features aligned with those rows, as Arrow: one column
            ``"namespace:feature"`` a feature, null where :meth:`point_in_time`
            gives a missing value (:func:`fs_augment.stores._conversion.aligned_values`
            turns it into :meth:`point_in_time`'s arrays).
        """
        raise StoreError(f"the {self.describe()} cannot run Loader SQL of {data_lake_uri}: load the spine first")

    def describe(self) -> str:
        """Where the store is, for messages."""
        return self.name
