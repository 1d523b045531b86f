"""Environment configuration: ``config/base.yaml`` merged with ``config/<env>.yaml``.

The layers: each file is read with ``yaml.safe_load``; the environment file is
deep-merged over the base (maps merge key by key, scalars and lists are
replaced); ``${VAR}`` and ``${VAR:-default}`` are replaced in parsed string
values from the process environment; then every key is typed and validated
against its one declaration (:class:`FeatureStoreConfig`, :class:`ConnectionInfo`
and the backends' settings in :mod:`fs_augment.backends`, made with
:func:`fs_augment.settings.setting`), and the checks of the backends in use run
(the ``bq://`` shape, a CA file with a ``redis://`` URL, a cluster's database,
the monitoring URL). :func:`describe_settings` lists the declarations.
Errors name the file and the dotted key path; passwords never appear in
``repr``, ``str``, logs or error messages.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple, NoReturn
from urllib.parse import unquote, urlsplit

import yaml

from fs_augment.backends import (
    OFFLINE_SCHEMES,
    ONLINE_PROVIDERS,
    BigQuerySettings,
    Fail,
    RedisSettings,
    offline_uri_shape,
    uri_scheme,
)
from fs_augment.errors import ConfigError
from fs_augment.settings import (
    Flag,
    Integer,
    Number,
    OneOf,
    Rule,
    Secret,
    Text,
    section,
    sections_of,
    setting,
    settings_of,
)

__all__ = [
    "Config",
    "ConnectionInfo",
    "DataLakeConfig",
    "FeatureStoreConfig",
    "Secret",
    "SettingInfo",
    "deep_merge",
    "describe_settings",
    "interpolate",
    "load_config",
    "resolve_env_name",
    "resolve_file_uri",
]

logger = logging.getLogger(__name__)

ENV_VARIABLE = "FS_AUGMENT_ENV"
CONFIG_DIR_VARIABLE = "FS_AUGMENT_CONFIG_DIR"
DEFAULT_ENV = "local"
_ENV_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def mask_url(url: str) -> str:
    """``url`` with its password, query and fragment masked: the one redaction of URLs for display.

    Every URL fs_augment shows (config, reprs, logs, errors: Redis, monitoring,
    BigQuery endpoint, MLflow tracking) goes through here. The user name, host,
    port and path stay; a text without ``://`` (``host:port``) is returned as
    it is. When it is unclear where the user info ends (an unencoded ``/``,
    ``?`` or ``#`` before the last ``@``), everything up to that ``@`` is
    masked, so a password or query is hidden rather than shown.

    Examples
    --------
    >>> mask_url("redis://reader:s3cret@cache:6379/2"), mask_url("https://m.internal/push?token=abc")
    ('redis://reader:***@cache:6379/2', 'https://m.internal/push?***')
    >>> mask_url("https://:tok@[::1]:8443/p#frag"), mask_url("redis://u:pa/ss@cache"), mask_url("cache:6379")
    ('https://:***@[::1]:8443/p', 'redis://***@cache', 'cache:6379')
    """
    if "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    userinfo, at, rest = rest.rpartition("@")
    rest, _, _ = rest.partition("#")
    rest, question, _ = rest.partition("?")
    if at and any(c in userinfo for c in "/?#"):
        rest = f"***@{rest}"
    elif at:
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}{':***' if colon else ''}@{rest}"
    return f"{scheme}://{rest}{'?***' if question else ''}"


def split_url_password(url: str) -> tuple[str, str | None]:
    """A ``scheme://user:password@host...`` URL without its password, and the password (decoded).

    Examples
    --------
    >>> split_url_password("redis://reader:p%40ss@cache:6379/2")
    ('redis://reader@cache:6379/2', 'p@ss')
    """
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url, None
    user, _, password = userinfo.partition(":")
    netloc = f"{user}@{hostport}" if user else hostport
    return f"{scheme}://{netloc}{slash}{tail}", unquote(password)


def _masked_repr(obj: Any) -> str:
    shown = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        shown.append(f"{f.name}={mask_url(value) if isinstance(value, str) else value!r}")
    return f"{type(obj).__name__}({', '.join(shown)})"


def _data_lake_shape(value: str) -> str | None:
    return None if uri_scheme(value) in ("file", "bq") else "a 'file://FOLDER' or 'bq://PROJECT.DATASET' URI"


@dataclass(frozen=True, repr=False)
class ConnectionInfo(BigQuerySettings, RedisSettings):
    """Where the environment's stores are (``feature_store.connection_info``).

    The keys of each backend are declared with the backend
    (:class:`~fs_augment.backends.RedisSettings`,
    :class:`~fs_augment.backends.BigQuerySettings`); ``offline_store_uri``
    selects the offline store.
    """

    offline_store_uri: str | None = setting(
        None, Text(shape=offline_uri_shape, bounds="a registered scheme: " + ", ".join(
            f"{name}://" for name in OFFLINE_SCHEMES)),
        "The offline store (feature history): ``file://FOLDER`` (parquet, relative to the project root) or "
        "``bq://PROJECT.DATASET``.")

    def __repr__(self) -> str:
        return _masked_repr(self)


@dataclass(frozen=True, repr=False)
class FeatureStoreConfig:
    """The ``feature_store`` section of an environment's configuration."""

    provider: str = setting(
        "redis", OneOf(lambda: ONLINE_PROVIDERS),
        "The online store: ``redis`` (Redis or Redis Cluster) or ``local`` (embedded, from the file:// "
        "offline store, no server).")
    connection_timeout: int = setting(
        5000, Integer(1, 3_600_000, "one hour, in ms; use retry_deadline to wait out longer outages"),
        "Connect and read timeout of every store call, in milliseconds.")
    retry_attempts: int = setting(
        3, Integer(0, 100, "use retry_deadline to keep retrying for a while"),
        "Retries of a store call that failed to connect or timed out.")
    connection_info: ConnectionInfo = section(ConnectionInfo, "Where the stores are.")
    cache_ttl: float = setting(0, Number(), "Seconds an online lookup's values are cached in process (0: off).")
    cache_max_entries: int = setting(100_000, Integer(1), "Entries of the in-process cache.")
    enable_debug_logging: bool = setting(False, Flag(), "Log every store call's key count and time at DEBUG.")
    connection_pool_size: int = setting(
        50, Integer(1, 10_000, "Redis' default maxclients; redis-py allocates the whole pool"),
        "Maximum connections to Redis (per node in a cluster); threads wait for a free one.", backend="redis")
    enable_monitoring: bool = setting(
        False, Flag(), "Per-feature metrics, pushed to ``monitoring_endpoint`` when it is set.")
    monitoring_endpoint: str | None = setting(
        None, Text(), "An http:// or https:// URL that takes JSON metric snapshots (with enable_monitoring).")
    retry_deadline: float | None = setting(
        None, Number(optional=True), "Keep retrying a failing Redis call this many seconds (a failover).",
        backend="redis")
    on_store_error: str = setting(
        "raise", OneOf(("raise", "default")),
        "When the online store is down: ``raise``, or answer serving lookups with the recipe's defaults.")
    batch_chunk_size: int = setting(10_000, Integer(1), "Keys per MGET in a batch lookup.", backend="redis")

    def __repr__(self) -> str:
        return _masked_repr(self)


@dataclass(frozen=True)
class DataLakeConfig:
    """The ``data_lake`` section: where Loader SQL runs."""

    uri: str | None = setting(
        None, Text(shape=_data_lake_shape, bounds="file://, bq://"),
        "Where a recipe's loader.sql runs: ``file://FOLDER`` (DuckDB over its files) or ``bq://PROJECT.DATASET``.")


@dataclass(frozen=True)
class _ConfigFile:
    """The layout of a config file (``base.yaml``, ``<env>.yaml``)."""

    feature_store: FeatureStoreConfig = section(FeatureStoreConfig, "The feature store of the environment.")
    data_lake: DataLakeConfig = section(DataLakeConfig, "The data lake of the environment.")


@dataclass(frozen=True)
class Config:
    """The merged, validated configuration of one environment.

    Attributes
    ----------
    env : str
        The environment's name (``local``, ``dev``, ``prod`` ...).
    config_dir : str
        The folder the files were read from.
    feature_store : FeatureStoreConfig
        The store settings.
    data_lake_uri : str or None
        Where Loader SQL runs (``file://FOLDER`` or ``bq://PROJECT.DATASET``).
    """

    env: str
    config_dir: str
    feature_store: FeatureStoreConfig
    data_lake_uri: str | None = None

    def to_dict(self, *, mask_secrets: bool = True) -> dict[str, Any]:
        """The configuration as plain data, passwords masked unless asked."""
        info = self.feature_store.connection_info
        conn = {f.name: getattr(info, f.name) for f in fields(info)}
        if conn["redis_password"] is not None:
            conn["redis_password"] = "***" if mask_secrets else conn["redis_password"].get()
        store = {f.name: getattr(self.feature_store, f.name) for f in fields(self.feature_store)}
        store["connection_info"] = conn
        if mask_secrets:
            for section_values in (store, conn):
                for key, value in section_values.items():
                    if isinstance(value, str):
                        section_values[key] = mask_url(value)
        return {"feature_store": store, "data_lake": {"uri": self.data_lake_uri}}


class SettingInfo(NamedTuple):
    """One declared setting, as :func:`describe_settings` lists it."""

    #: Dotted key path in the config files, e.g. ``feature_store.connection_info.redis_db``.
    key: str
    #: The Python type of the value (``int``, ``str | None``, ``Secret | None`` ...).
    type: str
    #: The default (None: unset).
    default: Any
    #: One line of help.
    help: str
    #: Bounds or allowed values ("" when any value of the type goes).
    bounds: str
    #: The provider or URI scheme the key is for (None: every backend).
    backend: str | None


def describe_settings() -> list[SettingInfo]:
    """Every setting of a config file, from its one declaration, in file order.

    Examples
    --------
    >>> info = {s.key: s for s in describe_settings()}
    >>> info["feature_store.retry_attempts"][1:3], info["feature_store.retry_attempts"].bounds
    (('int', 3), '0 to 100')
    >>> info["feature_store.connection_info.redis_db"].backend
    'redis'
    """
    out: list[SettingInfo] = []

    def walk(cls: type, prefix: str) -> None:
        subsections = sections_of(cls)
        for f in fields(cls):
            key = f"{prefix}.{f.name}" if prefix else f.name
            if f.name in subsections:
                walk(subsections[f.name], key)
                continue
            spec = settings_of(cls)[f.name]
            default = None if f.default is MISSING else f.default
            out.append(SettingInfo(key, str(f.type), default, spec.help, spec.rule.bounds, spec.backend))

    walk(_ConfigFile, "")
    return out


# --- layers -----------------------------------------------------------------

def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` over ``base``: maps merge key by key, anything else is replaced.

    Examples
    --------
    >>> deep_merge({"a": {"x": 1, "y": [1]}}, {"a": {"y": [2]}, "b": 3})
    {'a': {'x': 1, 'y': [2]}, 'b': 3}
    """
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        elif value is None and isinstance(merged.get(key), Mapping):
            continue  # a section left empty (only comments under it) overrides nothing
        else:
            merged[key] = value
    return merged


def _origins(tree: Any, file: str, prefix: str, out: dict[str, str]) -> None:
    if isinstance(tree, Mapping):
        if prefix:  # a map is placed by its file too, so errors about an empty map name it
            out[prefix] = file
        for key, value in tree.items():
            _origins(value, file, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = file


def interpolate(
    tree: Any,
    environ: Mapping[str, str] | None = None,
    *,
    where: Mapping[str, str] | None = None,
    _path: str = "",
) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in the string values of a parsed tree.

    Strings without ``${`` are returned unchanged. A variable that is unset and
    has no default raises :class:`~fs_augment.errors.ConfigError` naming the
    variable, the file (from ``where``, dotted path → file) and the key path.

    Examples
    --------
    >>> interpolate({"a": "${HOST:-localhost}:6379", "b": 1}, {})
    {'a': 'localhost:6379', 'b': 1}
    """
    environ = os.environ if environ is None else environ
    if isinstance(tree, Mapping):
        return {
            k: interpolate(v, environ, where=where, _path=f"{_path}.{k}" if _path else str(k))
            for k, v in tree.items()
        }
    if isinstance(tree, list):
        return [
            interpolate(v, environ, where=where, _path=f"{_path}[{i}]") for i, v in enumerate(tree)
        ]
    if not isinstance(tree, str) or "${" not in tree:
        return tree

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if default is not None and not value:  # as in the shell, ${VAR:-x} also replaces an empty VAR
            return default
        if value is not None:
            return value
        file = (where or {}).get(_path, "the configuration")
        raise ConfigError(
            f"{file}: {_path} needs environment variable {name}, which is not set "
            f"(set it, or write '${{{name}:-default}}' to give a default)"
        )

    return _PLACEHOLDER.sub(replace, tree)


def _from_text(value: str) -> Any:
    """A value produced by interpolation, read as YAML scalar (``"5"`` → 5)."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return parsed if isinstance(parsed, int | float | bool) or parsed is None else value


def _validate(tree: Any, cls: type, path: str, where: Mapping[str, str],
              interpolated: set[str]) -> dict[str, Any]:
    """Check a parsed section against its settings class; the values by key, sections as dicts."""
    if not isinstance(tree, Mapping):
        file = where.get(path) or next(iter(where.values()), "the configuration")
        raise ConfigError(f"{file}: {path or 'the top level'} must be a mapping, got {type(tree).__name__}")
    values, subsections = settings_of(cls), sections_of(cls)
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{path}.{key}" if path else str(key)
        file = where.get(dotted) or _first_file(where, dotted)
        if key in subsections:
            out[key] = _validate(value if value is not None else {}, subsections[key], dotted, where, interpolated)
            continue
        spec = values.get(key)
        if spec is None:
            known = [*values, *subsections]
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"; did you mean {path + '.' if path else ''}{close[0]}?" if close else (
                "; known keys: " + ", ".join(sorted(known))
            )
            raise ConfigError(f"{file}: unknown key {dotted}{hint}")
        rule: Rule = spec.rule
        if dotted in interpolated and isinstance(value, str) and not rule.text:
            value = _from_text(value)
        try:
            out[key] = rule.check(value)
        except TypeError as exc:
            shown = "***" if key == "redis_password" else repr(mask_url(value) if isinstance(value, str) else value)
            raise ConfigError(f"{file}: {dotted} must be {exc}, got {shown}") from None
    return out


def _check(store: FeatureStoreConfig, env: str, fail: Fail) -> None:
    """The checks of settings that depend on each other: monitoring, then the backends in use."""
    endpoint = store.monitoring_endpoint
    if store.enable_monitoring and endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            fail("feature_store.monitoring_endpoint",
                 f"of environment {env!r} must be an http:// or https:// URL (enable_monitoring is on), "
                 f"got {mask_url(endpoint)!r}")
    online = ONLINE_PROVIDERS[store.provider]
    if online.check is not None:
        online.check(store, fail)
    uri = store.connection_info.offline_store_uri
    if uri is not None:
        offline = OFFLINE_SCHEMES[uri_scheme(uri)]
        if offline.check is not None:
            offline.check(store, fail)


def _first_file(where: Mapping[str, str], prefix: str, fallback: str | None = None) -> str:
    for dotted, file in where.items():
        if dotted.startswith(prefix + ".") or dotted == prefix:
            return file
    return fallback or next(iter(where.values()), "the configuration")


def read_yaml_file(path: Path, error: type[Exception], what: str) -> Any:
    """``yaml.safe_load`` of a file; an unreadable or malformed one raises ``error`` naming it and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise error(f"{path}: malformed YAML{at}: {problem}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml_file(path, ConfigError, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def resolve_env_name(env: str | None = None) -> str:
    """The environment to use: ``env``, else ``$FS_AUGMENT_ENV``, else ``local``."""
    name = env or os.environ.get(ENV_VARIABLE) or DEFAULT_ENV
    if not _ENV_NAME.fullmatch(name):
        raise ConfigError(f"invalid environment name {name!r}: use letters, digits, '_' and '-'")
    return name


def resolve_config_dir(config_dir: str | os.PathLike[str] | None = None) -> Path:
    """The config folder: ``config_dir``, else ``$FS_AUGMENT_CONFIG_DIR``, else ``./config``."""
    return Path(config_dir or os.environ.get(CONFIG_DIR_VARIABLE) or "config")


def resolve_file_uri(uri: str, config: Config) -> Path:
    """The folder of a ``file://`` URI of an environment's configuration.

    A relative path (``file://./local_features``) is taken relative to the
    folder that holds the config folder (the project root), so the same
    config works whatever the working directory of the process.
    """
    if not uri.startswith("file://"):
        raise ConfigError(f"environment {config.env!r}: expected a file:// URI, got {uri!r}")
    path = Path(os.path.expanduser(uri[len("file://"):]))
    if not path.is_absolute():
        path = Path(config.config_dir).resolve().parent / path
    return path


def load_config(
    env: str | None = None,
    config_dir: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load the configuration of an environment.

    Parameters
    ----------
    env : str, optional
        Environment name; defaults to ``$FS_AUGMENT_ENV``, else ``"local"``.
    config_dir : path-like, optional
        Folder holding ``base.yaml`` and ``<env>.yaml``; defaults to
        ``$FS_AUGMENT_CONFIG_DIR``, else ``./config``.
    environ : mapping, optional
        Variables for ``${VAR}`` interpolation; defaults to ``os.environ``.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        A file is missing or malformed, a key is unknown or has the wrong type,
        or a variable without a default is unset. The message names the file
        and the dotted key path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "base.yaml").write_text("feature_store:\\n  provider: redis\\n")
    >>> _ = (d / "dev.yaml").write_text("feature_store:\\n  connection_info:\\n    redis_db: 1\\n")
    >>> cfg = load_config("dev", d)
    >>> cfg.env, cfg.feature_store.provider, cfg.feature_store.connection_info.redis_db
    ('dev', 'redis', 1)
    """
    name = resolve_env_name(env)
    folder = resolve_config_dir(config_dir)
    if not folder.is_dir():
        raise ConfigError(
            f"config folder {folder} does not exist (set config_dir= or {CONFIG_DIR_VARIABLE})"
        )
    base_path, env_path = folder / "base.yaml", folder / f"{name}.yaml"
    layers: list[tuple[Path, dict[str, Any]]] = []
    if base_path.is_file():
        layers.append((base_path, _read_yaml(base_path)))
    if not env_path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "base")
        raise ConfigError(
            f"environment {name!r} has no file {env_path} (environments in {folder}: "
            f"{', '.join(known) or 'none'})"
        )
    layers.append((env_path, _read_yaml(env_path)))

    merged: dict[str, Any] = {}
    where: dict[str, str] = {}
    for path, data in layers:
        merged = deep_merge(merged, data)
        _origins(data, str(path), "", where)
    resolved = interpolate(merged, environ, where=where)
    interpolated = {p for p in where if _has_placeholder(merged, p)}
    checked = _validate(resolved, _ConfigFile, "", where, interpolated)

    store = dict(checked.get("feature_store", {}))
    connection = dict(store.pop("connection_info", {}))
    host, url_password = split_url_password(connection.get("redis_host") or "")
    if url_password is not None:
        if connection.get("redis_password") is not None:
            raise ConfigError(
                f"{where.get('feature_store.connection_info.redis_host', env_path)}: give the Redis password "
                "either in feature_store.connection_info.redis_host's URL or in redis_password, not both"
            )
        connection.update(redis_host=host, redis_password=Secret(url_password))
    info = ConnectionInfo(**connection)
    feature_store = FeatureStoreConfig(connection_info=info, **store)

    def fail(dotted: str, text: str) -> NoReturn:
        raise ConfigError(f"{where.get(dotted) or _first_file(where, dotted, str(env_path))}: {dotted} {text}")

    _check(feature_store, name, fail)
    config = Config(
        env=name,
        config_dir=str(folder),
        feature_store=feature_store,
        data_lake_uri=checked.get("data_lake", {}).get("uri"),
    )
    logger.debug("loaded config %s from %s", name, folder)
    return config


def _has_placeholder(tree: Mapping[str, Any], dotted: str) -> bool:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return isinstance(node, str) and "${" in node
