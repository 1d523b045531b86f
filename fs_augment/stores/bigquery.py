"""Point-in-time joins inside BigQuery, for ``offline_store_uri: bq://PROJECT.DATASET``.

The dataset holds one table a namespace, ``PROJECT.DATASET.<namespace>``, with
the entity column, optionally ``event_timestamp``, optionally
``created_timestamp``, then one column a feature (CONTRACT 4.4). The schema is read at run time (dynamic discovery).

The spine is sent to BigQuery and the join runs there, never in pandas: a
small spine (at most ``array_max_rows`` usable rows) travels as an
``ARRAY<STRUCT>`` query parameter, a larger one is uploaded as a scratch table
``_fs_augment_spine_<uuid>`` that expires after an hour and is deleted as soon
as the query has run. The SQL is generated from the schema by
:mod:`fs_augment.stores.bigquery_sql`; values travel as parameters.

Semantics of :meth:`BigQueryOfflineStore.point_in_time`, the same as the
parquet store's (:mod:`fs_augment.stores.offline`) unless said otherwise:

* **As of.** The feature row used is the latest one of the row's entity whose
  ``event_timestamp`` is at or before the row's time: a row stamped exactly at
  the spine time counts (inclusive), a later one does not.
* **Created.** With a ``created_timestamp`` column (``TIMESTAMP``, ``DATETIME``
  or ``DATE``, read as ``event_timestamp`` is), a row is used for a spine row
  only if it was created at or before the row's time; null means known at its
  ``event_timestamp``. The latest of the rows known by then wins.
* **As of a time.** With ``as_of``, rows created after it are ignored
  (created: ``created_timestamp`` where the table has it and it is not null,
  else ``event_timestamp``), compared at BigQuery's microseconds (a time with
  nanoseconds is floored, which compares the same with microsecond times).
* **Times** are compared in UTC. Spine times without a time zone are read as
  UTC, zoned ones are converted. ``event_timestamp`` may be ``TIMESTAMP``,
  ``DATETIME`` (read as UTC) or ``DATE`` (midnight UTC). BigQuery keeps
  microseconds; a spine time with nanoseconds is compared exactly all the same
  (its sub-microsecond part travels beside it), so the answer is the parquet
  store's at nanosecond precision.
* **Entity keys** are compared as text, the contract's one way (CONTRACT 4.1):
  ``STRING`` columns as they are, ``INT64`` in decimal, ``FLOAT64`` /
  ``NUMERIC`` holding an integral value as that integer (``123.0`` → ``"123"``);
  other values and null entities match nothing.
* **Missing.** A spine row with no entity or no time, an entity without a row
  at or before the time, or (with the group's ``max_age``) a newest such row
  older than ``max_age`` seconds gives a missing value. A row exactly
  ``max_age`` old is still used. A table row whose ``event_timestamp`` is null
  is never used.
* **No ``event_timestamp``.** A table without the column holds rows valid since
  the beginning of time: every spine row with a time sees its entity's row,
  and ``max_age`` does not apply.
* **Ties** (several rows of one entity with the same ``event_timestamp``): a
  BigQuery table has no row order, so the parquet store's rule (the last row
  in file order) cannot be followed. The row with the greatest values of the
  requested features, compared in the order they are requested (nulls lowest),
  wins; all the features of a group come from that one row, and
  :meth:`~BigQueryOfflineStore.read_latest` applies the same rule. Features of
  types BigQuery cannot order (``ARRAY``, ``STRUCT``, ``JSON``, ``GEOGRAPHY``)
  take no part, so rows that differ only there are chosen arbitrarily.
* **Output.** One NumPy array a feature, aligned with the spine's rows
  (duplicate spine rows each get their value), with the parquet store's dtypes:
  ``float64`` with NaN for floats; ``int64`` for integers when none is missing,
  else ``float64`` with NaN, or an object array of Python ints and None when a
  value is beyond 2**53; ``bool`` or, with missing values, an object array with
  None; timestamps as ``datetime64`` holding UTC with NaT; text and everything
  else as object arrays with None.

Results come through the BigQuery Storage API when
``google-cloud-bigquery-storage`` is installed and the store talks to Google,
through the REST API otherwise (always for an emulator endpoint).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fs_augment.config import mask_url
from fs_augment.errors import (
    FeatureNotFoundError,
    FsAugmentError,
    ParameterError,
    SpineError,
    StoreError,
    StoreUnavailableError,
    require,
)
from fs_augment.keys import CREATED_COLUMN, TIMESTAMP_COLUMN, entity_column_for, parse_as_of, validate_name
from fs_augment.recipe import FeatureGroup
from fs_augment.stores._conversion import scatter, spine_entities, spine_stamps
from fs_augment.stores.base import OfflineStore
from fs_augment.stores.bigquery_sql import (
    FEATURE_PREFIX,
    ORDERABLE_TYPES,
    TableSQL,
    entity_sql,
    latest_sql,
    parse_bigquery_uri,
    point_in_time_sql,
    spine_query_sql,
    table_reference,
    time_sql,
)

if TYPE_CHECKING:
    from google.cloud import bigquery
    from pandas.api.typing import NaTType

    from fs_augment.config import Config

__all__ = [
    "ARRAY_SPINE_MAX_ROWS",
    "SCRATCH_PREFIX",
    "BigQueryOfflineStore",
    "TableSQL",
    "entity_sql",
    "latest_sql",
    "open_bigquery_store",
    "parse_bigquery_uri",
    "point_in_time_sql",
    "time_sql",
]

logger = logging.getLogger(__name__)

#: Name prefix of the scratch tables holding uploaded spines.
SCRATCH_PREFIX = "_fs_augment_spine_"
#: Spines with at most this many usable rows travel as a query parameter.
ARRAY_SPINE_MAX_ROWS = 1000
#: How long a scratch table lives if the store cannot delete it.
SCRATCH_TTL = dt.timedelta(hours=1)

_TIME_COLUMNS = (TIMESTAMP_COLUMN, CREATED_COLUMN)  # never features
_MAX_AGE_US_CAP = 1 << 62  # beyond any difference of two BigQuery timestamps (~3.2e17 us)
_ARROW_TYPES = {
    "INT64": pa.int64(), "INTEGER": pa.int64(), "FLOAT64": pa.float64(), "FLOAT": pa.float64(),
    "BOOL": pa.bool_(), "BOOLEAN": pa.bool_(), "STRING": pa.string(), "BYTES": pa.binary(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"), "DATETIME": pa.timestamp("us"), "DATE": pa.date32(),
    "NUMERIC": pa.decimal128(38, 9), "BIGNUMERIC": pa.decimal256(76, 38),
}
_BQ_MIN_US = -62135596800 * 10**6  # 0001-01-01T00:00:00Z
_BQ_MAX_US = 253402300799999999  # 9999-12-31T23:59:59.999999Z
_MICROS_PER_TICK = {"us": 1, "ms": 1000, "s": 10**6, "m": 60 * 10**6, "h": 3600 * 10**6, "D": 86400 * 10**6}
_TRANSIENT_REASONS = frozenset({
    "backendError", "internalError", "badGateway", "rateLimitExceeded",
    "jobBackendError", "jobInternalError", "jobRateLimitExceeded",
})


# --- client and its errors ----------------------------------------------------

def make_client(project: str, *, location: str | None = None, api_endpoint: str | None = None) -> bigquery.Client:
    """A BigQuery client: Google's application-default credentials, or anonymous ones for ``api_endpoint``.

    ``api_endpoint`` (config ``bigquery_api_endpoint``) points at a BigQuery
    other than Google's, such as a local emulator, which takes no credentials.
    """
    bq = require("google.cloud.bigquery", "bigquery")
    client: bigquery.Client
    if api_endpoint is None:
        client = bq.Client(project=project, location=location)
        return client
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    client = bq.Client(project=project, location=location, credentials=AnonymousCredentials(),
                       client_options=ClientOptions(api_endpoint=api_endpoint))
    return client


def _client_errors() -> tuple[type[BaseException], ...]:
    """The exception classes the Google clients raise (translated at the store boundary)."""
    import concurrent.futures

    import requests
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return (GoogleAPIError, GoogleAuthError, requests.RequestException, ConnectionError, TimeoutError,
            concurrent.futures.TimeoutError)


def _is_transient(exc: BaseException) -> bool:
    """Whether a failure is worth retrying: a connection problem, a 5xx, a rate limit."""
    from google.api_core.retry import if_transient_error

    if isinstance(exc, Exception) and if_transient_error(exc):
        return True
    import requests

    if isinstance(exc, requests.ConnectionError | requests.Timeout | ConnectionError):
        return True
    errors = getattr(exc, "errors", None) or []
    return any(isinstance(e, dict) and e.get("reason") in _TRANSIENT_REASONS for e in errors)


# --- the store -----------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    """One group's table as discovered: its SQL description and feature types."""

    sql: TableSQL
    types: tuple[pa.DataType, ...]


class BigQueryOfflineStore(OfflineStore):
    """Feature history in a BigQuery dataset, joined point in time inside BigQuery.

    See the module documentation for the exact semantics.

    Parameters
    ----------
    project : str
        The Google Cloud project holding the dataset (and billed for queries).
    dataset : str
        The dataset holding one table a namespace.
    api_endpoint : str, optional
        A BigQuery API endpoint other than Google's, such as an emulator's
        ``http://127.0.0.1:9050``; it is used with anonymous credentials and
        without the Storage API. By default Google's endpoint is used with the
        application-default credentials.
    location : str, optional
        Where the jobs run (``US``, ``EU``, ``asia-northeast3`` ...).
    timeout : float
        Seconds each API request may take.
    retry_attempts : int
        Retries of a request that failed in a way worth retrying.
    scratch_dataset : str, optional
        ``DATASET`` or ``PROJECT.DATASET`` for scratch spine tables (default:
        ``dataset``); the credentials need to create and delete tables there.
    array_max_rows : int
        Spines with at most this many usable rows are passed as a query
        parameter instead of a scratch table.
    env : str
        The environment's name, for messages.
    client : google.cloud.bigquery.Client, optional
        A ready client; the store then neither creates nor closes one.

    Examples
    --------
    >>> store = BigQueryOfflineStore("my-project", "features")
    >>> store.describe()
    'BigQuery dataset my-project.features'
    """

    name = "bigquery"

    def __init__(
        self,
        project: str,
        dataset: str,
        *,
        api_endpoint: str | None = None,
        location: str | None = None,
        timeout: float = 30.0,
        retry_attempts: int = 3,
        scratch_dataset: str | None = None,
        array_max_rows: int = ARRAY_SPINE_MAX_ROWS,
        env: str = "custom",
        client: bigquery.Client | None = None,
    ) -> None:
        self.project = project
        self.dataset = dataset
        self.api_endpoint = api_endpoint
        self.location = location
        self.timeout = timeout
        self.retry_attempts = retry_attempts
        self.scratch_dataset = scratch_dataset
        self.array_max_rows = array_max_rows
        self.env = env
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"BigQueryOfflineStore({self.project!r}, {self.dataset!r}, env={self.env!r})"

    # --- lifecycle -------------------------------------------------------
    def describe(self) -> str:
        """Where the store is, for messages."""
        where = f"BigQuery dataset {self.project}.{self.dataset}"
        return f"{where} at {mask_url(self.api_endpoint)}" if self.api_endpoint else where

    def close(self) -> None:
        """Close the client the store created (a later call creates a new one)."""
        with self._lock:
            client = self._client if self._owns_client else None
            if self._owns_client:
                self._client = None
        if client is not None:
            client.close()

    @property
    def client(self) -> bigquery.Client:
        """The BigQuery client, created on first use."""
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self) -> bigquery.Client:
        with self._translating("creating the BigQuery client"):
            return make_client(self.project, location=self.location, api_endpoint=self.api_endpoint)

    @property
    def uses_storage_api(self) -> bool:
        """Whether results come through the BigQuery Storage API (Google's endpoint, package installed)."""
        if self.api_endpoint is not None:
            return False
        try:
            return importlib.util.find_spec("google.cloud.bigquery_storage") is not None
        except ImportError:
            return False

    # --- errors and retries -----------------------------------------------
    def _retry(self) -> Any:
        """A retry policy for one call: at most ``retry_attempts`` retries of transient failures."""
        from google.api_core.retry import Retry

        attempts = itertools.count(1)

        def predicate(exc: Exception) -> bool:
            return _is_transient(exc) and next(attempts) <= self.retry_attempts

        return Retry(predicate=predicate, initial=0.25, maximum=8.0, multiplier=2.0, timeout=None)

    @contextmanager
    def _translating(self, action: str) -> Iterator[None]:
        """Turn the Google client's errors raised inside into fs_augment errors."""
        try:
            yield
        except FsAugmentError:
            raise
        except _client_errors() as exc:
            raise self._translate(exc, action) from exc

    def _translate(self, exc: BaseException, action: str) -> StoreError:
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth

        where = f"{self.describe()} (offline store of environment {self.env!r})"
        detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        if isinstance(exc, auth.DefaultCredentialsError):
            return StoreUnavailableError(
                f"{action}: no Google credentials for {where}: {detail}. Run `gcloud auth "
                "application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or run where a service "
                "account is attached")
        if isinstance(exc, auth.RefreshError | api.Unauthorized):
            return StoreUnavailableError(f"{action}: the Google credentials were refused by {where}: {detail}")
        if isinstance(exc, api.Forbidden):
            return StoreError(
                f"{action}: permission denied on {where}: {detail}. Reading needs BigQuery Data Viewer and "
                "Job User; scratch spine tables need Data Editor on the scratch dataset")
        if _is_transient(exc) or isinstance(exc, api.RetryError | TimeoutError | ConnectionError):
            return StoreUnavailableError(
                f"{action}: {where} is unavailable after {self.retry_attempts} retries "
                f"(timeout {self.timeout:g} s): {type(exc).__name__}: {detail}")
        return StoreError(f"{action} failed on {where}: {type(exc).__name__}: {detail}")

    # --- schema discovery ----------------------------------------------------
    def _table_id(self, namespace: str) -> str:
        return f"{self.project}.{self.dataset}.{namespace}"

    def _get_table(self, namespace: str) -> bigquery.Table:
        """The namespace's table, or FeatureNotFoundError listing the dataset's tables."""
        validate_name(namespace, "namespace", self.describe())
        client = self.client  # first: a missing google-cloud-bigquery raises MissingDependencyError
        from google.api_core.exceptions import NotFound

        with self._translating(f"reading the schema of namespace {namespace!r}"):
            try:
                return client.get_table(self._table_id(namespace), retry=self._retry(), timeout=self.timeout)
            except NotFound:
                pass
        have = self._list_tables()
        listing = "none (the dataset does not exist)" if have is None else ", ".join(have) or "none"
        raise FeatureNotFoundError(
            f"namespace {namespace!r} is not in the {self.describe()}: expected the table "
            f"{self._table_id(namespace)}; tables present: {listing}")

    def _list_tables(self) -> list[str] | None:
        """The dataset's tables without scratch spine tables, sorted; None if the dataset does not exist."""
        client = self.client
        from google.api_core.exceptions import NotFound

        with self._translating(f"listing the tables of {self.project}.{self.dataset}"):
            try:
                tables = client.list_tables(f"{self.project}.{self.dataset}", retry=self._retry(),
                                                 timeout=self.timeout)
                names = [t.table_id for t in tables]
            except NotFound:
                return None
        return sorted(n for n in names if not n.startswith(SCRATCH_PREFIX))

    def namespaces(self) -> list[str]:
        """The namespaces the dataset holds (its tables but scratch spine tables), sorted."""
        return self._list_tables() or []

    @staticmethod
    def _default_entity_column(namespace: str, columns: Sequence[str]) -> str | None:
        default = entity_column_for(namespace)
        if default in columns:
            return default
        return next((c for c in columns if c not in _TIME_COLUMNS), None)

    def list_features(self, namespace: str) -> list[str]:
        """The feature columns of a namespace's table: every column but the entity and the two times.

        Raises
        ------
        FeatureNotFoundError
            The dataset has no table for ``namespace``; the message lists the
            tables it has.
        """
        columns = [f.name for f in self._get_table(namespace).schema]
        entity = self._default_entity_column(namespace, columns)
        return [c for c in columns if c != entity and c not in _TIME_COLUMNS]

    def _plan(self, group: FeatureGroup, spine_entity: str = "e0") -> _Plan:
        """Discover a group's table and check it has what the group asks for."""
        table = self._get_table(group.namespace)
        fields = {f.name: f for f in table.schema}
        location = self._table_id(group.namespace)
        column = group.entity_column
        if column not in fields or column in _TIME_COLUMNS:
            raise StoreError(
                f"namespace {group.namespace!r} in table {location} has no entity column {column!r}; its "
                f"columns are: {', '.join(fields) or 'none'}. The entity column must be a column of the "
                "table named like the recipe's entity_column")
        entity = entity_sql(column, fields[column].field_type) if fields[column].mode != "REPEATED" else None
        if entity is None:
            raise StoreError(
                f"entity column {column!r} of table {location} has type {fields[column].field_type}; entity "
                "values must be STRING, INT64 or integral FLOAT64/NUMERIC")
        time = None
        if TIMESTAMP_COLUMN in fields:
            time = time_sql(fields[TIMESTAMP_COLUMN].field_type)
            if time is None:
                raise StoreError(
                    f"column {TIMESTAMP_COLUMN!r} of table {location} has type "
                    f"{fields[TIMESTAMP_COLUMN].field_type}; it must be TIMESTAMP, DATETIME or DATE")
        created = None
        if CREATED_COLUMN in fields:
            created = time_sql(fields[CREATED_COLUMN].field_type, CREATED_COLUMN)
            if created is None:
                raise StoreError(
                    f"column {CREATED_COLUMN!r} of table {location} has type "
                    f"{fields[CREATED_COLUMN].field_type}; it must be TIMESTAMP, DATETIME or DATE")
        have = [f for f in fields if f != column and f not in _TIME_COLUMNS]
        unknown = [f for f in group.features if f not in have]
        if unknown:
            raise FeatureNotFoundError(
                f"feature(s) {', '.join(map(repr, unknown))} of namespace {group.namespace!r} are not in table "
                f"{location} ({self.describe()}); the namespace has: {', '.join(have) or 'no features'}")
        chosen = [fields[f] for f in group.features]
        tiebreak = tuple(f.name for f in chosen if f.field_type in ORDERABLE_TYPES and f.mode != "REPEATED")
        types = tuple(
            _ARROW_TYPES.get(f.field_type, pa.null()) if f.mode != "REPEATED" else pa.null() for f in chosen)
        sql = TableSQL(
            table=table_reference(self.project, self.dataset, group.namespace),
            entity=entity,
            time=time,
            features=tuple(group.features),
            tiebreak=tiebreak,
            spine_entity=spine_entity,
            max_age=group.max_age is not None and time is not None,
            created=created,
        )
        return _Plan(sql, types)

    # --- queries -------------------------------------------------------------------
    def _query(self, sql: str, parameters: Sequence[Any], action: str, *,
               default_dataset: str | None = None) -> pa.Table:
        bq = require("google.cloud.bigquery", "bigquery")
        config = bq.QueryJobConfig(query_parameters=list(parameters), default_dataset=default_dataset)
        with self._translating(action):
            job = self.client.query(sql, job_config=config, location=self.location, retry=self._retry(),
                                    timeout=self.timeout, job_retry=self._retry())
            rows = job.result(retry=self._retry())
            table = rows.to_arrow(create_bqstorage_client=self.uses_storage_api)
        logger.debug("BigQuery job %s: %d rows (%s)", job.job_id, table.num_rows, action)
        return table

    def point_in_time(
        self,
        spine: pd.DataFrame,
        groups: Sequence[FeatureGroup],
        timestamp_column: str,
        *,
        as_of: Any = None,
    ) -> dict[str, Any]:
        """Point-in-time correct feature values for every spine row, joined inside BigQuery.

        Parameters
        ----------
        spine : DataFrame
            The entity columns of ``groups`` (keys as text, None for no
            entity; other entity values are turned into text the contract's
            way) and ``timestamp_column`` (``datetime64`` in UTC; naive times
            are read as UTC).
        groups : sequence of FeatureGroup
            What to read; each group's ``entity_column`` is both the spine
            column and the table's entity column.
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
            A namespace or feature is not in the dataset.
        StoreError
            The query failed, or a table's entity or time column is unusable.
        StoreUnavailableError
            BigQuery could not be reached after the retries.
        """
        stamp = None if as_of is None else parse_as_of(as_of)
        return self._join(spine, groups, timestamp_column, stamp, latest=False)

    def latest_as_of(self, spine: pd.DataFrame, groups: Sequence[FeatureGroup], as_of: Any) -> dict[str, Any]:
        """The latest values each spine row's entities had at ``as_of``, from the rows created by then.

        The row of an entity is the one :meth:`read_latest` would have picked
        at ``as_of`` (ties as described in the module documentation); with the
        group's ``max_age``, a row more than ``max_age`` older than ``as_of``
        gives missing values. See :meth:`OfflineStore.latest_as_of`.
        """
        if as_of is None:
            raise ParameterError("latest_as_of needs a time as_of, got None")
        stamp = parse_as_of(as_of)
        columns = list(dict.fromkeys(g.entity_column for g in groups))
        timed = spine[columns].copy() if len(spine.columns) else pd.DataFrame(index=spine.index)
        timed["__as_of"] = pd.Series(stamp, index=spine.index, dtype="datetime64[ns, UTC]")
        return self._join(timed, groups, "__as_of", stamp, latest=True)

    def _join(self, spine: pd.DataFrame, groups: Sequence[FeatureGroup], timestamp_column: str,
              as_of: pd.Timestamp | None, *, latest: bool) -> dict[str, Any]:
        n = len(spine)
        columns = list(dict.fromkeys(g.entity_column for g in groups))
        plans = [self._plan(g, f"e{columns.index(g.entity_column)}") for g in groups]
        sqls = tuple(p.sql for p in plans)
        rows = _spine_rows(spine, columns, timestamp_column, with_rem=any(s.max_age for s in sqls))
        if rows.num_rows == 0:
            result = pa.table({"row_id": pa.array([], pa.int64()), **{
                f"g{i}_c{j}": pa.array([], t) for i, p in enumerate(plans) for j, t in enumerate(p.types)}})
        else:
            parameters = _max_age_parameters(groups, sqls)
            if as_of is not None:
                parameters.append(_as_of_parameter(as_of))
            kind = "lookup of the latest rows" if latest else "point-in-time join"
            action = f"{kind} of namespace(s) " + ", ".join(repr(g.namespace) for g in groups)
            options = {"as_of": as_of is not None, "latest": latest}
            if rows.num_rows <= self.array_max_rows:
                sql = point_in_time_sql(sqls, "UNNEST(@spine)", **options)
                result = self._query(sql, [*parameters, _array_parameter("spine", rows)], action)
            else:
                with self._scratch_table(rows) as scratch:
                    result = self._query(point_in_time_sql(sqls, scratch, **options), parameters, action)
        row_ids = result.column("row_id").to_numpy()
        out: dict[str, Any] = {}
        for i, (group, plan) in enumerate(zip(groups, plans, strict=True)):
            for j, name in enumerate(group.qualified_names):
                values = result.column(f"g{i}_c{j}")
                if values.type == pa.null() and plan.types[j] != pa.null():
                    values = values.cast(plan.types[j])
                out[name] = scatter(values, row_ids, n)
        return out

    # --- a Loader SQL query as the spine --------------------------------------------
    def joins_queries_of(self, data_lake_uri: str) -> bool:
        """True for a ``bq://`` data lake: its Loader SQL runs as a subquery of :meth:`point_in_time_query`."""
        return data_lake_uri.startswith("bq://")

    def _result_fields(self, sql: str, default_dataset: str, data_lake_uri: str) -> dict[str, Any]:
        """The columns of a query's result by name, from a dry run (nothing is read or billed)."""
        bq = require("google.cloud.bigquery", "bigquery")
        config = bq.QueryJobConfig(dry_run=True, use_query_cache=False, default_dataset=default_dataset)
        with self._translating(f"reading the columns of the Loader SQL on data lake {data_lake_uri}"):
            job = self.client.query(sql, job_config=config, location=self.location, retry=self._retry(),
                                    timeout=self.timeout)
        return {f.name: f for f in job.schema or ()}

    def _spine_sql(self, fields: Mapping[str, Any], columns: Sequence[str], timestamp_column: str,
                   data_lake_uri: str) -> tuple[dict[str, str], str]:
        """The SQL of the loaded rows' entities (``e<k>``) and time, or SpineError naming the column."""
        listing = ", ".join(fields) or "none"
        for column in (*columns, timestamp_column):
            if column not in fields:
                raise SpineError(f"column {column!r} is not in the result of the Loader SQL on data lake "
                                 f"{data_lake_uri}; its columns are: {listing}")
        entities = {}
        for k, column in enumerate(columns):
            field = fields[column]
            entity = entity_sql(column, field.field_type, "l") if field.mode != "REPEATED" else None
            if entity is None:
                raise SpineError(f"entity column {column!r} of the Loader SQL on data lake {data_lake_uri} has "
                                 f"type {field.field_type}; entity values must be STRING, INT64 or integral FLOAT64")
            entities[f"e{k}"] = entity
        field = fields[timestamp_column]
        time = time_sql(field.field_type, timestamp_column, "l") if field.mode != "REPEATED" else None
        if time is None:
            raise SpineError(f"timestamp column {timestamp_column!r} of the Loader SQL on data lake {data_lake_uri} "
                             f"has type {field.field_type}; select it as a TIMESTAMP, DATETIME or DATE")
        return entities, time

    def point_in_time_query(
        self,
        sql: str,
        data_lake_uri: str,
        groups: Sequence[FeatureGroup],
        timestamp_column: str,
        *,
        as_of: Any = None,
    ) -> tuple[pd.DataFrame, pa.Table]:
        """The rows of a Loader SQL query and their point-in-time features, joined in one BigQuery query.

        The Loader SQL runs as a subquery of the join (:func:`~fs_augment.stores.bigquery_sql.spine_query_sql`)
        with ``PROJECT.DATASET`` of ``data_lake_uri`` as its default dataset: no spine is downloaded or
        uploaded and no scratch table is made; only the joined rows come back, as Arrow (through the
        Storage API when :attr:`uses_storage_api`). A dry run reads the query's columns first. The
        semantics are :meth:`point_in_time`'s; the spine's entities and times are read in BigQuery the
        contract's way (entity text as for tables; ``DATETIME`` and ``DATE`` times as UTC). The SQL is
        logged at DEBUG.

        Parameters
        ----------
        sql : str
            The Loader SQL.
        data_lake_uri : str
            ``bq://PROJECT.DATASET``: where its unqualified tables are.
        groups : sequence of FeatureGroup
        timestamp_column : str
            The Loader SQL's column of each row's time.
        as_of : datetime, optional
            Ignore the rows created after this time, as :meth:`point_in_time` does.

        Returns
        -------
        tuple
            The Loader SQL's rows as a DataFrame (RangeIndex; INT64 as ``Int64``, BOOL as ``boolean``,
            ``TIMESTAMP`` as ``datetime64[us, UTC]``, as google-cloud-bigquery's ``to_dataframe``
            gives them) and their features: one column ``"namespace:feature"`` a feature, null where missing.

        Raises
        ------
        SpineError
            An entity or the timestamp column is not in the query's result, or has an unusable type.
        StoreError
            The Loader SQL or the join failed.
        """
        project, dataset = parse_bigquery_uri(data_lake_uri)
        default_dataset = f"{project}.{dataset}"
        fields = self._result_fields(sql, default_dataset, data_lake_uri)
        columns = list(dict.fromkeys(g.entity_column for g in groups))
        entities, time = self._spine_sql(fields, columns, timestamp_column, data_lake_uri)
        plans = [self._plan(g, f"e{columns.index(g.entity_column)}") for g in groups]
        sqls = tuple(p.sql for p in plans)
        query = spine_query_sql(sqls, sql, entities, time, as_of=as_of is not None)
        logger.debug("point-in-time join with the Loader SQL of %s as its spine:\n%s", data_lake_uri, query)
        action = ("point-in-time join of the Loader SQL with namespace(s) "
                  + ", ".join(repr(g.namespace) for g in groups))
        parameters = _max_age_parameters(groups, sqls)
        if as_of is not None:
            parameters.append(_as_of_parameter(parse_as_of(as_of)))
        result = self._query(query, parameters, action, default_dataset=default_dataset)
        names, columns = [], []
        for i, (group, plan) in enumerate(zip(groups, plans, strict=True)):
            for j, name in enumerate(group.qualified_names):
                values = result.column(f"{FEATURE_PREFIX}g{i}_c{j}")
                if values.type == pa.null() and plan.types[j] != pa.null():
                    values = values.cast(plan.types[j])
                names.append(name)
                columns.append(values)
        return _loaded_frame(result.select(list(fields))), pa.table(columns, names=names)

    def read_latest(self, group: FeatureGroup) -> pd.DataFrame:
        """The latest row per entity: the entity column (as text) and the group's features.

        The latest row is the one a point-in-time lookup after every update
        picks (greatest ``event_timestamp``, ties as described in the module
        documentation). Rows are sorted by entity; integer features with
        missing values are floats.
        """
        _, table = self.latest_table(group.namespace, group.features, group.entity_column, with_time=True)
        frame: pd.DataFrame = table.to_pandas()
        if TIMESTAMP_COLUMN in frame.columns:
            frame[TIMESTAMP_COLUMN] = pd.to_datetime(frame[TIMESTAMP_COLUMN].to_numpy(dtype="int64"), unit="ns",
                                                     utc=True)
        return frame

    def latest_table(
        self, namespace: str, features: Sequence[str], entity_column: str | None = None, *,
        with_time: bool = False,
    ) -> tuple[str, pa.Table]:
        """The latest row per entity as an Arrow table (see :meth:`OfflineStore.latest_table`).

        The latest row is chosen as in :meth:`read_latest`.
        """
        if entity_column is None:
            columns = [f.name for f in self._get_table(namespace).schema]
            entity_column = self._default_entity_column(namespace, columns) or entity_column_for(namespace)
        plan = self._plan(FeatureGroup(namespace, tuple(features), entity_column))
        timed = with_time and plan.sql.time is not None
        table = self._query(latest_sql(plan.sql, with_time=timed), [],
                            f"reading the latest rows of namespace {namespace!r}")
        table = table.sort_by("e").rename_columns([entity_column, *features, *([TIMESTAMP_COLUMN] if timed else [])])
        if timed:  # microseconds in BigQuery: as int64 nanoseconds, as the parquet store gives them
            column = table.column(TIMESTAMP_COLUMN).cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
            table = table.set_column(table.num_columns - 1, TIMESTAMP_COLUMN, column)
        return entity_column, table

    def newest_timestamp(self, namespace: str) -> pd.Timestamp | NaTType | None:
        """The newest ``event_timestamp`` of a namespace's table, in UTC (see :meth:`OfflineStore.newest_timestamp`)."""
        fields = {f.name: f for f in self._get_table(namespace).schema}
        if TIMESTAMP_COLUMN not in fields:
            return None
        time = time_sql(fields[TIMESTAMP_COLUMN].field_type)
        if time is None:
            raise StoreError(
                f"column {TIMESTAMP_COLUMN!r} of table {self._table_id(namespace)} has type "
                f"{fields[TIMESTAMP_COLUMN].field_type}; it must be TIMESTAMP, DATETIME or DATE")
        table_sql = table_reference(self.project, self.dataset, namespace)
        result = self._query(f"SELECT MAX({time}) AS newest FROM {table_sql} AS t", [],
                             f"reading the newest event_timestamp of namespace {namespace!r}")
        value = result.column(0)[0].as_py() if result.num_rows else None
        if value is None:
            return pd.NaT
        stamp = pd.Timestamp(value)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")

    # --- scratch tables and writing -----------------------------------------------
    def _scratch_location(self) -> tuple[str, str]:
        if self.scratch_dataset is None:
            return self.project, self.dataset
        project, _, dataset = self.scratch_dataset.rpartition(".")
        return project or self.project, dataset

    @contextmanager
    def _scratch_table(self, rows: pa.Table) -> Iterator[str]:
        """Upload ``rows`` as a scratch table that expires; yield its quoted name; delete it."""
        bq = require("google.cloud.bigquery", "bigquery")
        project, dataset = self._scratch_location()
        table_id = f"{project}.{dataset}.{SCRATCH_PREFIX}{uuid.uuid4().hex}"
        table = bq.Table(table_id, schema=_bigquery_schema(rows.schema))
        table.expires = dt.datetime.now(dt.UTC) + SCRATCH_TTL
        created = False
        try:
            with self._translating(f"uploading the spine ({rows.num_rows} rows) to {table_id}"):
                self.client.create_table(table, retry=self._retry(), timeout=self.timeout)
                created = True
                self._load(rows, table_id, table.schema, "WRITE_APPEND")
            yield table_reference(project, dataset, table_id.rsplit(".", 1)[1])
        finally:
            if created:
                self._delete_scratch(table_id)

    def _delete_scratch(self, table_id: str) -> None:
        try:
            with self._translating(f"deleting the scratch table {table_id}"):
                self.client.delete_table(table_id, not_found_ok=True, retry=self._retry(), timeout=self.timeout)
        except StoreError as exc:  # it expires anyway; never hide the lookup's own outcome
            logger.warning("%s (the table expires within %s)", exc, SCRATCH_TTL)

    def _load(self, table: pa.Table, table_id: str, schema: Sequence[Any], disposition: str) -> None:
        bq = require("google.cloud.bigquery", "bigquery")
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        buffer.seek(0)
        config = bq.LoadJobConfig(source_format=bq.SourceFormat.PARQUET, schema=list(schema),
                                  write_disposition=disposition)
        # No size=: a resumable upload, which BigQuery and emulators accept at any size.
        job = self.client.load_table_from_file(buffer, table_id, job_config=config, location=self.location,
                                               timeout=self.timeout)
        job.result(retry=self._retry())

    def write_table(self, frame: pd.DataFrame, namespace: str) -> str:
        """Replace a namespace's table with the rows of ``frame`` (for tests, demos and data engineers).

        Parameters
        ----------
        frame : DataFrame
            The entity column, optionally ``event_timestamp``, then one column
            a feature. ``event_timestamp`` becomes ``TIMESTAMP`` (naive times
            read as UTC); other naive datetime columns become ``DATETIME``.
        namespace : str

        Returns
        -------
        str
            The table's id, ``PROJECT.DATASET.namespace``. The dataset is
            created if missing; a table of another schema is dropped first.
        """
        bq = require("google.cloud.bigquery", "bigquery")
        from google.api_core.exceptions import NotFound

        validate_name(namespace, "namespace", self.describe())
        table = _frame_to_arrow(frame, namespace)
        schema = _bigquery_schema(table.schema)
        table_id = self._table_id(namespace)
        with self._translating(f"writing namespace {namespace!r} to {table_id}"):
            dataset = bq.Dataset(f"{self.project}.{self.dataset}")
            if self.location is not None:
                dataset.location = self.location
            self.client.create_dataset(dataset, exists_ok=True, retry=self._retry(), timeout=self.timeout)
            try:
                existing = self.client.get_table(table_id, retry=self._retry(), timeout=self.timeout).schema
            except NotFound:
                existing = None
            if existing is not None and _signature(existing) != _signature(schema):
                # BigQuery replaces the schema on WRITE_TRUNCATE; emulators may keep the old one.
                self.client.delete_table(table_id, retry=self._retry(), timeout=self.timeout)
            self._load(table, table_id, schema, "WRITE_TRUNCATE")
        return table_id


# --- query parameters, spine rows and Arrow conversion ------------------------

def _max_age_parameters(groups: Sequence[FeatureGroup], sqls: Sequence[TableSQL]) -> list[Any]:
    bq = require("google.cloud.bigquery", "bigquery")
    parameters = []
    for i, (group, sql) in enumerate(zip(groups, sqls, strict=True)):
        if sql.max_age:
            assert group.max_age is not None
            nanos = round(group.max_age * 1e9)
            micros, rem = divmod(nanos, 1000)
            parameters.append(bq.ScalarQueryParameter(f"max_age_us_{i}", "INT64", min(micros, _MAX_AGE_US_CAP)))
            parameters.append(bq.ScalarQueryParameter(f"max_age_rem_{i}", "INT64", rem))
    return parameters


def _as_of_parameter(as_of: pd.Timestamp) -> Any:
    """``@as_of``: the time floored to the microsecond (BigQuery's), which compares the same with its times."""
    bq = require("google.cloud.bigquery", "bigquery")
    return bq.ScalarQueryParameter("as_of", "TIMESTAMP", as_of.floor("us").to_pydatetime())


def _spine_micros(spine: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spine's times as (microseconds since the epoch floored, nanoseconds dropped, null mask)."""
    stamps = spine_stamps(spine, column)
    missing = np.isnat(stamps)
    unit = np.datetime_data(stamps.dtype)[0]
    ticks = stamps.view(np.int64)
    if unit == "ns":  # 1677 to 2262: inside BigQuery's range
        return np.floor_divide(ticks, 1000), np.remainder(ticks, 1000), missing
    per_tick = _MICROS_PER_TICK.get(unit)
    if per_tick is None:
        raise SpineError(f"timestamp column {column!r} has unsupported resolution {stamps.dtype}")
    known = ticks[~missing]
    if len(known) and (known.min() < -(-_BQ_MIN_US // per_tick) or known.max() > _BQ_MAX_US // per_tick):
        raise SpineError(f"timestamp column {column!r} has times outside BigQuery's years 1 to 9999")
    return ticks * per_tick, np.zeros(len(ticks), np.int64), missing


def _spine_rows(spine: pd.DataFrame, columns: Sequence[str], timestamp_column: str, *, with_rem: bool) -> pa.Table:
    """The spine rows that can find a feature row: ``row_id``, ``e<k>``, ``ts`` [, ``ts_rem``]."""
    micros, rem, missing = _spine_micros(spine, timestamp_column)
    entities = [spine_entities(spine, c) for c in columns]
    usable = ~missing
    if entities:
        usable &= np.logical_or.reduce([e.is_valid().to_numpy(zero_copy_only=False) for e in entities])
    keep = np.flatnonzero(usable)
    arrays: dict[str, pa.Array] = {"row_id": pa.array(keep.astype(np.int64))}
    for k, entity in enumerate(entities):
        arrays[f"e{k}"] = entity.take(pa.array(keep))
    arrays["ts"] = pa.array(micros[keep], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    if with_rem:
        arrays["ts_rem"] = pa.array(rem[keep], pa.int64())
    return pa.table(arrays)


_BIGQUERY_TYPES: dict[str, Callable[[pa.DataType], bool]] = {
    "INT64": pa.types.is_integer,
    "FLOAT64": pa.types.is_floating,
    "BOOL": pa.types.is_boolean,
    "STRING": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t),
    "BYTES": lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t),
    "TIMESTAMP": lambda t: pa.types.is_timestamp(t) and t.tz is not None,
    "DATETIME": lambda t: pa.types.is_timestamp(t) and t.tz is None,
    "DATE": pa.types.is_date32,
    "NUMERIC": pa.types.is_decimal128,
    "BIGNUMERIC": pa.types.is_decimal256,
}


def _bigquery_schema(schema: pa.Schema) -> list[Any]:
    """BigQuery fields for an Arrow schema made by :func:`_frame_to_arrow` or :func:`_spine_rows`."""
    bq = require("google.cloud.bigquery", "bigquery")
    fields = []
    for arrow_field in schema:
        kind = next((k for k, test in _BIGQUERY_TYPES.items() if test(arrow_field.type)), None)
        if kind is None:
            raise StoreError(f"column {arrow_field.name!r} of type {arrow_field.type} cannot be written to "
                             "BigQuery; use numbers, booleans, text, bytes, dates, timestamps or decimals")
        fields.append(bq.SchemaField(arrow_field.name, kind))
    return fields


_STANDARD_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}


def _signature(schema: Sequence[Any]) -> list[tuple[str, str]]:
    """Column names and types of a BigQuery schema, legacy type names made standard."""
    return [(f.name, _STANDARD_TYPES.get(f.field_type, f.field_type)) for f in schema]


def _frame_to_arrow(frame: pd.DataFrame, namespace: str) -> pa.Table:
    """A namespace's rows as Arrow with BigQuery-ready types (int64, microsecond times, text).

    ``event_timestamp``, ``created_timestamp`` and zoned time columns become UTC timestamps (naive
    ``event_timestamp`` read as UTC); other naive time columns stay naive.
    """
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise StoreError(f"the rows of namespace {namespace!r} have duplicate column names: {columns}")
    zoned = set()
    data = {}
    for name, (_, values) in zip(columns, frame.items(), strict=True):
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            zoned.add(name)
            values = values.dt.tz_convert(None)  # UTC wall times; marked UTC below
        data[name] = values.reset_index(drop=True)
    try:
        table = pa.Table.from_pandas(pd.DataFrame(data), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise StoreError(f"the rows of namespace {namespace!r} cannot be converted for BigQuery: {exc}") from None
    arrays = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_dictionary(kind):
            column, kind = column.cast(kind.value_type), kind.value_type
        if pa.types.is_integer(kind) and kind != pa.int64():
            column = column.cast(pa.int64())  # raises for uint64 values beyond int64
        elif pa.types.is_floating(kind) and kind != pa.float64():
            column = column.cast(pa.float64())
        elif pa.types.is_large_string(kind) or pa.types.is_null(kind):
            column = column.cast(pa.string())
        elif pa.types.is_timestamp(kind):
            zone = "UTC" if name in zoned or name in _TIME_COLUMNS else None
            column = pc.floor_temporal(column.cast(pa.timestamp(kind.unit)), unit="microsecond")
            column = column.cast(pa.timestamp("us", tz=zone))
        arrays.append(column)
    return pa.table(arrays, names=table.column_names)


def _array_parameter(name: str, rows: pa.Table) -> Any:
    """The spine rows as an ``ARRAY<STRUCT>`` query parameter."""
    bq = require("google.cloud.bigquery", "bigquery")
    kinds = {"row_id": "INT64", "ts": "TIMESTAMP", "ts_rem": "INT64"}
    data = {column: rows.column(column).to_pylist() for column in rows.column_names}
    structs = [
        bq.StructQueryParameter(None, *(
            bq.ScalarQueryParameter(column, kinds.get(column, "STRING"), data[column][r])
            for column in rows.column_names))
        for r in range(rows.num_rows)
    ]
    return bq.ArrayQueryParameter(name, "STRUCT", structs)


def _loaded_frame(table: pa.Table) -> pd.DataFrame:
    """Loader SQL rows as pandas, with the dtypes google-cloud-bigquery's ``to_dataframe`` gives them."""
    mapping: dict[pa.DataType, Any] = {pa.bool_(): pd.BooleanDtype(), pa.int64(): pd.Int64Dtype()}
    if importlib.util.find_spec("db_dtypes") is not None:  # what to_dataframe uses for DATE and TIME
        import db_dtypes

        mapping.update({pa.date32(): db_dtypes.DateDtype(), pa.time64("us"): db_dtypes.TimeDtype()})
    frame: pd.DataFrame = table.to_pandas(types_mapper=mapping.get)
    return frame


def open_bigquery_store(config: Config) -> BigQueryOfflineStore:
    """The offline store of a ``bq://PROJECT.DATASET`` ``offline_store_uri`` (the registry's factory).

    Uses ``connection_info.bigquery_api_endpoint`` (an emulator, with anonymous
    credentials) and ``bigquery_location`` when set, ``connection_timeout``
    for each request and ``retry_attempts``. No request is made until the
    first lookup.
    """
    store = config.feature_store
    info = store.connection_info
    project, dataset = parse_bigquery_uri(info.offline_store_uri or "")  # its shape was checked on loading
    return BigQueryOfflineStore(
        project,
        dataset,
        api_endpoint=info.bigquery_api_endpoint,
        location=info.bigquery_location,
        scratch_dataset=info.bigquery_scratch_dataset,
        timeout=store.connection_timeout / 1000,
        retry_attempts=store.retry_attempts,
        env=config.env,
    )
