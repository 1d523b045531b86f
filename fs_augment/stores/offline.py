"""Point-in-time joins over a folder of parquet files, with DuckDB.

The folder holds one table a namespace, ``ROOT/<namespace>.parquet`` or
``ROOT/<namespace>/*.parquet`` (the files of a folder are read in file-name
order), with the entity column, optionally ``event_timestamp``, optionally
``created_timestamp``, then one column a feature (CONTRACT 4.4).

Semantics of :meth:`ParquetOfflineStore.point_in_time`, for every spine row and
namespace:

* **As of.** The feature row used is the latest one of the row's entity whose
  ``event_timestamp`` is at or before the row's time: a row stamped exactly at
  the spine time counts (inclusive), a row one nanosecond later does not.
* **Created.** When the table has a ``created_timestamp`` column (when the
  row became known, e.g. a later backfill), a row is used for a spine row only
  if it was created at or before the row's time (inclusive); a null
  ``created_timestamp`` means known at its ``event_timestamp``. Among the rows
  known by then, the latest by ``event_timestamp`` wins as above, so a backfill
  never leaks into spine rows that happened before it.
* **As of a time.** With ``as_of`` (:meth:`~ParquetOfflineStore.point_in_time`'s
  keyword), rows created after it are ignored as if they had never been
  written: created is ``created_timestamp`` where the table has it and it is
  not null, else ``event_timestamp`` (a table with neither time cannot tell:
  all its rows are used). So a lookup repeated later, after rows were appended
  or backfilled, gives the same answer. :meth:`~ParquetOfflineStore.latest_as_of`
  gives each entity the row :meth:`~ParquetOfflineStore.read_latest` would have
  picked at ``as_of``.
* **Ties.** Among several rows of one entity with the same timestamp, the last
  one in file order wins (files in name order, rows in file order). The same
  rule picks the row of :meth:`~ParquetOfflineStore.read_latest`.
* **Entity keys** are compared as text, the contract's one way (CONTRACT 4.1):
  text columns as they are, integer columns in decimal, float columns holding
  an integral value as that integer (``123.0`` → ``"123"``); other floats and
  null entities match nothing.
* **Times** are compared in UTC at nanosecond precision. Timestamps without a
  time zone (in the spine or in a file) are read as UTC; zoned ones are
  converted. A file without an ``event_timestamp`` column holds rows valid since
  the beginning of time: every spine row with a time sees the file's last row
  of its entity, and ``max_age`` does not apply (such rows have no age). A file
  row whose ``event_timestamp`` is null is never used.
* **Missing.** A spine row with no entity or no time, an entity without a row
  at or before the time, or (with the group's ``max_age``) a newest such row
  older than ``max_age`` seconds gives a missing value. A row exactly
  ``max_age`` old is still used.
* **Output.** One array a feature, aligned with the spine's rows (duplicate
  spine rows each get their value). Float columns come back as ``float64``
  with NaN; integer columns as ``int64`` when no value is missing, otherwise as
  ``float64`` with NaN (pandas' own rule), or as an object array of Python ints
  and None when a value is beyond 2**53 and would lose precision as a float;
  boolean columns as ``bool`` or, with missing values, an object array with
  None; text and everything else as object arrays with None; timestamps as
  ``datetime64`` in UTC with NaT.

DuckDB runs in process, one connection a store, opened on first use; each call
works on its own cursor, so a store can be shared by threads.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from fs_augment.errors import ConfigError, FeatureNotFoundError, ParameterError, RecipeError, StoreError
from fs_augment.keys import (
    CREATED_COLUMN,
    NAME_PATTERN,
    TIMESTAMP_COLUMN,
    entity_column_for,
    parse_as_of,
    validate_name,
)
from fs_augment.recipe import FeatureGroup
from fs_augment.stores._conversion import scatter, spine_entities, spine_stamps
from fs_augment.stores.base import OfflineStore

if TYPE_CHECKING:
    from pandas.api.typing import NaTType

    from fs_augment.config import Config

__all__ = ["ParquetOfflineStore", "open_parquet_store"]

# A row's order key is its time in nanoseconds times 2**52 plus its position
# (file index << 40 | row in file), as a HUGEINT: one ASOF inequality then
# orders by time and breaks ties by file order. 2**52 keeps every DuckDB
# timestamp (about ±2.9e5 years, ±9.2e21 ns) inside the 128-bit range.
_POSITION_BITS = 52
_ROW_BITS = 40
_MAX_FILES = 1 << (_POSITION_BITS - _ROW_BITS)
_SCALE = f"{1 << _POSITION_BITS}::HUGEINT"
_LAST_POSITION = (1 << _POSITION_BITS) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
# Files of a folder are combined by column name; a column a file lacks reads as null there.
# The virtual columns file_index and file_row_number (DuckDB >= 1.3) give each row's position.
_RESERVED = frozenset({"file_index", "file_row_number", "filename"})
_TIME_COLUMNS = (TIMESTAMP_COLUMN, CREATED_COLUMN)
_READ = "read_parquet($files, hive_partitioning = false, union_by_name = true)"

_INTEGER_TYPES = frozenset({
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
})
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE"})
_TIME_TYPES_US = frozenset({"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP WITH TIME ZONE"})
_TIME_TYPES_NS = frozenset({"TIMESTAMP_NS", "TIMESTAMPTZ_NS", "TIMESTAMP_NS WITH TIME ZONE"})



def _newest(count: int, row: str = "", *, with_time: bool = True) -> str:
    """``arg_max(struct_pack(...), k)``: the time ``t`` and the ``count`` columns ``c0, c1, ...``
    of the row with the greatest order key ``k`` (ties: last in file order), ``row`` their alias prefix.
    """
    fields = [*([f"t := {row}t"] if with_time else []), *(f"c{i} := {row}c{i}" for i in range(count))]
    return f"arg_max(struct_pack({', '.join(fields)}), {row}k)"


def _quote(identifier: str) -> str:
    """A SQL identifier in double quotes, embedded quotes doubled."""
    return '"' + identifier.replace('"', '""') + '"'


def _to_arrow(relation: Any) -> pa.Table:
    fetch = getattr(relation, "to_arrow_table", None)  # older DuckDB releases name it fetch_arrow_table
    return fetch() if fetch is not None else relation.fetch_arrow_table()


@dataclass(frozen=True)
class _Table:
    """One namespace's parquet data: its files and schema."""

    namespace: str
    files: tuple[str, ...]
    location: str
    columns: dict[str, str]  # name -> DuckDB type, in file order

    @property
    def has_time(self) -> bool:
        return TIMESTAMP_COLUMN in self.columns

    @property
    def has_created(self) -> bool:
        return CREATED_COLUMN in self.columns

    def default_entity_column(self) -> str | None:
        """The entity column when no group names one: the namespace's default
        (``user_demographics`` → ``user_id``) if present, else the first column
        that is not ``event_timestamp`` (the layout puts the entity first)."""
        default = entity_column_for(self.namespace)
        if default in self.columns:
            return default
        return next((c for c in self.columns if c not in _TIME_COLUMNS), None)

    def features(self, entity_column: str | None) -> list[str]:
        return [c for c in self.columns
                if c != entity_column and c not in _TIME_COLUMNS and not c.startswith("__index_level_")]


class ParquetOfflineStore(OfflineStore):
    """Feature history in a folder of parquet files, joined point in time with DuckDB.

    See the module documentation for the exact semantics.

    Parameters
    ----------
    root : path-like
        The folder holding ``<namespace>.parquet`` files or ``<namespace>/``
        folders of parquet files.
    threads : int, optional
        DuckDB worker threads (default: DuckDB's, one a core).
    memory_limit : str, optional
        DuckDB memory limit such as ``"4GB"`` (default: DuckDB's, 80 % of RAM).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from fs_augment.recipe import FeatureGroup
    >>> root = tempfile.mkdtemp()
    >>> pd.DataFrame({"user_id": ["u1", "u1"], "event_timestamp": pd.to_datetime(["2024-01-01", "2024-02-01"]),
    ...               "age": [33, 34]}).to_parquet(f"{root}/user_demographics.parquet", index=False)
    >>> store = ParquetOfflineStore(root)
    >>> store.list_features("user_demographics")
    ['age']
    >>> spine = pd.DataFrame({"user_id": ["u1", "u1", "u2"],
    ...                       "ts": pd.to_datetime(["2024-01-15", "2024-02-01", "2024-03-01"], utc=True)})
    >>> store.point_in_time(spine, [FeatureGroup("user_demographics", ("age",), "user_id")], "ts")
    {'user_demographics:age': array([33., 34., nan])}
    >>> store.close()
    """

    name = "parquet"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        threads: int | None = None,
        memory_limit: str | None = None,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.threads = threads
        self.memory_limit = memory_limit
        self._connection: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ParquetOfflineStore({str(self.root)!r})"

    # --- lifecycle -------------------------------------------------------
    def describe(self) -> str:
        """Where the store is, for messages."""
        return f"parquet folder {self.root}"

    def close(self) -> None:
        """Close the DuckDB connection (a later call opens a new one)."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _cursor(self) -> Any:
        """A new cursor on the store's connection, which is opened on first use."""
        import duckdb

        with self._lock:
            if self._connection is None:
                config: dict[str, Any] = {"preserve_insertion_order": False}
                if self.threads is not None:
                    config["threads"] = self.threads
                if self.memory_limit is not None:
                    config["memory_limit"] = self.memory_limit
                try:
                    self._connection = duckdb.connect(":memory:", config=config)
                except duckdb.Error as exc:
                    raise StoreError(f"cannot start DuckDB for the {self.describe()}: {exc}") from exc
            return self._connection.cursor()

    # --- tables ------------------------------------------------------------
    def namespaces(self) -> list[str]:
        """The namespaces the folder holds, sorted."""
        if not self.root.is_dir():
            return []
        found = set()
        for entry in self.root.iterdir():
            if entry.is_file() and entry.suffix == ".parquet":
                found.add(entry.stem)
            elif entry.is_dir() and any(entry.glob("*.parquet")):
                found.add(entry.name)
        return sorted(n for n in found if NAME_PATTERN.fullmatch(n) and not n.startswith("."))

    def _files(self, namespace: str) -> tuple[tuple[str, ...], str]:
        validate_name(namespace, "namespace", self.describe())
        if namespace.startswith("."):  # a hidden file or folder, or the root's parent
            raise RecipeError(f"invalid namespace {namespace!r} in {self.describe()}: a parquet namespace's name "
                              "does not start with '.'")
        single = self.root / f"{namespace}.parquet"
        folder = self.root / namespace
        parts = sorted(str(p) for p in folder.glob("*.parquet") if p.is_file()) if folder.is_dir() else []
        if single.is_file() and parts:
            raise StoreError(f"namespace {namespace!r} is both {single} and the folder {folder} in the "
                             f"{self.describe()}; keep one of them")
        if single.is_file():
            return (str(single),), str(single)
        if parts:
            if len(parts) > _MAX_FILES:
                raise StoreError(f"namespace {namespace!r} has {len(parts)} parquet files in {folder}; "
                                 f"at most {_MAX_FILES} are supported, compact them")
            return tuple(parts), str(folder / "*.parquet")
        have = self.namespaces()
        listing = ", ".join(have) if have else "none"
        where = self.describe() if self.root.is_dir() else f"{self.describe()} (the folder does not exist)"
        raise FeatureNotFoundError(
            f"namespace {namespace!r} is not in the {where}: expected {single} or {folder}{os.sep}*.parquet; "
            f"namespaces present: {listing}")

    def _table(self, namespace: str, cursor: Any) -> _Table:
        import duckdb

        files, location = self._files(namespace)
        try:
            rows = cursor.sql(f"DESCRIBE SELECT * FROM {_READ}",
                              params={"files": list(files)}).fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"cannot read the schema of namespace {namespace!r} from {location}: {exc}") from exc
        columns = {str(r[0]): str(r[1]) for r in rows}
        reserved = [c for c in columns if c.lower() in _RESERVED]
        if reserved:
            raise StoreError(f"namespace {namespace!r} in {location} has column(s) {', '.join(reserved)}, names "
                             "DuckDB keeps for the position of each row; rename them")
        return _Table(namespace, files, location, columns)

    def _entity_column(self, table: _Table, preferred: str | None) -> str:
        column = preferred if preferred is not None else table.default_entity_column()
        if column is None or column not in table.columns or column in _TIME_COLUMNS:
            raise StoreError(
                f"namespace {table.namespace!r} in {table.location} has no entity column "
                f"{column!r}; its columns are: {', '.join(table.columns) or 'none'}. The entity column "
                "must be a column of the file named like the recipe's entity_column")
        return column

    def _check_features(self, table: _Table, entity_column: str, features: Sequence[str]) -> None:
        have = table.features(entity_column)
        unknown = [f for f in features if f not in have]
        if unknown:
            raise FeatureNotFoundError(
                f"feature(s) {', '.join(map(repr, unknown))} of namespace {table.namespace!r} are not in "
                f"{table.location} ({self.describe()}); the namespace has: {', '.join(have) or 'no features'}")

    def list_features(self, namespace: str) -> list[str]:
        """The feature columns of a namespace: every column but the entity and the two times.

        Raises
        ------
        FeatureNotFoundError
            The folder has no table for ``namespace``; the message lists the
            namespaces it has.
        """
        cursor = self._cursor()
        try:
            table = self._table(namespace, cursor)
        finally:
            cursor.close()
        return table.features(table.default_entity_column())

    # --- SQL pieces --------------------------------------------------------
    @staticmethod
    def _entity_sql(table: _Table, column: str) -> str:
        kind = table.columns[column]
        ref = _quote(column)
        if kind == "VARCHAR":
            return ref
        if kind == '"NULL"':  # no value at all, e.g. an empty file written from an object column
            return "CAST(NULL AS VARCHAR)"
        if kind in _INTEGER_TYPES:
            return f"CAST({ref} AS VARCHAR)"
        if kind in _FLOAT_TYPES or kind.startswith("DECIMAL"):
            value = f"CAST({ref} AS DOUBLE)"
            return (f"CASE WHEN isfinite({value}) AND {value} = trunc({value}) AND abs({value}) < 1e38 "
                    f"THEN CAST(CAST({value} AS HUGEINT) AS VARCHAR) END")
        raise StoreError(
            f"entity column {column!r} of namespace {table.namespace!r} in {table.location} has type {kind}; "
            "entity values must be text, integers or integral floats")

    @staticmethod
    def _time_sql(table: _Table, column: str = TIMESTAMP_COLUMN) -> str:
        """The row's ``column`` time as HUGEINT nanoseconds since the epoch, UTC."""
        if column not in table.columns:
            return f"{_INT64_MIN}::HUGEINT"
        kind = table.columns[column]
        ref = _quote(column)
        if kind in _TIME_TYPES_NS:
            return f"epoch_ns({ref})::HUGEINT"
        if kind in _TIME_TYPES_US:
            return f"epoch_us({ref})::HUGEINT * 1000"
        if kind == '"NULL"':
            return "CAST(NULL AS HUGEINT)"
        if kind == "DATE":
            return f"epoch_us(CAST({ref} AS TIMESTAMP))::HUGEINT * 1000"
        raise StoreError(
            f"column {column!r} of namespace {table.namespace!r} in {table.location} has type {kind}; "
            "it must be a timestamp (with or without time zone) or a date")

    def _rows_sql(self, table: _Table, entity_column: str, features: Sequence[str], as_of: int | None = None) -> str:
        """The namespace's usable rows: ``e`` (entity text), ``t`` (ns), ``k`` (order key), ``c0``...,
        and, when the table has ``created_timestamp``, ``known`` (ns: created, else ``t``).

        With ``as_of`` (ns since the epoch), only the rows created by then: ``known`` (``t`` for a
        table without ``created_timestamp``) at or before it.
        """
        values = ", ".join(f"{_quote(f)} AS c{i}" for i, f in enumerate(features))
        known, known_out = "", ""
        if table.has_created:
            known = f"coalesce({self._time_sql(table, CREATED_COLUMN)}, {self._time_sql(table)}) AS known, "
            known_out = "known, "
        created_by = ""
        if as_of is not None:
            created_by = f" AND {'known' if table.has_created else 't'} <= {int(as_of)}::HUGEINT"
        return (
            f"SELECT e, t, {known_out}t * {_SCALE} + (file_index::HUGEINT << {_ROW_BITS}) + file_row_number AS k, "
            f"{', '.join(f'c{i}' for i in range(len(features)))} "
            f"FROM (SELECT {self._entity_sql(table, entity_column)} AS e, {self._time_sql(table)} AS t, {known}"
            f"file_index, file_row_number, {values} "
            f"FROM {_READ}) "
            f"WHERE e IS NOT NULL AND t IS NOT NULL{created_by}"
        )

    # --- point in time -----------------------------------------------------
    def point_in_time(
        self,
        spine: pd.DataFrame,
        groups: Sequence[FeatureGroup],
        timestamp_column: str,
        *,
        as_of: Any = None,
    ) -> dict[str, Any]:
        """Point-in-time correct feature values for every spine row.

        Parameters
        ----------
        spine : DataFrame
            The entity columns of ``groups`` (keys as text, None for no
            entity; other entity values are turned into text the contract's
            way) and ``timestamp_column`` (``datetime64`` in UTC; naive times
            are read as UTC).
        groups : sequence of FeatureGroup
            What to read; each group's ``entity_column`` is both the spine
            column and the file's entity column.
        timestamp_column : str
            The spine column with each row's time.
        as_of : datetime, optional
            Ignore the rows created after this time (UTC if naive; see the
            module documentation).

        Returns
        -------
        dict
            ``"namespace:feature"`` → NumPy array aligned with the spine's
            rows; see the module documentation for values and dtypes.

        Raises
        ------
        SpineError
            A column is missing from the spine or cannot be read.
        FeatureNotFoundError
            A namespace or feature is not in the folder.
        StoreError
            A file cannot be read, or its entity or time column is unusable.
        """
        limit = _as_of_ns(as_of)

        def sql(table: _Table, entity: str, group: FeatureGroup, spine_entity: str, view: str) -> str:
            if table.has_created:
                return self._known_join_sql(table, entity, group, spine_entity, view, limit)
            selected = ", ".join(f"f.c{i}" for i in range(len(group.features)))
            age = ""
            if group.max_age is not None and table.has_time:
                age = f" WHERE s.t - f.t <= {round(group.max_age * 1e9)}"
            return (
                f"SELECT s.rn, {selected} "
                f"FROM (SELECT rn, t, {spine_entity} AS e, "
                f"t * {_SCALE} + {_LAST_POSITION} AS k FROM {_quote(view)} "
                f"WHERE {spine_entity} IS NOT NULL AND t IS NOT NULL) AS s "
                f"ASOF JOIN ({self._rows_sql(table, entity, group.features, limit)} AND t <= {_INT64_MAX}) AS f "
                f"ON s.e = f.e AND s.k >= f.k{age}"
            )

        return self._join(spine, groups, timestamp_column, sql, "point-in-time join")

    def latest_as_of(self, spine: pd.DataFrame, groups: Sequence[FeatureGroup], as_of: Any) -> dict[str, Any]:
        """The latest values each spine row's entities had at ``as_of``, from the rows created by then.

        Each entity gets the row :meth:`read_latest` would have picked at
        ``as_of``: among the rows created at or before it (see the module
        documentation), the one with the greatest ``event_timestamp``, ties to
        the last in file order. With the group's ``max_age``, a row more than
        ``max_age`` older than ``as_of`` gives missing values.

        Parameters
        ----------
        spine : DataFrame
            The entity columns of ``groups``, as for :meth:`point_in_time`.
        groups : sequence of FeatureGroup
        as_of : datetime
            The time (UTC if naive).

        Returns
        -------
        dict
            ``"namespace:feature"`` → NumPy array aligned with the spine's rows.
        """
        limit = _as_of_ns(as_of)
        if limit is None:
            raise ParameterError("latest_as_of needs a time as_of, got None")

        def sql(table: _Table, entity: str, group: FeatureGroup, spine_entity: str, view: str) -> str:
            selected = ", ".join(f"f.v.c{i}" for i in range(len(group.features)))
            age = ""
            if group.max_age is not None and table.has_time:
                age = f" WHERE {limit}::HUGEINT - f.v.t <= {round(group.max_age * 1e9)}"
            return (
                f"SELECT s.rn, {selected} "
                f"FROM (SELECT rn, {spine_entity} AS e FROM {_quote(view)} WHERE {spine_entity} IS NOT NULL) AS s "
                f"JOIN (SELECT e, {_newest(len(group.features))} AS v "
                f"FROM ({self._rows_sql(table, entity, group.features, limit)}) GROUP BY e) AS f "
                f"ON s.e = f.e{age}"
            )

        return self._join(spine, groups, None, sql, "lookup of the latest rows")

    def _join(self, spine: pd.DataFrame, groups: Sequence[FeatureGroup], timestamp_column: str | None,
              sql: Callable[[_Table, str, FeatureGroup, str, str], str], action: str) -> dict[str, Any]:
        """Register the spine (``rn``, ``t`` when timed, ``e<k>``), run ``sql(...)`` a group, scatter the rows."""
        import duckdb

        n = len(spine)
        columns = list(dict.fromkeys(g.entity_column for g in groups))
        arrays: dict[str, pa.Array] = {"rn": pa.array(np.arange(n, dtype=np.int64))}
        if timestamp_column is not None:
            arrays["t"] = _spine_times(spine, timestamp_column)
        for i, column in enumerate(columns):
            arrays[f"e{i}"] = spine_entities(spine, column)
        spine_table = pa.table(arrays)
        view = f"fs_augment_spine_{uuid.uuid4().hex}"

        out: dict[str, Any] = {}
        cursor = self._cursor()
        try:
            cursor.register(view, spine_table)
            for group in groups:
                table = self._table(group.namespace, cursor)
                entity = self._entity_column(table, group.entity_column)
                self._check_features(table, entity, group.features)
                query = sql(table, entity, group, f"e{columns.index(group.entity_column)}", view)
                try:
                    result = _to_arrow(cursor.sql(query, params={"files": list(table.files)}))
                except duckdb.Error as exc:
                    raise StoreError(f"{action} of namespace {group.namespace!r} over {table.location} "
                                     f"failed: {exc}") from exc
                rows = result.column(0).to_numpy()
                for i, name in enumerate(group.qualified_names):
                    out[name] = scatter(result.column(i + 1), rows, n)
        finally:
            cursor.close()  # also drops the registered view
        return out

    def _known_join_sql(self, table: _Table, entity: str, group: FeatureGroup, spine_entity: str, view: str,
                        as_of: int | None = None) -> str:
        """The point-in-time join of a table with ``created_timestamp``.

        An ASOF join cannot skip rows not yet known at the spine time, so each
        spine row is joined to every row of its entity that happened and was
        known by then (and by ``as_of``), and ``arg_max`` over the order key
        keeps the latest of them (ties: last in file order); ``max_age`` then
        applies to that row.
        """
        selected = ", ".join(f"v.c{i}" for i in range(len(group.features)))
        age = ""
        if group.max_age is not None and table.has_time:
            age = f" WHERE st - v.t <= {round(group.max_age * 1e9)}"
        return (
            f"SELECT rn, {selected} FROM ("
            f"SELECT s.rn, s.t AS st, {_newest(len(group.features), 'f.')} AS v "
            f"FROM (SELECT rn, t, {spine_entity} AS e FROM {_quote(view)} "
            f"WHERE {spine_entity} IS NOT NULL AND t IS NOT NULL) AS s "
            f"JOIN ({self._rows_sql(table, entity, group.features, as_of)}) AS f "
            f"ON s.e = f.e AND f.t <= s.t AND f.known <= s.t "
            f"GROUP BY s.rn, s.t){age}"
        )

    # --- latest ------------------------------------------------------------
    def latest_table(
        self, namespace: str, features: Sequence[str], entity_column: str | None = None, *,
        with_time: bool = False,
    ) -> tuple[str, pa.Table]:
        """The latest row per entity as an Arrow table.

        Parameters
        ----------
        namespace : str
        features : sequence of str
        entity_column : str, optional
            The file's entity column; by default the namespace's default
            entity column if the file has it, else its first column.
        with_time : bool
            Add, last, the ``event_timestamp`` of each latest row as int64
            nanoseconds since the epoch (UTC), when the table has the column.

        Returns
        -------
        tuple
            The entity column's name and a table with the entity (as text,
            first column, sorted) and one column a feature. The latest row is
            the one with the greatest ``event_timestamp`` (rows with a null
            time are ignored), ties and files without timestamps resolved by
            file order: the last row wins.
        """
        import duckdb

        cursor = self._cursor()
        try:
            table = self._table(namespace, cursor)
            entity = self._entity_column(table, entity_column)
            self._check_features(table, entity, features)
            timed = with_time and table.has_time
            unpacked = ", ".join(f"v.c{i} AS {_quote(f)}" for i, f in enumerate(features))
            if timed:
                unpacked += f", CAST(v.t AS BIGINT) AS {_quote(TIMESTAMP_COLUMN)}"
            sql = (
                f"SELECT e AS {_quote(entity)}, {unpacked} FROM ("
                f"SELECT e, {_newest(len(features), with_time=timed)} AS v "
                f"FROM ({self._rows_sql(table, entity, features)}) GROUP BY e) ORDER BY e"
            )
            try:
                result = _to_arrow(cursor.sql(sql, params={"files": list(table.files)}))
            except duckdb.Error as exc:
                raise StoreError(f"reading the latest rows of namespace {namespace!r} from {table.location} "
                                 f"failed: {exc}") from exc
        finally:
            cursor.close()
        return entity, result

    def newest_timestamp(self, namespace: str) -> pd.Timestamp | NaTType | None:
        """The newest ``event_timestamp`` of a namespace, in UTC (see :meth:`OfflineStore.newest_timestamp`)."""
        import duckdb

        cursor = self._cursor()
        try:
            table = self._table(namespace, cursor)
            if TIMESTAMP_COLUMN not in table.columns:
                return None
            try:
                result = _to_arrow(cursor.sql(f"SELECT max({_quote(TIMESTAMP_COLUMN)}) FROM {_READ}",
                                              params={"files": list(table.files)}))
            except duckdb.Error as exc:
                raise StoreError(f"cannot read the times of namespace {namespace!r} from {table.location}: "
                                 f"{exc}") from exc
        finally:
            cursor.close()
        value = result.column(0)[0].as_py()
        if value is None:
            return pd.NaT
        stamp = pd.Timestamp(value)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")

    def read_latest(self, group: FeatureGroup) -> pd.DataFrame:
        """The latest row per entity: the entity column (as text) and the group's features.

        The latest row is chosen as in :meth:`point_in_time` at a time after
        every row (greatest ``event_timestamp``, ties to the last row in file
        order; files without timestamps: the last row per entity). Rows are
        sorted by entity; integer features are pandas ``Int64`` (exact, with
        ``pd.NA`` for missing values), so materialised values keep their type.
        When the table has times, a last column ``event_timestamp``
        (``datetime64[ns, UTC]``) holds each latest row's time.
        """
        _, table = self.latest_table(group.namespace, group.features, group.entity_column, with_time=True)
        frame: pd.DataFrame = table.to_pandas(types_mapper=_NULLABLE_INTS.get)
        if TIMESTAMP_COLUMN in frame.columns:
            frame[TIMESTAMP_COLUMN] = pd.to_datetime(frame[TIMESTAMP_COLUMN].to_numpy(dtype="int64"), unit="ns",
                                                     utc=True)
        return frame


_NULLABLE_INTS = {
    pa.int8(): pd.Int64Dtype(), pa.int16(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype(),
    pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.Int64Dtype(), pa.uint16(): pd.Int64Dtype(),
    pa.uint32(): pd.Int64Dtype(), pa.uint64(): pd.UInt64Dtype(),
}


# --- spine ---------------------------------------------------------------------

def _as_of_ns(as_of: Any) -> int | None:
    """``as_of`` (a datetime, UTC if naive, or None) as nanoseconds since the epoch."""
    if as_of is None:
        return None
    return int(parse_as_of(as_of).value)


def _spine_times(spine: pd.DataFrame, column: str) -> pa.Array:
    """The spine's times as int64 nanoseconds since the epoch (UTC), null for NaT."""
    stamps = spine_stamps(spine, column, "datetime64[ns]")
    return pa.array(stamps.view(np.int64), type=pa.int64(), mask=np.isnat(stamps))


def open_parquet_store(config: Config) -> ParquetOfflineStore:
    """The offline store of a ``file://`` ``offline_store_uri`` (the registry's factory)."""
    from fs_augment.config import resolve_file_uri

    uri = config.feature_store.connection_info.offline_store_uri
    if uri is None:
        raise ConfigError(f"environment {config.env!r}: feature_store.connection_info.offline_store_uri is not set")
    return ParquetOfflineStore(resolve_file_uri(uri, config))
