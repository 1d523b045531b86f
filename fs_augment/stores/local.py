"""The embedded ``local`` provider: online lookups from the parquet folder, no server.

The environment's ``offline_store_uri: file://FOLDER`` serves both kinds of
lookup: point-in-time joins through :class:`~fs_augment.stores.offline.ParquetOfflineStore`
and latest values through :class:`LocalOnlineStore`, which keeps an in-memory
index of the latest row per entity, built from the offline store's
:meth:`~fs_augment.stores.base.OfflineStore.latest_table` (any offline store
would do; the ``local`` provider asks for the parquet one, so no server is needed).

The index is built lazily, one namespace at a time and only for the feature
columns asked for (a later request for another feature of the namespace adds
that column). It is built once per process: files changed on disk are seen
after :meth:`LocalOnlineStore.refresh`.

Values are the plain Python values a JSON decoder would give (``int``,
``float``, ``str``, ``bool``, lists), so lookups answer what the Redis store
answers for the same data; NaN and nulls are None, timestamps and dates ISO
8601 text, decimals floats.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fs_augment.errors import ConfigError, FeatureNotFoundError
from fs_augment.keys import NOT_UTF8, TIMESTAMP_COLUMN, InvalidValue, format_event_time
from fs_augment.stores.base import FeatureRequest, OfflineStore, OnlineStore

if TYPE_CHECKING:
    from fs_augment.config import Config

__all__ = ["LocalOnlineStore", "open_local_store"]


@dataclass(frozen=True)
class _Index:
    """The latest values of one namespace: entity text → row, feature → values by row.

    Never changed once built; extending it builds a new one.
    """

    entity_column: str
    rows: Mapping[str, int]
    columns: Mapping[str, list[Any]]


class LocalOnlineStore(OnlineStore):
    """Latest feature values served from a parquet folder, in process.

    Parameters
    ----------
    offline : OfflineStore
        The offline store whose latest rows feed the index (the parquet
        folder's, for the ``local`` provider).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from fs_augment.stores.base import FeatureRequest
    >>> from fs_augment.stores.offline import ParquetOfflineStore
    >>> root = tempfile.mkdtemp()
    >>> pd.DataFrame({"user_id": ["u1", "u1"], "event_timestamp": pd.to_datetime(["2024-01-01", "2024-02-01"]),
    ...               "age": [33, 34]}).to_parquet(f"{root}/user_demographics.parquet", index=False)
    >>> store = LocalOnlineStore(ParquetOfflineStore(root))
    >>> store.fetch([FeatureRequest("user_demographics", ["age"], ["u1", "u9"])])
    [[[34, None]]]
    """

    name = "local"

    def __init__(self, offline: OfflineStore) -> None:
        self.offline = offline
        self._indexes: dict[str, _Index] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalOnlineStore({self.offline!r})"

    def describe(self) -> str:
        """Where the store is, for messages."""
        return f"local ({self.offline.describe()})"

    def refresh(self) -> None:
        """Forget the index, so the next lookups read the files again."""
        with self._lock:
            self._indexes = {}

    def close(self) -> None:
        """Drop the index; the offline store is closed by its owner."""
        self.refresh()

    def indexed_columns(self, namespace: str) -> list[str]:
        """The feature columns of ``namespace`` loaded so far (none before its first lookup)."""
        index = self._indexes.get(namespace)
        return list(index.columns) if index is not None else []

    def _index(self, namespace: str, features: Sequence[str], entity_column: str | None = None) -> _Index:
        index = self._indexes.get(namespace)
        if index is not None and all(f in index.columns for f in features):
            return index
        with self._lock:  # one builder at a time; readers keep using the index they hold
            index = self._indexes.get(namespace)
            wanted = [f for f in dict.fromkeys(features) if index is None or f not in index.columns]
            if index is not None and not wanted:  # built by another thread meanwhile
                return index
            plain = [f for f in wanted if f != TIMESTAMP_COLUMN]
            timed = len(plain) < len(wanted)
            if not plain:  # only the times are new: read them beside a feature the index has
                plain = [next(f for f in index.columns if f != TIMESTAMP_COLUMN)] if index is not None else []
            entity_column, table = self.offline.latest_table(
                namespace, plain, index.entity_column if index is not None else entity_column, with_time=timed)
            index = _extend(index, entity_column, table, plain + [TIMESTAMP_COLUMN] * timed)
            self._indexes = {**self._indexes, namespace: index}
            return index

    def fetch(self, requests: Sequence[FeatureRequest], *, online: bool = False) -> list[list[list[Any]]]:
        """Read the latest values; ``online`` makes no difference in process.

        Returns
        -------
        list
            ``result[i][j][k]``: feature ``j`` of request ``i`` for entity
            ``k``, None where the entity has no row or the value is null.

        Raises
        ------
        FeatureNotFoundError
            A namespace or feature is not in the folder.
        """
        out: list[list[list[Any]]] = []
        for request in requests:
            if not request.entities or not request.features:
                out.append([[] for _ in request.features])
                continue
            index = self._index(request.namespace, request.features, request.entity_column)
            get = index.rows.get
            positions = [get(entity) for entity in request.entities]
            per_feature = []
            for feature in request.features:
                values = index.columns[feature]
                per_feature.append([None if p is None else values[p] for p in positions])
            out.append(per_feature)
        return out

    def list_features(self, namespace: str) -> list[str]:
        """The feature columns of ``namespace``; empty if the folder has no such namespace."""
        try:
            return self.offline.list_features(namespace)
        except FeatureNotFoundError:
            return []


def _extend(index: _Index | None, entity_column: str, table: pa.Table, features: Sequence[str]) -> _Index:
    """A new index holding ``index``'s columns and ``features`` from ``table``."""
    entities = table.column(0).to_pylist()
    columns = {f: _json_values(table.column(i + 1)) for i, f in enumerate(features) if f != TIMESTAMP_COLUMN}
    if TIMESTAMP_COLUMN in features:  # nanoseconds as the writer's text; no column: no times
        stamps = table.column(TIMESTAMP_COLUMN).to_pylist() if TIMESTAMP_COLUMN in table.column_names else []
        columns[TIMESTAMP_COLUMN] = [None if v is None else format_event_time(v) for v in stamps] or \
            [None] * len(entities)
    if index is None:
        return _Index(entity_column, {e: i for i, e in enumerate(entities)}, columns)
    rows = dict(index.rows)
    size = len(rows)
    merged = {f: list(v) for f, v in index.columns.items()}
    new = {f: [None] * size for f in features}
    for position, entity in enumerate(entities):  # same rows unless the files changed meanwhile
        row = rows.get(entity)
        if row is None:
            row = rows[entity] = size
            size += 1
            for values in merged.values():
                values.append(None)
            for values in new.values():
                values.append(None)
        for feature in features:
            new[feature][row] = columns[feature][position]
    merged.update(new)
    return _Index(entity_column, rows, merged)


def _json_values(column: pa.ChunkedArray) -> list[Any]:
    """Python values as a JSON decoder would give them; NaN and null are None."""
    kind = column.type
    values: list[Any] = column.to_pylist()
    if pa.types.is_floating(kind):
        return [None if v is None or math.isnan(v) else v for v in values]
    if pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind) \
            or pa.types.is_boolean(kind):
        return values
    return [_json_value(v) for v in values]


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, decimal.Decimal):
        return None if value.is_nan() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return InvalidValue(value, NOT_UTF8)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def open_local_store(config: Config, offline: OfflineStore | None) -> LocalOnlineStore:
    """The online store of the ``local`` provider (the registry's factory)."""
    have = config.feature_store.connection_info.offline_store_uri
    if offline is None or have is None or not have.startswith("file://"):
        raise ConfigError(
            f"environment {config.env!r}: the local provider serves lookups from a parquet folder and needs "
            f"feature_store.connection_info.offline_store_uri: file://FOLDER (got {have!r})")
    return LocalOnlineStore(offline)
