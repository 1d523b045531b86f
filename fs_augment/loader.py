"""Loader SQL: the entity spine, read from the environment's data lake.

The data lake of an environment is ``data_lake.uri`` in its configuration (a
recipe's ``loader.uri`` overrides it):

* ``file://FOLDER`` -- DuckDB, in process, over the folder's files. Every
  ``*.parquet``, ``*.csv``, ``*.csv.gz`` and ``*.tsv`` file is a table named
  after its stem (``orders.parquet`` is ``orders``); a sub-folder of parquet
  files is one table named after the folder. Times are read in UTC.
* ``bq://PROJECT.DATASET`` -- BigQuery. The query runs in BigQuery with
  ``PROJECT.DATASET`` as its default dataset, so unqualified table names work.

The SQL itself lives in the recipe (``loader.sql``, or ``loader.sql_file``
beside it).

Examples
--------
>>> import tempfile, pandas as pd
>>> lake = tempfile.mkdtemp()
>>> pd.DataFrame({"user_id": ["u1", "u2"], "bought": [1, 0]}).to_parquet(f"{lake}/orders.parquet")
>>> load_spine("SELECT user_id, bought FROM orders ORDER BY user_id", f"file://{lake}")
  user_id  bought
0      u1       1
1      u2       0
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fs_augment.errors import ConfigError, RecipeError, SpineError, StoreError, StoreUnavailableError, require

if TYPE_CHECKING:
    from google.cloud.bigquery.table import RowIterator

    from fs_augment.config import Config
    from fs_augment.recipe import Recipe

__all__ = ["data_lake_tables", "load_spine", "load_spine_for_recipe", "resolve_data_lake_uri", "split_target"]

#: File name endings read as tables, and the DuckDB reader of each.
_READERS = {".parquet": "read_parquet", ".csv": "read_csv", ".csv.gz": "read_csv", ".tsv": "read_csv"}


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in sorted(_READERS, key=len, reverse=True) if name.endswith(s)), None)


def _folder(uri: str, config: Config | None) -> Path:
    if config is not None:
        from fs_augment.config import resolve_file_uri

        return resolve_file_uri(uri, config)
    path = Path(os.path.expanduser(uri[len("file://"):]))
    return path if path.is_absolute() else Path.cwd() / path


def _tables(folder: Path) -> dict[str, tuple[str, str]]:
    """Table name → (DuckDB reader, path or glob) for the files of a data-lake folder."""
    tables: dict[str, tuple[str, str]] = {}
    sources: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if not any(entry.glob("*.parquet")):
                continue
            name, reader, location = entry.name, "read_parquet", str(entry / "*.parquet")
        else:
            suffix = _suffix(entry)
            if suffix is None:
                continue
            name, reader, location = entry.name[: -len(suffix)], _READERS[suffix], str(entry)
        if name in tables:
            raise ConfigError(
                f"data lake {folder}: {sources[name].name} and {entry.name} would both be table {name!r}; "
                "rename or remove one of them")
        tables[name] = (reader, location)
        sources[name] = entry
    return tables


def data_lake_tables(uri: str, *, config: Config | None = None) -> list[str]:
    """The table names Loader SQL can use in a ``file://`` data lake.

    Parameters
    ----------
    uri : str
        ``file://FOLDER``; a relative folder is resolved as in :func:`load_spine`.
    config : Config, optional
        The environment's configuration.

    Returns
    -------
    list of str
        Sorted table names.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> lake = tempfile.mkdtemp()
    >>> pd.DataFrame({"a": [1]}).to_csv(f"{lake}/users.csv", index=False)
    >>> data_lake_tables(f"file://{lake}")
    ['users']
    """
    folder = _existing_folder(uri, config)
    return sorted(_tables(folder))


def _existing_folder(uri: str, config: Config | None) -> Path:
    folder = _folder(uri, config)
    if not folder.is_dir():
        where = f" of environment {config.env!r}" if config is not None else ""
        raise ConfigError(f"data lake {uri}{where}: folder {folder} does not exist")
    return folder


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _query_folder(sql: str, uri: str, config: Config | None) -> pd.DataFrame:
    import duckdb

    folder = _existing_folder(uri, config)
    tables = _tables(folder)
    listing = ", ".join(sorted(tables)) or "none"
    connection = duckdb.connect(":memory:")
    try:
        connection.execute("SET TimeZone = 'UTC'")
        for name, (reader, location) in tables.items():
            try:
                connection.execute(
                    f"CREATE VIEW {_quote(name)} AS SELECT * FROM {reader}({_sql_literal(location)})")
            except duckdb.Error as exc:
                raise StoreError(f"data lake {uri}: cannot read table {name!r} from {location}: "
                                 f"{_first_line(exc)}") from exc
        try:
            relation = connection.sql(sql)
            if relation is None:
                raise StoreError(f"Loader SQL on data lake {uri} returned no rows: it must be a query (SELECT ...)")
            return _zoned_in_utc(relation.df(), relation.types)
        except duckdb.Error as exc:
            raise StoreError(
                f"Loader SQL failed on data lake {uri} ({folder}; tables: {listing}): {_first_line(exc)}"
            ) from exc
    finally:
        connection.close()


def _zoned_in_utc(frame: pd.DataFrame, types: list[Any]) -> pd.DataFrame:
    """``frame`` with its zoned times in UTC: DuckDB hands ``TIMESTAMPTZ_NS`` columns (nanosecond
    times with a zone, as pandas 2 writes them to parquet) over as UTC times without the zone."""
    for position, kind in enumerate(types):
        column = frame.iloc[:, position]
        if str(kind) == "TIMESTAMPTZ_NS" and column.dtype.kind == "M":  # a naive datetime64
            frame.isetitem(position, column.dt.tz_localize("UTC"))
    return frame


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _bigquery_tables(client: Any, project: str, dataset: str) -> str:
    try:
        return ", ".join(sorted(t.table_id for t in client.list_tables(f"{project}.{dataset}"))) or "none"
    except Exception:  # the listing only decorates an error message
        return "unknown"


def _query_bigquery(sql: str, uri: str, config: Config | None) -> pd.DataFrame:
    bigquery = require("google.cloud.bigquery", "bigquery")
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions
    from requests import exceptions as http_exceptions

    from fs_augment.stores.bigquery import make_client, parse_bigquery_uri

    try:
        project, dataset = parse_bigquery_uri(uri)
    except ConfigError as exc:
        raise ConfigError(f"data lake {uri}: {exc}") from None
    info = config.feature_store.connection_info if config is not None else None
    try:
        client = make_client(project, location=info.bigquery_location if info else None,
                             api_endpoint=info.bigquery_api_endpoint if info else None)
    except auth_exceptions.GoogleAuthError as exc:
        raise StoreError(f"data lake {uri}: no Google credentials for BigQuery ({_first_line(exc)})") from exc
    try:
        job_config = bigquery.QueryJobConfig(default_dataset=f"{project}.{dataset}")
        try:
            rows = client.query(sql, job_config=job_config).result()
        except api_exceptions.GoogleAPICallError as exc:
            tables = _bigquery_tables(client, project, dataset)
            details = getattr(exc, "errors", None) or [{}]
            message = _first_line(details[0].get("message") or getattr(exc, "message", None) or exc)
            raise StoreError(f"Loader SQL failed on data lake {uri} (tables: {tables}): {message}") from exc
        except (http_exceptions.ConnectionError, http_exceptions.Timeout) as exc:
            raise StoreUnavailableError(f"data lake {uri}: BigQuery cannot be reached ({_first_line(exc)})") from exc
        return _to_dataframe(rows)
    finally:
        client.close()


def _to_dataframe(rows: RowIterator) -> pd.DataFrame:
    with warnings.catch_warnings():
        # google-cloud-bigquery >= 3.3x points to pandas-gbq, a dependency this package does not take
        warnings.filterwarnings("ignore", "Retrieving DataFrames via google-cloud-bigquery",
                                PendingDeprecationWarning)
        try:
            import google.cloud.bigquery_storage  # noqa: F401
        except ImportError:
            return rows.to_dataframe(create_bqstorage_client=False)
        try:
            return rows.to_dataframe()
        except Exception:  # the Storage API may be disabled or unreachable: fall back to REST pages
            return rows.to_dataframe(create_bqstorage_client=False)


def load_spine(sql: str, uri: str, *, config: Config | None = None) -> pd.DataFrame:
    """Run Loader SQL against a data lake and return the result (the entity spine).

    Parameters
    ----------
    sql : str
        One query. In a ``file://`` lake its tables are the folder's files,
        named after their stems; in BigQuery, unqualified names are tables of
        the URI's dataset.
    uri : str
        ``file://FOLDER`` or ``bq://PROJECT.DATASET``. A relative folder is
        resolved like the feature store's (from the folder holding the config
        folder) when ``config`` is given, else from the working directory.
    config : Config, optional
        The environment's configuration (relative folders; BigQuery endpoint
        and location).

    Returns
    -------
    DataFrame
        The query's rows; DuckDB times with a time zone are in UTC.

    Raises
    ------
    ConfigError
        The URI is malformed or its folder does not exist.
    StoreError
        The query failed; the message names the URI and the tables available.
    StoreUnavailableError
        BigQuery could not be reached.
    MissingDependencyError
        ``bq://`` without the ``bigquery`` extra installed.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> lake = tempfile.mkdtemp()
    >>> pd.DataFrame({"user_id": ["u1", "u2"], "country": ["KR", "US"]}).to_csv(f"{lake}/users.csv", index=False)
    >>> load_spine("SELECT user_id FROM users WHERE country = 'KR'", f"file://{lake}")
      user_id
    0      u1
    """
    if not isinstance(sql, str) or not sql.strip():
        raise RecipeError("Loader SQL must be a non-empty string")
    if not isinstance(uri, str):
        raise ConfigError(f"a data lake URI is 'file://FOLDER' or 'bq://PROJECT.DATASET', got {uri!r}")
    if uri.startswith("file://"):
        return _query_folder(sql, uri, config)
    if uri.startswith("bq://"):
        return _query_bigquery(sql, uri, config)
    raise ConfigError(f"data lake URI {uri!r} is not supported: use 'file://FOLDER' or 'bq://PROJECT.DATASET'")


def resolve_data_lake_uri(recipe: Recipe, config: Config) -> str:
    """The data lake a recipe's loader reads: ``loader.uri``, else the environment's ``data_lake.uri``.

    Examples
    --------
    >>> from fs_augment.config import Config, FeatureStoreConfig
    >>> from fs_augment.recipe import load_recipe
    >>> recipe = load_recipe({"augmenter": {"features": [{"namespace": "user_stats", "features": ["n"]}]},
    ...                       "loader": {"sql": "SELECT user_id FROM users"}})
    >>> resolve_data_lake_uri(recipe, Config("local", "config", FeatureStoreConfig(), "file://./lake"))
    'file://./lake'
    """
    if recipe.loader is None:
        raise RecipeError(f"{recipe.source or 'the recipe'} has no loader section: add loader.sql "
                          "(and entity_columns, timestamp_column, target_column) to load a spine")
    uri = recipe.loader.uri or config.data_lake_uri
    if uri is None:
        raise ConfigError(
            f"environment {config.env!r} ({config.config_dir}) has no data lake: set data_lake.uri in "
            f"{Path(config.config_dir) / (config.env + '.yaml')}, or loader.uri in the recipe")
    return uri


def _require_columns(frame: pd.DataFrame, columns: list[tuple[str, str | None]], source: str) -> None:
    have = [str(c) for c in frame.columns]
    for role, column in columns:
        if column is not None and column not in frame.columns:
            raise SpineError(f"{source}: loader.{role} {column!r} is not in the result of loader.sql; "
                             f"its columns are: {', '.join(have) or 'none'}")


def load_spine_for_recipe(recipe: Recipe, config: Config) -> tuple[pd.DataFrame, pd.Series | None]:
    """Load a recipe's spine and target with its loader section.

    Parameters
    ----------
    recipe : Recipe
        A recipe with a ``loader`` section (``sql``, ``entity_columns``,
        optional ``timestamp_column``, ``target_column`` and ``uri``).
    config : Config
        The environment; its ``data_lake.uri`` is used unless the loader
        names a ``uri``.

    Returns
    -------
    X : DataFrame
        Every column of the query's result but the target: the entity
        columns, the timestamp column and any other column selected.
    y : Series or None
        The target column, or None when the loader names none.

    Raises
    ------
    RecipeError
        The recipe has no loader section.
    ConfigError
        Neither the loader nor the environment names a data lake.
    SpineError
        A column the loader or the recipe's features need is not in the result.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from fs_augment.config import Config, FeatureStoreConfig
    >>> from fs_augment.recipe import load_recipe
    >>> lake = tempfile.mkdtemp()
    >>> pd.DataFrame({"user_id": ["u1", "u2"], "churned": [0, 1]}).to_parquet(f"{lake}/users.parquet")
    >>> recipe = load_recipe({
    ...     "augmenter": {"features": [{"namespace": "user_stats", "features": ["visits"]}]},
    ...     "loader": {"sql": "SELECT * FROM users ORDER BY user_id", "entity_columns": ["user_id"],
    ...                "target_column": "churned"}})
    >>> X, y = load_spine_for_recipe(recipe, Config("local", "config", FeatureStoreConfig(), f"file://{lake}"))
    >>> list(X.columns), y.tolist()
    (['user_id'], [0, 1])
    """
    uri = resolve_data_lake_uri(recipe, config)
    assert recipe.loader is not None  # checked by resolve_data_lake_uri
    return split_target(load_spine(recipe.loader.sql, uri, config=config), recipe)


def split_target(frame: pd.DataFrame, recipe: Recipe) -> tuple[pd.DataFrame, pd.Series | None]:
    """The rows of a recipe's Loader SQL as (X, y), checked as :func:`load_spine_for_recipe` checks them.

    Examples
    --------
    >>> from fs_augment.recipe import load_recipe
    >>> recipe = load_recipe({
    ...     "augmenter": {"features": [{"namespace": "user_stats", "features": ["visits"]}]},
    ...     "loader": {"sql": "SELECT * FROM users", "entity_columns": ["user_id"], "target_column": "churned"}})
    >>> X, y = split_target(pd.DataFrame({"user_id": ["u1"], "churned": [1]}), recipe)
    >>> list(X.columns), y.tolist()
    (['user_id'], [1])
    """
    loader = recipe.loader
    if loader is None:
        raise RecipeError(f"{recipe.source or 'the recipe'} has no loader section")
    source = recipe.source or "recipe"
    if frame.columns.has_duplicates:
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise SpineError(f"{source}: loader.sql returns duplicated column names: {', '.join(dupes)}; alias them")
    roles: list[tuple[str, str | None]] = [("entity_columns", c) for c in loader.entity_columns]
    roles += [("timestamp_column", loader.timestamp_column), ("target_column", loader.target_column)]
    _require_columns(frame, roles, source)
    needed = [c for c in dict.fromkeys([*recipe.entity_columns, recipe.timestamp_column]) if c is not None]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SpineError(
            f"{source}: the features need column(s) {', '.join(missing)} (entity_column / timestamp_column), "
            f"which loader.sql does not return; its columns are: {', '.join(map(str, frame.columns))}")
    target = loader.target_column
    if target is None:
        return frame, None
    return frame.drop(columns=[target]), frame[target]
