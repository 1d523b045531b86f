"""The SQL of the BigQuery offline store: pure text builders, no client.

Everything here turns names and column types into GoogleSQL text, so it can be
read and unit-tested without BigQuery: identifiers are quoted by
:func:`quote_identifier` (names that could break out of backticks are
refused), a table's entity and time columns are read the contract's way by
:func:`entity_sql` and :func:`time_sql`, and :func:`point_in_time_sql`,
:func:`spine_query_sql` (a Loader SQL query as the spine) and :func:`latest_sql`
build the queries :class:`~fs_augment.stores.bigquery.BigQueryOfflineStore` runs,
from one :class:`TableSQL` a namespace. Values never appear in the text: they
travel as query parameters (``@spine``, ``@max_age_us_<i>``, ``@max_age_rem_<i>``). :func:`parse_bigquery_uri` reads ``bq://PROJECT.DATASET``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from fs_augment.backends import parse_bigquery_uri
from fs_augment.errors import StoreError
from fs_augment.keys import TIMESTAMP_COLUMN

__all__ = [
    "FEATURE_PREFIX",
    "LOADED_KEY",
    "LOADED_ROW",
    "ORDERABLE_TYPES",
    "TableSQL",
    "entity_sql",
    "latest_sql",
    "parse_bigquery_uri",
    "point_in_time_sql",
    "quote_identifier",
    "spine_columns",
    "spine_query_sql",
    "table_reference",
    "time_sql",
]

#: Column types BigQuery can ``ORDER BY`` (the others cannot break ties).
ORDERABLE_TYPES = frozenset({
    "INT64", "INTEGER", "FLOAT64", "FLOAT", "NUMERIC", "BIGNUMERIC", "BOOL", "BOOLEAN", "STRING",
    "BYTES", "DATE", "DATETIME", "TIME", "TIMESTAMP",
})

#: The column keying the Loader SQL's rows by their entities and time in :func:`spine_query_sql`.
LOADED_KEY = "_fs_augment_key"
#: The column numbering the Loader SQL's rows (their order) in :func:`spine_query_sql`.
LOADED_ROW = "_fs_augment_row"
#: The prefix of the feature columns :func:`spine_query_sql` returns.
FEATURE_PREFIX = "_fs_augment_"

_INT64_LIMIT = 9.2e18  # floats of smaller magnitude cast to INT64 exactly


def quote_identifier(name: str) -> str:
    """``name`` in backticks, refused if it could break out of them.

    Examples
    --------
    >>> quote_identifier("age")
    '`age`'
    """
    if not name or any(c in name for c in "`\\\n\r"):
        raise StoreError(f"{name!r} cannot be a BigQuery identifier")
    return f"`{name}`"


def table_reference(project: str, dataset: str, table: str) -> str:
    """The quoted reference ``` `project.dataset.table` ```.

    Examples
    --------
    >>> table_reference("p", "features", "user_demographics")
    '`p.features.user_demographics`'
    """
    return quote_identifier(f"{project}.{dataset}.{table}")


def entity_sql(column: str, field_type: str, row: str = "t") -> str | None:
    """The entity of row ``row`` (a table row ``t`` by default) as text, the contract's way, or None if
    the type cannot key.

    Examples
    --------
    >>> entity_sql("user_id", "STRING"), entity_sql("product_id", "INT64")
    ('t.`user_id`', 'CAST(t.`product_id` AS STRING)')
    >>> entity_sql("user_id", "STRING", "l")
    'l.`user_id`'
    """
    ref = f"{row}.{quote_identifier(column)}"
    if field_type == "STRING":
        return ref
    if field_type in ("INT64", "INTEGER"):
        return f"CAST({ref} AS STRING)"
    if field_type in ("FLOAT64", "FLOAT", "NUMERIC", "BIGNUMERIC"):
        value = f"CAST({ref} AS FLOAT64)"
        return (
            f"CASE WHEN IS_NAN({value}) OR IS_INF({value}) OR {value} != TRUNC({value}) THEN NULL "
            f"WHEN ABS({value}) < {_INT64_LIMIT:g} THEN CAST(CAST({value} AS INT64) AS STRING) "
            f"ELSE FORMAT('%.0f', {value}) END"
        )
    return None


def time_sql(field_type: str, column: str = TIMESTAMP_COLUMN, row: str = "t") -> str | None:
    """Column ``column`` of row ``row`` (a table row ``t`` by default) as a ``TIMESTAMP`` (UTC), or None if
    the type is not a time.

    Examples
    --------
    >>> time_sql("TIMESTAMP"), time_sql("DATE")
    ('t.`event_timestamp`', 'TIMESTAMP(t.`event_timestamp`)')
    >>> time_sql("DATETIME", "created_timestamp")
    'TIMESTAMP(t.`created_timestamp`)'
    """
    ref = f"{row}.{quote_identifier(column)}"
    if field_type == "TIMESTAMP":
        return ref
    if field_type in ("DATETIME", "DATE"):
        return f"TIMESTAMP({ref})"
    return None


@dataclass(frozen=True)
class TableSQL:
    """What the SQL of one namespace needs: its table and how to read its rows.

    Attributes
    ----------
    table : str
        Quoted table reference.
    entity : str
        SQL expression of row ``t``'s entity as text (:func:`entity_sql`).
    time : str or None
        SQL expression of row ``t``'s time (:func:`time_sql`); None when the
        table has no ``event_timestamp``.
    features : tuple of str
        The feature columns to read.
    tiebreak : tuple of str
        The features that order rows with equal times (orderable types).
    spine_entity : str
        The spine column holding this namespace's entity keys.
    max_age : bool
        Whether rows older than the parameters ``@max_age_us_<i>`` and
        ``@max_age_rem_<i>`` (nanoseconds beyond the microseconds) are ignored.
    created : str or None
        SQL expression of row ``t``'s ``created_timestamp`` (:func:`time_sql`); None
        when the table has none. A row is then used for a spine row only once
        created (null: known at its event time).
    """

    table: str
    entity: str
    time: str | None
    features: tuple[str, ...]
    tiebreak: tuple[str, ...] = ()
    spine_entity: str = "e0"
    max_age: bool = False
    created: str | None = None

    def order_by(self) -> str:
        """The window order putting the row to use first."""
        keys = [f"{self.time} DESC"] if self.time is not None else []
        keys += [f"t.{quote_identifier(f)} DESC NULLS LAST" for f in self.tiebreak]
        return f" ORDER BY {', '.join(keys)}" if keys else ""

    def values(self) -> str:
        """``t.<feature> AS c<j>`` for every feature."""
        return ", ".join(f"t.{quote_identifier(f)} AS c{j}" for j, f in enumerate(self.features))


def spine_columns(groups: Sequence[TableSQL]) -> tuple[str, ...]:
    """The columns of the spine the SQL of ``groups`` reads.

    ``row_id`` (INT64, the spine row), one ``e<k>`` (STRING) per entity column,
    ``ts`` (TIMESTAMP, floored to the microsecond) and, when a group has a
    maximum age, ``ts_rem`` (INT64, the nanoseconds ``ts`` dropped).
    """
    entities = tuple(dict.fromkeys(g.spine_entity for g in groups))
    return ("row_id", *entities, "ts", *(("ts_rem",) if any(g.max_age for g in groups) else ()))


def point_in_time_sql(groups: tuple[TableSQL, ...], spine: str, *, as_of: bool = False, latest: bool = False) -> str:
    """The point-in-time query over ``groups``.

    Parameters
    ----------
    groups : tuple of TableSQL
        One item a namespace; group ``i``'s features come back as ``g<i>_c<j>``.
    spine : str
        Where the spine rows are: ``UNNEST(@spine)`` (an ``ARRAY<STRUCT>``
        parameter) or a quoted scratch table; its columns are
        :func:`spine_columns`.
    as_of : bool
        Ignore the rows created after the ``TIMESTAMP`` parameter ``@as_of``:
        created is ``created_timestamp`` where the table has it and it is not
        null, else ``event_timestamp``.
    latest : bool
        Give each spine row its entity's latest row whatever the row's time
        (the spine's ``ts`` is then ``@as_of`` in every row, the time
        ``max_age`` is measured from).

    Returns
    -------
    str
        A query returning ``row_id`` and the features of every spine row that
        found a row in at least one group (rows found nowhere are left out, in
        no particular order: the caller puts the values in place by ``row_id``).

    Examples
    --------
    >>> sql = point_in_time_sql((TableSQL("`p.d.user_demographics`", "t.`user_id`", "t.`event_timestamp`",
    ...                                   ("age",)),), "UNNEST(@spine)")
    >>> "t.`event_timestamp` <= s.ts" in sql, "g0.c0 AS g0_c0" in sql
    (True, True)
    """
    columns = ", ".join(f"s.{c}" for c in spine_columns(groups))
    return f"WITH spine AS (SELECT {columns} FROM {spine} AS s),\n{_join_sql(groups, as_of=as_of, latest=latest)}"


def _created_by(group: TableSQL, bound: str) -> str | None:
    """The condition that row ``t`` was created at or before ``bound`` (None: nothing tells when it was)."""
    if group.created is None:
        return None if group.time is None else f"{group.time} <= {bound}"
    if group.time is None:
        return f"({group.created} IS NULL OR {group.created} <= {bound})"
    return f"COALESCE({group.created}, {group.time}) <= {bound}"


@lru_cache(maxsize=256)
def _join_sql(groups: tuple[TableSQL, ...], found: str | None = None, as_of: bool = False,
              latest: bool = False) -> str:
    """Everything of :func:`point_in_time_sql` after the spine: generated once per set of groups.

    With ``found``, the final ``SELECT`` becomes one more CTE of that name, for a query to go on from.
    ``as_of`` and ``latest`` are :func:`point_in_time_sql`'s.
    """
    ctes = []
    for i, group in enumerate(groups):
        conditions = [f"{group.entity} = s.{group.spine_entity}"]
        if latest:  # the entity's latest row, whatever the spine row's time; a row without one is never used
            if group.time is not None:
                conditions.append(f"{group.time} IS NOT NULL")
        elif group.time is None:
            conditions.append("s.ts IS NOT NULL")
        else:
            conditions.append(f"{group.time} <= s.ts")
        if group.created is not None and not latest:  # known by then: no leakage from later backfills
            conditions.append(f"({group.created} IS NULL OR {group.created} <= s.ts)")
        created_by = _created_by(group, "@as_of") if as_of else None
        if created_by is not None:
            conditions.append(created_by)
        if group.max_age:
            conditions.append(
                f"TIMESTAMP_DIFF(s.ts, {group.time}, MICROSECOND) "
                f"<= @max_age_us_{i} - IF(s.ts_rem > @max_age_rem_{i}, 1, 0)"
            )
        picked = ", ".join(f"c{j}" for j in range(len(group.features)))
        ctes.append(
            f"g{i} AS (SELECT row_id, {picked} FROM ("
            f"SELECT s.row_id, {group.values()}, "
            f"ROW_NUMBER() OVER (PARTITION BY s.row_id{group.order_by()}) AS rn "
            f"FROM spine AS s JOIN {group.table} AS t ON {' AND '.join(conditions)}"
            f") WHERE rn = 1)"
        )
    selected = ", ".join(f"g{i}.c{j} AS g{i}_c{j}" for i, g in enumerate(groups) for j in range(len(g.features)))
    joined = "g0" + "".join(f" FULL OUTER JOIN g{i} USING (row_id)" for i in range(1, len(groups)))
    final = f"SELECT row_id, {selected} FROM {joined}"
    if found is not None:
        return ",\n".join([*ctes, f"{found} AS ({final})"])
    return ",\n".join(ctes) + f"\n{final}"


def spine_query_sql(groups: tuple[TableSQL, ...], loader_sql: str, entities: Mapping[str, str], time: str, *,
                    as_of: bool = False) -> str:
    """The point-in-time query over ``groups`` for the rows of a Loader SQL query, as one statement.

    The Loader SQL becomes a subquery (``loaded``). Each of its rows is keyed
    by its entities and time as text (``TO_JSON_STRING``), the distinct keys
    are the spine of :func:`point_in_time_sql` (``spine``), and the joined
    values come back to every row with that key, beside the row's own columns:
    no spine leaves or enters BigQuery. The key is a value, not a row number:
    BigQuery may evaluate a CTE once per reference, and a row number without
    an order could differ between evaluations, while the key cannot (rows with
    one key have one answer). The rows are returned in ``ROW_NUMBER() OVER ()``
    order, which keeps the Loader SQL's ``ORDER BY`` where the engine keeps it.

    Parameters
    ----------
    groups : tuple of TableSQL
        One item a namespace, as for :func:`point_in_time_sql`.
    loader_sql : str
        One query (its unqualified tables are resolved by the job's default
        dataset); a trailing ``;`` is dropped.
    entities : mapping
        Each group's ``spine_entity`` (``e0``, ``e1`` ...) → the SQL of that
        entity as text over the loaded row ``l`` (:func:`entity_sql` with ``row="l"``).
    time : str
        The SQL of the row's time as a ``TIMESTAMP`` over ``l`` (:func:`time_sql` with ``row="l"``).

    Returns
    -------
    str
        A query returning every column of the Loader SQL, in its order, then
        group ``i``'s features as ``_fs_augment_g<i>_c<j>`` (null where no row
        was found), one row per Loader SQL row.

    Examples
    --------
    >>> users = TableSQL("`p.d.user_demographics`", "t.`user_id`", "t.`event_timestamp`", ("age",))
    >>> sql = spine_query_sql((users,), "SELECT user_id, ts FROM orders", {"e0": "l.`user_id`"}, "l.`ts`")
    >>> print(sql)  # doctest: +NORMALIZE_WHITESPACE
    WITH loaded AS (SELECT l.*, TO_JSON_STRING(STRUCT(l.`user_id` AS e0, l.`ts` AS ts)) AS _fs_augment_key,
        ROW_NUMBER() OVER () AS _fs_augment_row FROM (
    SELECT user_id, ts FROM orders
    ) AS l),
    spine AS (SELECT DISTINCT l._fs_augment_key AS row_id, l.`user_id` AS e0, l.`ts` AS ts FROM loaded AS l),
    g0 AS (SELECT row_id, c0 FROM (SELECT s.row_id, t.`age` AS c0,
        ROW_NUMBER() OVER (PARTITION BY s.row_id ORDER BY t.`event_timestamp` DESC) AS rn
        FROM spine AS s JOIN `p.d.user_demographics` AS t ON t.`user_id` = s.e0 AND t.`event_timestamp` <= s.ts)
        WHERE rn = 1),
    found AS (SELECT row_id, g0.c0 AS g0_c0 FROM g0)
    SELECT l.* EXCEPT (_fs_augment_key, _fs_augment_row), found.g0_c0 AS _fs_augment_g0_c0
    FROM loaded AS l LEFT JOIN found ON found.row_id = l._fs_augment_key
    ORDER BY l._fs_augment_row
    """
    body = loader_sql.strip().rstrip(";").rstrip()
    keyed = []
    for name in spine_columns(groups)[1:]:
        if name == "ts":
            keyed.append(f"{time} AS ts")
        elif name != "ts_rem":
            keyed.append(f"{entities[name]} AS {name}")
    rem = ["0 AS ts_rem"] if "ts_rem" in spine_columns(groups) else []  # BigQuery's times hold no nanoseconds
    features = ", ".join(f"found.g{i}_c{j} AS {FEATURE_PREFIX}g{i}_c{j}"
                         for i, g in enumerate(groups) for j in range(len(g.features)))
    return (
        f"WITH loaded AS (SELECT l.*, TO_JSON_STRING(STRUCT({', '.join(keyed)})) AS {LOADED_KEY}, "
        f"ROW_NUMBER() OVER () AS {LOADED_ROW} FROM (\n{body}\n) AS l),\n"
        f"spine AS (SELECT DISTINCT {', '.join([f'l.{LOADED_KEY} AS row_id', *keyed, *rem])} FROM loaded AS l),\n"
        f"{_join_sql(groups, 'found', as_of=as_of)}\n"
        f"SELECT l.* EXCEPT ({LOADED_KEY}, {LOADED_ROW}), {features}\n"
        f"FROM loaded AS l LEFT JOIN found ON found.row_id = l.{LOADED_KEY}\n"
        f"ORDER BY l.{LOADED_ROW}"
    )


@lru_cache(maxsize=256)
def latest_sql(group: TableSQL, with_time: bool = False) -> str:
    """The latest row per entity of a table: ``e`` (entity text), ``c<j>`` (features) and, ``with_time``
    and a table with times, ``t`` (the row's time).

    The ordering is the one :func:`point_in_time_sql` uses, so the latest row
    is the row a point-in-time lookup after every update would pick. Rows
    with a null entity or (when the table has times) a null time are ignored.

    Examples
    --------
    >>> sql = latest_sql(TableSQL("`p.d.n`", "t.`user_id`", "t.`event_timestamp`", ("age",), ("age",)))
    >>> sql.split("OVER ")[1].split(" AS rn")[0]
    '(PARTITION BY t.`user_id` ORDER BY t.`event_timestamp` DESC, t.`age` DESC NULLS LAST)'
    """
    conditions = [f"{group.entity} IS NOT NULL"]
    if group.time is not None:
        conditions.append(f"{group.time} IS NOT NULL")
    picked = ", ".join(f"c{j}" for j in range(len(group.features)))
    timed = with_time and group.time is not None
    return (
        f"SELECT e, {picked}{', t' if timed else ''} FROM (SELECT {group.entity} AS e, {group.values()}, "
        f"{f'{group.time} AS t, ' if timed else ''}"
        f"ROW_NUMBER() OVER (PARTITION BY {group.entity}{group.order_by()}) AS rn "
        f"FROM {group.table} AS t WHERE {' AND '.join(conditions)}) WHERE rn = 1"
    )
