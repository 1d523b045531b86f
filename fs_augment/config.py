"""Environment configuration: ``config/base.yaml`` merged with ``config/<env>.yaml``.

The layers: each file is read with ``yaml.safe_load``; the environment file is
deep-merged over the base (maps merge key by key, scalars and lists are
replaced); ``${VAR}`` and ``${VAR:-default}`` are replaced in parsed string
values from the process environment; then every key is typed and validated.
Errors name the file and the dotted key path; passwords never appear in
``repr``, ``str``, logs or error messages.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from fs_augment.errors import ConfigError

__all__ = [
    "Config",
    "ConnectionInfo",
    "FeatureStoreConfig",
    "Secret",
    "deep_merge",
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


class Secret:
    """A string that keeps out of reprs, logs and pickles.

    Examples
    --------
    >>> s = Secret("hunter2")
    >>> s, str(s), s.get()
    (Secret('***'), '***', 'hunter2')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret value itself; pass it only to the client that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):
        raise TypeError("a Secret is never pickled; resolve it from the config where it is used")


def mask_url(url: str) -> str:
    """``url`` with the password of its user info (and any query) masked, for display.

    Examples
    --------
    >>> mask_url("redis://reader:s3cret@cache:6379/2"), mask_url("https://m.internal/push?token=abc")
    ('redis://reader:***@cache:6379/2', 'https://m.internal/push?***')
    >>> mask_url("localhost:6379")
    'localhost:6379'
    """
    if "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    path, question, _ = path.partition("?")
    return f"{scheme}://{netloc}{slash}{path}{'?***' if question else ''}"


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


@dataclass(frozen=True, repr=False)
class ConnectionInfo:
    """Where the environment's stores are (``feature_store.connection_info``)."""

    redis_host: str = "localhost:6379"
    redis_db: int = 0
    redis_password: Secret | None = field(default=None, repr=False)
    offline_store_uri: str | None = None
    redis_mode: str = "auto"
    redis_username: str | None = None
    redis_ssl_ca_certs: str | None = None
    bigquery_api_endpoint: str | None = None
    bigquery_location: str | None = None
    bigquery_scratch_dataset: str | None = None

    def __repr__(self) -> str:
        return _masked_repr(self)


@dataclass(frozen=True, repr=False)
class FeatureStoreConfig:
    """The ``feature_store`` section of an environment's configuration."""

    provider: str = "redis"
    connection_timeout: int = 5000
    retry_attempts: int = 3
    connection_info: ConnectionInfo = field(default_factory=ConnectionInfo)
    cache_ttl: float = 0
    cache_max_entries: int = 100_000
    enable_debug_logging: bool = False
    connection_pool_size: int = 50
    enable_monitoring: bool = False
    monitoring_endpoint: str | None = None
    retry_deadline: float | None = None
    on_store_error: str = "raise"
    batch_chunk_size: int = 10_000

    def __repr__(self) -> str:
        return _masked_repr(self)


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
            for section in (store, conn):
                for key, value in section.items():
                    if isinstance(value, str):
                        section[key] = mask_url(value)
        return {"feature_store": store, "data_lake": {"uri": self.data_lake_uri}}


# --- schema ---------------------------------------------------------------

def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return _str(value)


def _int(minimum: int, maximum: int | None = None, why: str = ""):
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise TypeError(f"an integer >= {minimum}")
        if maximum is not None and value > maximum:
            raise TypeError(f"at most {maximum} ({why})")
        return value

    return check


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise TypeError("a number >= 0")
    return value


def _opt_number(value: Any) -> float | None:
    return None if value is None else _number(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("true or false")
    return value


def _choice(*allowed: str):
    def check(value: Any) -> str:
        if value not in allowed:
            raise TypeError("one of " + ", ".join(repr(a) for a in allowed))
        return value

    return check


def _host(value: Any) -> str:
    value = _str(value)
    if "://" in value:
        if not value.startswith(("redis://", "rediss://")):
            raise TypeError("'host:port' or a redis:// / rediss:// URL")
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise TypeError("'host:port' (e.g. 'localhost:6379') or a redis:// / rediss:// URL")
    return value


def _store_uri(value: Any) -> str | None:
    value = _opt_str(value)
    if value is not None and not value.startswith(("file://", "bq://")):
        raise TypeError("a 'file://FOLDER' or 'bq://PROJECT.DATASET' URI")
    return value


def _secret(value: Any) -> Secret | None:
    if value is None or value == "":
        return None
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str | int):
        raise TypeError("a string (use '${VARIABLE}' to read it from the environment)")
    return Secret(str(value))


_CONNECTION_SCHEMA = {
    "redis_host": _host,
    "redis_db": _int(0),
    "redis_password": _secret,
    "offline_store_uri": _store_uri,
    "redis_mode": _choice("auto", "standalone", "cluster"),
    "redis_username": _opt_str,
    "redis_ssl_ca_certs": _opt_str,
    "bigquery_api_endpoint": _opt_str,
    "bigquery_location": _opt_str,
    "bigquery_scratch_dataset": _opt_str,
}

_STORE_SCHEMA = {
    "provider": _choice("redis", "local"),
    "connection_timeout": _int(1, 3_600_000, "one hour, in ms; use retry_deadline to wait out longer outages"),
    "retry_attempts": _int(0, 100, "use retry_deadline to keep retrying for a while"),
    "connection_info": _CONNECTION_SCHEMA,
    "cache_ttl": _number,
    "cache_max_entries": _int(1),
    "enable_debug_logging": _bool,
    "connection_pool_size": _int(1, 10_000, "Redis' default maxclients; redis-py allocates the whole pool"),
    "enable_monitoring": _bool,
    "monitoring_endpoint": _opt_str,
    "retry_deadline": _opt_number,
    "on_store_error": _choice("raise", "default"),
    "batch_chunk_size": _int(1),
}

# Keys whose values are text: an interpolated value is kept as it is ("0x10", "true" and
# "1.5" are passwords, not numbers); other keys read it as a YAML scalar ("${DB:-3}" -> 3).
_TEXT_RULES = frozenset({_str, _opt_str, _host, _store_uri, _secret})

_SCHEMA: dict[str, Any] = {
    "feature_store": _STORE_SCHEMA,
    "data_lake": {"uri": _store_uri},
}


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


def _validate(tree: Any, schema: Mapping[str, Any], path: str, where: Mapping[str, str],
              interpolated: set[str]) -> dict[str, Any]:
    if not isinstance(tree, Mapping):
        file = where.get(path) or next(iter(where.values()), "the configuration")
        raise ConfigError(f"{file}: {path or 'the top level'} must be a mapping, got {type(tree).__name__}")
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{path}.{key}" if path else str(key)
        file = where.get(dotted) or _first_file(where, dotted)
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1, cutoff=0.6)
            hint = f"; did you mean {path + '.' if path else ''}{close[0]}?" if close else (
                "; known keys: " + ", ".join(sorted(schema))
            )
            raise ConfigError(f"{file}: unknown key {dotted}{hint}")
        rule = schema[key]
        if isinstance(rule, Mapping):
            out[key] = _validate(value if value is not None else {}, rule, dotted, where, interpolated)
            continue
        if dotted in interpolated and isinstance(value, str) and rule not in _TEXT_RULES:
            value = _from_text(value)
        try:
            out[key] = rule(value)
        except TypeError as exc:
            shown = "***" if key == "redis_password" else repr(mask_url(value) if isinstance(value, str) else value)
            raise ConfigError(f"{file}: {dotted} must be {exc}, got {shown}") from None
    return out


def _first_file(where: Mapping[str, str], prefix: str) -> str:
    for dotted, file in where.items():
        if dotted.startswith(prefix + ".") or dotted == prefix:
            return file
    return next(iter(where.values()), "the configuration")


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
    checked = _validate(resolved, _SCHEMA, "", where, interpolated)

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
    config = Config(
        env=name,
        config_dir=str(folder),
        feature_store=FeatureStoreConfig(connection_info=info, **store),
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
