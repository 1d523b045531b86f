"""The Redis online store: standalone Redis and Redis Cluster.

Keys are exactly the contract's ``{namespace}:{feature}:{entity}`` (no hash
tags); values are decoded with :func:`fs_augment.keys.decode_values`. An
entity's event time ``{namespace}:event_timestamp:{entity}`` is read like a
feature named ``event_timestamp``, in the same ``MGET`` (a cluster groups it by
slot with the rest), and is never listed as a feature.

Lookups
    An online lookup is **one** ``MGET`` over every key of every namespace
    (Redis Cluster: ``mget_nonatomic``, which groups the keys by slot and sends
    one pipeline per node). A batch lookup cuts the keys into chunks of
    ``batch_chunk_size`` and sends several ``MGET`` chunks per round trip in a
    non-transactional pipeline, decoding each round trip's answers before the
    next, so memory stays flat beyond the result. An online lookup of more
    than ``batch_chunk_size`` keys (a scoring job's batch of many rows) is sent
    the batch way: no single command carries more than ``batch_chunk_size``
    keys.

Connection settings (``feature_store`` of the environment's config)
    ``connection_info.redis_host`` is ``host:port`` or a ``redis://`` /
    ``rediss://`` URL, read by redis-py's own ``from_url`` (a URL may carry
    ``user:password@`` and ``/db``; what the URL says wins over
    ``redis_db`` / ``redis_password``). ``redis_username`` is an ACL user;
    ``redis_ssl_ca_certs`` is the CA file for TLS (with ``host:port`` it turns
    TLS on; with a URL it needs ``rediss://``). ``connection_pool_size`` bounds
    the connections (standalone: a ``BlockingConnectionPool``, so threads wait
    for a free connection rather than fail; cluster: per node).
    ``connection_timeout`` (ms) is the connect and read timeout.

Mode (``connection_info.redis_mode``)
    ``standalone`` or ``cluster`` pick the client class. ``auto`` (the default)
    asks the server once, at the first use of the store: one connection to
    database 0 runs ``INFO cluster`` and ``cluster_enabled:1`` selects
    ``RedisCluster``, anything else ``Redis``. A cluster has only database 0,
    so ``redis_db`` other than 0 is a configuration error there.

Retries
    ``retry_attempts`` is handed to redis-py as
    ``Retry(ExponentialBackoff(), retry_attempts)`` on connection errors and
    timeouts (standalone: per connection, covering connect and command; cluster:
    the cluster client's retries, which also refresh the slot map on
    ``CLUSTERDOWN`` and moved slots). ``retry_deadline`` (seconds, optional)
    adds a loop here: a call that still fails with a transient error is tried
    again, with growing pauses, until that many seconds after its first
    failure, to ride out a cluster failover. Authentication and ``ResponseError``
    failures are never retried.

Errors
    redis-py errors are translated here and only here: unreachable or down
    after the retries → :class:`~fs_augment.errors.StoreUnavailableError`
    naming the store, the environment and ``host:port`` (and database), never
    the password; failed authentication → ``StoreUnavailableError`` saying so;
    an error reply → :class:`~fs_augment.errors.StoreError`.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, TypedDict

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.connection import BlockingConnectionPool, SSLConnection, parse_url
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    AuthorizationError,
    ClusterDownError,
    NoPermissionError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.retry import Retry

from fs_augment.backends import redis_tls_problem
from fs_augment.config import Config, FeatureStoreConfig, Secret
from fs_augment.errors import ConfigError, StoreError, StoreUnavailableError
from fs_augment.keys import TIMESTAMP_COLUMN, decode_values, feature_key
from fs_augment.stores.base import FeatureRequest, OfflineStore, OnlineStore, RowShape

__all__ = ["RedisOptions", "RedisStore", "open_redis_store"]

logger = logging.getLogger(__name__)

#: Backoff of redis-py's retries, seconds: base * 2**n, at most cap.
BACKOFF_BASE = 0.025
BACKOFF_CAP = 0.5
#: Chunks (MGETs) sent per round trip in a batch lookup.
CHUNKS_PER_ROUND_TRIP = 4
#: Keys per MSET command when the writer asks for no expiry.
MSET_PAIRS = 1000
#: Bounds of the error-path SCANs.
SCAN_COUNT = 1000
SCAN_MAX_KEYS = 100_000
SCAN_MAX_SECONDS = 2.0
#: Pauses of the retry_deadline loop, seconds.
DEADLINE_FIRST_PAUSE = 0.05
DEADLINE_MAX_PAUSE = 1.0
_CLIENT_ERRORS = (RedisError, RedisClusterException)
_TRANSIENT = (
    redis.ConnectionError,
    redis.TimeoutError,
    socket.timeout,
    ClusterDownError,
    TryAgainError,
    RedisClusterException,
)
_AUTH = (AuthenticationError, AuthorizationError, AuthenticationWrongNumberOfArgsError)
_GLOB_SPECIALS = str.maketrans({c: "\\" + c for c in "\\*?[]"})


_STORE = FeatureStoreConfig()  # the declared defaults (fs_augment.config), the options' defaults too
_INFO = _STORE.connection_info


@dataclass(frozen=True)
class RedisOptions:
    """How to reach one environment's Redis; built from a config by :meth:`from_config`.

    The settings are declared (type, default, bounds, help) once, in
    :class:`~fs_augment.backends.RedisSettings` and
    :class:`~fs_augment.config.FeatureStoreConfig`, and checked when the
    config loads; these options are what a client is built from, with the
    same defaults.

    Parameters
    ----------
    host : str
        ``"host:port"`` or a ``redis://`` / ``rediss://`` URL.
    db : int
        Database number (standalone only; a URL's ``/db`` wins).
    username : str, optional
        ACL user.
    password : Secret, optional
        Password; its value is read only when a client is built.
    ssl_ca_certs : str, optional
        CA file for TLS.
    mode : {"auto", "standalone", "cluster"}
        Client class; ``auto`` asks the server at first use.
    pool_size : int
        Maximum connections (per node in a cluster).
    timeout : float
        Connect and read timeout, seconds.
    retry_attempts : int
        Retries of a failed command on connection errors and timeouts.
    retry_deadline : float, optional
        Keep retrying a failed call this many seconds after its first failure.
    batch_chunk_size : int
        Keys per ``MGET`` in a batch lookup.
    env : str
        Environment name, for messages.
    debug : bool
        Log every call's key count and time at DEBUG.

    Examples
    --------
    >>> RedisOptions("127.0.0.1:6379", db=9).location
    '127.0.0.1:6379/9'
    >>> RedisOptions("rediss://user:pw@cache.internal:6380/2").location
    'cache.internal:6380/2'
    """

    host: str = _INFO.redis_host
    db: int = _INFO.redis_db
    username: str | None = _INFO.redis_username
    password: Secret | None = field(default=_INFO.redis_password, repr=False)
    ssl_ca_certs: str | None = _INFO.redis_ssl_ca_certs
    mode: str = _INFO.redis_mode
    pool_size: int = _STORE.connection_pool_size
    timeout: float = _STORE.connection_timeout / 1000
    retry_attempts: int = _STORE.retry_attempts
    retry_deadline: float | None = _STORE.retry_deadline
    batch_chunk_size: int = _STORE.batch_chunk_size
    env: str = "custom"
    debug: bool = _STORE.enable_debug_logging

    @classmethod
    def from_config(cls, config: Config) -> RedisOptions:
        """The options of an environment's ``feature_store`` section.

        Raises
        ------
        ConfigError
            The settings cannot be used together (e.g. TLS CA with a redis:// URL).
        """
        store = config.feature_store
        info = store.connection_info
        return cls(
            host=info.redis_host,
            db=info.redis_db,
            username=info.redis_username,
            password=info.redis_password,
            ssl_ca_certs=info.redis_ssl_ca_certs,
            mode=info.redis_mode,
            pool_size=store.connection_pool_size,
            timeout=store.connection_timeout / 1000,
            retry_attempts=store.retry_attempts,
            retry_deadline=store.retry_deadline,
            batch_chunk_size=store.batch_chunk_size,
            env=config.env,
            debug=store.enable_debug_logging,
        )

    @property
    def is_url(self) -> bool:
        """Whether ``host`` is a URL rather than ``host:port``."""
        return "://" in self.host

    @property
    def address(self) -> str:
        """``host:port``, without credentials."""
        if self.is_url:
            parts = parse_url(self.host)
            return f"{parts.get('host', 'localhost')}:{parts.get('port', 6379)}"
        return self.host

    @property
    def database(self) -> int:
        """The database number in effect (a URL's wins over ``db``)."""
        if self.is_url:
            return int(parse_url(self.host).get("db", self.db))
        return self.db

    @property
    def location(self) -> str:
        """``host:port/db`` for messages; never credentials."""
        return f"{self.address}/{self.database}"

    @property
    def uses_tls(self) -> bool:
        """Whether connections are TLS (``rediss://``, or ``host:port`` with a CA file)."""
        if self.is_url:
            return self.host.startswith("rediss://")
        return self.ssl_ca_certs is not None


# --- building clients --------------------------------------------------------

def _retry(attempts: int) -> Retry:
    backoff = ExponentialBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE)
    return Retry(backoff, attempts, supported_errors=(redis.ConnectionError, redis.TimeoutError, socket.timeout))


def _connection_kwargs(options: RedisOptions) -> dict[str, Any]:
    """Keyword arguments shared by standalone and cluster connections."""
    problem = redis_tls_problem(options.host, options.ssl_ca_certs)
    if problem is not None:  # checked when a config loads; options built by hand are checked here
        raise ConfigError(f"environment {options.env!r}: feature_store.connection_info.redis_ssl_ca_certs {problem}")
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": options.timeout,
        "socket_timeout": options.timeout,
        "max_connections": options.pool_size,
    }
    if options.username is not None:
        kwargs["username"] = options.username
    if options.password is not None:
        kwargs["password"] = options.password.get()
    if options.ssl_ca_certs is not None:
        kwargs["ssl_ca_certs"] = options.ssl_ca_certs
    return kwargs


def build_standalone_client(options: RedisOptions) -> redis.Redis:
    """A ``redis.Redis`` over a ``BlockingConnectionPool`` (no I/O yet).

    Parameters
    ----------
    options : RedisOptions

    Returns
    -------
    redis.Redis
    """
    kwargs = _connection_kwargs(options)
    kwargs.update(retry=_retry(options.retry_attempts), timeout=options.timeout, db=options.db)
    if options.is_url:
        pool = BlockingConnectionPool.from_url(options.host, **kwargs)
    else:
        host, _, port = options.host.rpartition(":")
        if options.uses_tls:
            kwargs["connection_class"] = SSLConnection
        pool = BlockingConnectionPool(host=host, port=int(port), **kwargs)
    return redis.Redis(connection_pool=pool)


def build_cluster_client(options: RedisOptions) -> RedisCluster:
    """A ``RedisCluster``; connects to discover the slot map.

    Parameters
    ----------
    options : RedisOptions

    Returns
    -------
    redis.cluster.RedisCluster

    Raises
    ------
    ConfigError
        ``redis_db`` (or the URL's database) is not 0: a cluster has only database 0
        (checked when a config with ``redis_mode: cluster`` loads; with ``auto``
        the cluster is found only here).
    """
    if options.database != 0:
        raise ConfigError(
            f"environment {options.env!r}: {options.address} is a Redis Cluster, which has only database 0, "
            f"but feature_store.connection_info asks for database {options.database}; set redis_db: 0"
        )
    kwargs = _connection_kwargs(options)
    # Node pools block for a free connection rather than fail under many threads.
    kwargs.update(connection_pool_class=BlockingConnectionPool, timeout=options.timeout)
    url = options.host if options.is_url else f"{'rediss' if options.uses_tls else 'redis'}://{options.host}"
    return RedisCluster.from_url(url, retry=_retry(options.retry_attempts), **kwargs)


def server_is_cluster(client: redis.Redis) -> bool:
    """Ask a server once whether it runs in cluster mode (``INFO cluster``).

    The question goes over a connection of its own to database 0 (a cluster
    refuses ``SELECT`` of any other database), built from ``client``'s pool
    settings and closed afterwards.
    """
    pool = client.connection_pool
    connection = pool.connection_class(**{**pool.connection_kwargs, "db": 0})
    try:
        connection.connect()
        connection.send_command("INFO", "cluster")
        reply = connection.read_response()
    finally:
        connection.disconnect()
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return "cluster_enabled:1" in text


def open_client(options: RedisOptions) -> redis.Redis | RedisCluster:
    """Build the client ``options.mode`` asks for, asking the server when it is ``auto``."""
    if options.mode == "cluster":
        return build_cluster_client(options)
    client = build_standalone_client(options)
    if options.mode == "standalone":
        return client
    try:
        cluster = server_is_cluster(client)
    except BaseException:
        client.connection_pool.disconnect()
        raise
    if not cluster:
        return client
    client.connection_pool.disconnect()
    return build_cluster_client(options)


# --- keys and values ------------------------------------------------------------

class KeyPrefixes:
    """``{namespace}:{feature}:`` prefixes per (namespace, features): the most recently used few thousand kept.

    Examples
    --------
    >>> KeyPrefixes()("user_demographics", ("age", "gender"))
    ('user_demographics:age:', 'user_demographics:gender:')
    """

    def __init__(self, max_entries: int = 4096) -> None:
        # a least-recently-used cache: a process that sees many recipes forgets the oldest, not all
        self._cached = functools.lru_cache(maxsize=max_entries)(_prefixes)

    def __call__(self, namespace: str, features: Sequence[str]) -> tuple[str, ...]:
        try:
            return self._cached(namespace, features)
        except TypeError:  # features given as a list
            return self._cached(namespace, tuple(features))


def _prefixes(namespace: str, features: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(feature_key(namespace, feature, "") for feature in features)


def all_keys(requests: Sequence[FeatureRequest], prefixes: KeyPrefixes) -> list[str]:
    """Every key of every request: request by request, feature by feature, entity by entity."""
    keys: list[str] = []
    for namespace, features, entities, _ in requests:
        found = prefixes(namespace, features)
        if len(entities) == 1:
            entity = entities[0]
            keys += [prefix + entity for prefix in found]
        else:
            keys += [prefix + entity for prefix in found for entity in entities]
    return keys


def key_chunks(requests: Sequence[FeatureRequest], prefixes: KeyPrefixes, size: int) -> Iterator[list[str]]:
    """The keys of :func:`all_keys`, in the same order, as lists of at most ``size`` keys."""
    chunk: list[str] = []
    for namespace, features, entities, _ in requests:
        total = len(entities)
        for prefix in prefixes(namespace, features):
            start = 0
            while start < total:
                take = size - len(chunk)
                chunk += [prefix + entity for entity in entities[start:start + take]]
                start += take
                if len(chunk) == size:
                    yield chunk
                    chunk = []
    if chunk:
        yield chunk


def split_values(values: list[Any], requests: Sequence[FeatureRequest]) -> list[list[list[Any]]]:
    """Slice a flat value list (in :func:`all_keys` order) into ``result[i][j][k]``."""
    out: list[list[list[Any]]] = []
    position = 0
    for _, features, entities, _ in requests:
        count, width = len(entities), len(features)
        if count == 1:
            out.append([[value] for value in values[position:position + width]])
        else:
            out.append([values[at:at + count] for at in range(position, position + width * count, count)])
        position += width * count
    return out


# --- the store ------------------------------------------------------------------------

class RedisStore(OnlineStore):
    """Latest feature values in Redis or Redis Cluster.

    The client is built at first use (see the module docstring for ``auto``
    mode), so opening the store does no I/O. The store is a context manager;
    it is never pickled.

    Parameters
    ----------
    options : RedisOptions
        Where and how to connect.
    client : redis.Redis or RedisCluster, optional
        A ready client to use instead of building one; the store then never
        closes it (its owner does), and ``options`` only describe it.

    Examples
    --------
    >>> store = RedisStore(RedisOptions("127.0.0.1:6379", db=9, mode="standalone"))
    >>> store.describe()
    'redis 127.0.0.1:6379/9'
    >>> store.close()
    """

    name = "redis"
    writable = True

    def __init__(self, options: RedisOptions, *, client: redis.Redis | RedisCluster | None = None) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._client: redis.Redis | RedisCluster | None = None
        self._cluster = options.mode == "cluster"
        self._mget: Callable[[list[str]], list[Any]] = self._connect_and_mget
        self._mget_chunks: Callable[[list[list[str]]], list[list[Any]]] = self._connect_and_mget_chunks
        self._chunk_size = options.batch_chunk_size
        self._prefixes = KeyPrefixes()
        self._debug = options.debug
        self._password = options.password.get() if options.password is not None else None
        if self._cluster:
            self.name = "redis-cluster"
        self._owns_client = client is None
        if client is not None:
            self._adopt(client)

    @classmethod
    def for_client(cls, client: redis.Redis | RedisCluster, *, env: str = "custom") -> RedisStore:
        """A store over a ready redis-py client, which it uses but never closes.

        Examples
        --------
        >>> RedisStore.for_client(redis.Redis(port=6390, db=3)).describe()
        'redis localhost:6390/3'
        """
        if isinstance(client, RedisCluster):
            node = client.get_default_node()
            options = RedisOptions(f"{node.host}:{node.port}", mode="cluster", env=env)
        else:
            kwargs = client.connection_pool.connection_kwargs
            host = kwargs.get("host") or kwargs.get("path") or "localhost"
            options = RedisOptions(f"{host}:{kwargs.get('port', 6379)}", db=int(kwargs.get("db", 0)),
                                   mode="standalone", env=env)
        return cls(options, client=client)

    # --- connection ----------------------------------------------------------------
    @property
    def client(self) -> redis.Redis | RedisCluster:
        """The redis-py client (``Redis`` or ``RedisCluster``), built at first use."""
        client = self._client
        return client if client is not None else self._open()

    @property
    def is_cluster(self) -> bool:
        """Whether the store talks to a Redis Cluster (known after first use in ``auto`` mode)."""
        return self._cluster

    def _open(self) -> redis.Redis | RedisCluster:
        with self._lock:
            if self._client is not None:
                return self._client
            try:
                client = open_client(self.options)
            except NoPermissionError as exc:
                if self.options.mode != "auto":
                    raise
                raise StoreError(
                    f"cannot tell whether {self.options.address} is a Redis Cluster: the user may not run "
                    f"INFO ({self._scrub(str(exc))}); set feature_store.connection_info.redis_mode to "
                    f"'standalone' or 'cluster' for environment {self.options.env!r}"
                ) from exc
            self._adopt(client)
            return client

    def _adopt(self, client: redis.Redis | RedisCluster) -> None:
        self._cluster = isinstance(client, RedisCluster)
        self.name = "redis-cluster" if self._cluster else "redis"
        if isinstance(client, RedisCluster):
            self._mget = client.mget_nonatomic
            self._mget_chunks = self._cluster_mget_chunks
        else:
            self._mget = client.mget
            self._mget_chunks = self._pipelined_mget_chunks
        self._client = client

    def _connect_and_mget(self, keys: list[str]) -> list[Any]:
        self._open()
        return self._mget(keys)

    def _connect_and_mget_chunks(self, chunks: list[list[str]]) -> list[list[Any]]:
        self._open()
        return self._mget_chunks(chunks)

    def _pipelined_mget_chunks(self, chunks: list[list[str]]) -> list[list[Any]]:
        client = self._client
        assert client is not None
        if len(chunks) == 1:
            return [client.mget(chunks[0])]
        pipe = client.pipeline(transaction=False)
        for chunk in chunks:
            pipe.mget(chunk)
        return pipe.execute()

    def _cluster_mget_chunks(self, chunks: list[list[str]]) -> list[list[Any]]:
        client = self._client
        assert isinstance(client, RedisCluster)
        return [client.mget_nonatomic(chunk) for chunk in chunks]

    def close(self) -> None:
        """Disconnect every pooled connection; the store reconnects if used again.

        A client given to the store is left open: its owner closes it.
        """
        if not self._owns_client:
            return
        with self._lock:
            client, self._client = self._client, None
            self._mget = self._connect_and_mget
            self._mget_chunks = self._connect_and_mget_chunks
        if client is None:
            return
        client.close()
        if isinstance(client, redis.Redis):
            client.connection_pool.disconnect()

    def __reduce__(self) -> Any:
        raise TypeError(
            f"RedisStore ({self.describe()}) cannot be pickled: it holds live connections. Pickle the "
            "recipe or the fitted augmenter, and open the store where it runs with fs_augment.connect()"
        )

    def __repr__(self) -> str:
        return f"RedisStore({self.describe()!r}, env={self.options.env!r})"

    def describe(self) -> str:
        """``"redis HOST:PORT/DB"`` or ``"redis-cluster HOST:PORT"``; never a password."""
        where = self.options.address if self._cluster else self.options.location
        return f"{self.name} {where}"

    # --- lookups --------------------------------------------------------------------
    def fetch(self, requests: Sequence[FeatureRequest], *, online: bool = False) -> list[list[list[Any]]]:
        """Read the latest values (see :meth:`OnlineStore.fetch`).

        Online: one ``MGET`` (cluster: one pipeline per node) over all keys.
        Batch, and an online lookup of more than ``batch_chunk_size`` keys:
        chunks of ``batch_chunk_size`` keys, several per round trip.
        """
        start = time.perf_counter() if self._debug else 0.0
        if online:
            keys = all_keys(requests, self._prefixes)
            size = self._chunk_size
            if len(keys) <= size:
                values = decode_values(self._call(self._mget, keys)) if keys else []
            else:  # no command carries more than batch_chunk_size keys, whatever the mode
                values = self._fetch_chunks(keys[at:at + size] for at in range(0, len(keys), size))
            count = len(keys)
        else:
            values = self._fetch_chunks(key_chunks(requests, self._prefixes, self._chunk_size))
            count = len(values)
        if self._debug:
            logger.debug("%s %s fetch: %d keys, %.3f ms", self.describe(), "online" if online else "batch",
                         count, (time.perf_counter() - start) * 1e3)
        return split_values(values, requests)

    def row_reader(self, shape: RowShape) -> Callable[[Sequence[str]], list[Any]]:
        """A one-row reader: the row's keys from prefixes worked out once, one ``MGET``, decoded.

        Reads exactly what :meth:`fetch` reads for the same row, online; a row of more than
        ``batch_chunk_size`` keys, or a store logging at debug level, goes through :meth:`fetch`.
        """
        templates = [(feature_key(namespace, feature, ""), slot)
                     for namespace, features, _, slot in shape for feature in features]
        if len(templates) > self._chunk_size or self._debug:
            return super().row_reader(shape)

        def read(texts: Sequence[str]) -> list[Any]:
            return decode_values(self._call(self._mget, [prefix + texts[slot] for prefix, slot in templates]))

        return read

    def _fetch_chunks(self, chunks: Iterator[list[str]]) -> list[Any]:
        values: list[Any] = []
        while True:
            group = list(islice(chunks, CHUNKS_PER_ROUND_TRIP))
            if not group:
                return values
            for raw in self._call(self._mget_chunks, group):
                values.extend(decode_values(raw))

    # --- writing (the reference writer) ------------------------------------------------------
    def write(self, pairs: Iterable[tuple[str, str | None]], *, ttl: float | None = None,
              chunk_size: int = 10_000, group: int = 1) -> int:
        """Store JSON text under keys, about ``chunk_size`` keys a round trip; a None value deletes its key.

        Without ``ttl`` the pairs go as ``MSET`` commands (``mset_nonatomic`` on
        a cluster, which groups them by slot) in a non-transactional pipeline;
        with one as ``SET ... EX`` (``PX`` for fractions of a second) each.
        Runs of ``group`` pairs (an entity's keys) are never split between two
        round trips or two ``MSET`` commands. Returns how many keys were
        written (see :meth:`OnlineStore.write`).
        """
        expiry = _expiry(ttl)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size!r}")
        if isinstance(group, bool) or not isinstance(group, int) or group < 1:
            raise ValueError(f"group must be >= 1, got {group!r}")
        size = max(1, chunk_size // group) * group
        per_mset = max(1, MSET_PAIRS // group) * group
        client = self._call(lambda: self.client)
        written = 0
        for batch in _batches(pairs, size):
            stale = [key for key, value in batch if value is None]
            if stale:
                self._call(client.delete, *stale)  # split by slot on a cluster
            runs = [run for run in ([(k, v) for k, v in part if v is not None] for part in _batches(batch, per_mset))
                    if run]
            if runs:
                self._call(self._send, client, runs, expiry)
            written += sum(len(run) for run in runs)
        return written

    def _send(self, client: redis.Redis | RedisCluster, runs: list[list[tuple[str, str]]],
              expiry: _Expiry) -> None:
        if not expiry and isinstance(client, RedisCluster):
            client.mset_nonatomic({key: value for run in runs for key, value in run})
            return
        pipe = client.pipeline(transaction=False)
        if expiry:
            for run in runs:
                for key, value in run:
                    pipe.set(key, value, **expiry)
        else:
            for run in runs:
                pipe.mset(dict(run))
        pipe.execute()

    # --- the error path -----------------------------------------------------------------
    def list_features(self, namespace: str) -> list[str]:
        """Distinct feature names under ``{namespace}:*`` (a bounded SCAN of every master).

        The scan stops after about ``SCAN_MAX_KEYS`` keys or ``SCAN_MAX_SECONDS``,
        so on a very large database the list may be incomplete.
        """
        keys, _ = self._call(self._scan, f"{_glob_escape(namespace)}:*", False)
        features: set[str] = set()
        for key in keys:
            text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
            parts = text.split(":", 2)
            if len(parts) == 3 and parts[0] == namespace and parts[1] != TIMESTAMP_COLUMN:  # the time is no feature
                features.add(parts[1])
        return sorted(features)

    def has_feature(self, namespace: str, feature: str) -> bool:
        """Whether any ``{namespace}:{feature}:*`` key exists (bounded SCAN, stops at the first hit).

        An inconclusive scan (the bound was reached first) answers True, so a
        sparse feature on a huge database is never reported as unknown.
        """
        pattern = f"{_glob_escape(namespace)}:{_glob_escape(feature)}:*"
        keys, complete = self._call(self._scan, pattern, True)
        return bool(keys) or not complete

    def _scan(self, pattern: str, first_only: bool) -> tuple[list[bytes | str], bool]:
        client = self.client
        if isinstance(client, RedisCluster):
            nodes = [client.get_redis_connection(node) for node in client.get_primaries()]
        else:
            nodes = [client]
        found: list[bytes | str] = []
        calls, budget = 0, max(1, SCAN_MAX_KEYS // SCAN_COUNT)
        deadline = time.monotonic() + SCAN_MAX_SECONDS
        for node in nodes:
            cursor = 0
            while True:
                cursor, keys = node.scan(cursor, match=pattern, count=SCAN_COUNT)
                found.extend(keys)
                calls += 1
                if first_only and found:
                    return found, True
                if cursor == 0:
                    break
                if calls >= budget or time.monotonic() > deadline:
                    return found, False
        return found, True

    # --- errors --------------------------------------------------------------------------
    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a client call; translate its errors, retrying until the deadline if one is set."""
        try:
            return function(*args)
        except _CLIENT_ERRORS as exc:
            return self._recover(function, args, exc)

    def _recover(self, function: Callable[..., Any], args: tuple[Any, ...], exc: BaseException) -> Any:
        deadline_seconds = self.options.retry_deadline
        if deadline_seconds and _is_transient(exc):
            deadline = time.monotonic() + deadline_seconds
            pause = DEADLINE_FIRST_PAUSE
            while _is_transient(exc) and time.monotonic() + pause < deadline:
                time.sleep(pause)
                pause = min(pause * 2, DEADLINE_MAX_PAUSE)
                try:
                    return function(*args)
                except _CLIENT_ERRORS as again:
                    exc = again
        raise self.translate(exc) from exc

    def translate(self, exc: BaseException) -> StoreError:
        """The fs_augment error for a redis-py error, naming store, environment and host.

        Parameters
        ----------
        exc : Exception
            An error raised by redis-py.

        Returns
        -------
        StoreError
            :class:`StoreUnavailableError` for connection failures, timeouts,
            a cluster that is down and failed authentication; ``StoreError``
            for an error reply.
        """
        where = f"{self.describe()} (feature store of environment {self.options.env!r})"
        detail = self._scrub(str(exc) or type(exc).__name__)
        if _caused_by(exc, _AUTH):
            user = f" as user {self.options.username!r}" if self.options.username else ""
            return StoreUnavailableError(
                f"authentication failed for {self.options.address}{user} at {where}: {detail}; check "
                "redis_username / redis_password (or the URL's credentials)"
            )
        if _is_transient(exc):
            retries = self.options.retry_attempts
            tried = f"{retries} {'retry' if retries == 1 else 'retries'}"
            if self.options.retry_deadline:
                tried += f" and retry_deadline {self.options.retry_deadline:g} s"
            return StoreUnavailableError(
                f"{where} is unavailable after {tried} "
                f"(timeout {self.options.timeout:g} s): {type(exc).__name__}: {detail}"
            )
        if isinstance(exc, ResponseError):
            return StoreError(f"{where} answered with an error: {detail}")
        return StoreError(f"{where} failed: {type(exc).__name__}: {detail}")

    def _scrub(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "***")
        return text


class _Expiry(TypedDict, total=False):
    """The expiry arguments of a Redis ``SET``: whole seconds or milliseconds."""

    ex: int
    px: int


def _expiry(ttl: float | None) -> _Expiry:
    if ttl is None:
        return {}
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
    if float(ttl).is_integer():
        return {"ex": int(ttl)}
    return {"px": max(1, round(ttl * 1000))}


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _glob_escape(text: str) -> str:
    return text.translate(_GLOB_SPECIALS)


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):  # redis-py chains a cluster connect failure to its cause
        if seen is None:
            return False
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT) and not _caused_by(exc, _AUTH)


def open_redis_store(config: Config, offline: OfflineStore | None = None) -> RedisStore:
    """The ``redis`` provider's factory (:data:`fs_augment.backends.ONLINE_PROVIDERS`); ``offline`` is not used.

    Parameters
    ----------
    config : Config
        The environment's configuration.
    offline : OfflineStore, optional
        Ignored: Redis serves latest values only.

    Returns
    -------
    RedisStore
        Not connected yet: the first lookup connects.
    """
    return RedisStore(RedisOptions.from_config(config))


def store_for_url(url: str, **options: Any) -> RedisStore:
    """A store for a ``redis://`` / ``rediss://`` URL, mode detected at first use.

    Examples
    --------
    >>> store_for_url("redis://127.0.0.1:6379/9").describe()
    'redis 127.0.0.1:6379/9'
    """
    return RedisStore(replace(RedisOptions(host=url), **options))
