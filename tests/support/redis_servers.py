"""Private ``redis-server`` processes for tests.

Every helper here starts its own ``redis-server`` subprocess on a free port of
127.0.0.1, in a directory supplied by the caller (normally pytest's
``tmp_path``), and stops it again by PID.  Nothing here ever talks to a Redis
it did not start itself: after startup the server's ``INFO`` ``process_id`` is
compared with the PID of the spawned process.

Health checks and admin commands go through redis-py (:meth:`RedisServer.client`),
and TLS material comes from ``trustme``.  Missing binaries raise ``RuntimeError``:
tests that need Redis must fail loudly, never skip.

Typical use::

    with RedisServer.start(tmp_path, password="s3cret") as server:
        client = redis.Redis(**server.client_kwargs())

    with RedisCluster.start(tmp_path, masters=3, replicas_per_master=1) as cluster:
        victim = cluster.masters()[0]
        victim.kill()
        cluster.wait_ok()  # waits until a replica has taken over
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import random
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import redis
import trustme
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "RedisCluster",
    "RedisServer",
    "RedisServerError",
    "SilentServer",
    "TlsFiles",
    "free_port",
    "make_tls_files",
    "require_redis_server_binary",
]

HOST = "127.0.0.1"
CLUSTER_SLOTS = 16384
_CLUSTER_BUS_OFFSET = 10000
_SHARED_PORTS = frozenset({6379, 6379 + _CLUSTER_BUS_OFFSET})
_PORT_ATTEMPTS = 5


class RedisServerError(RuntimeError):
    """A private redis-server could not be started, reached or stopped."""


class _PortInUse(RedisServerError):
    """The chosen port was taken by somebody else before redis bound it."""


# --------------------------------------------------------------------------
# binaries and ports
# --------------------------------------------------------------------------


def require_redis_server_binary() -> tuple[str, str]:
    """Return the paths of ``redis-server`` and ``redis-cli``; raise if either is missing."""
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    missing = [name for name, path in (("redis-server", server), ("redis-cli", cli)) if not path]
    if missing:
        raise RuntimeError(
            f"{' and '.join(missing)} not found on PATH; the Redis test suite needs a local "
            "Redis installation (e.g. `apt-get install redis-server`). Refusing to skip."
        )
    assert server is not None and cli is not None
    return server, cli


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int, *, reuse_addr: bool = False) -> bool:
    """Whether ``port`` can be bound; ``reuse_addr`` ignores TIME_WAIT leftovers like redis does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse_addr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _free_cluster_port(exclude: set[int]) -> int:
    """A port ``p`` with ``p`` and its cluster bus port ``p + 10000`` both free.

    Ports are picked below the kernel's ephemeral range where possible, so
    outgoing connections cannot grab the bus port between check and bind.
    """
    low, _ = _ephemeral_range()
    top = low - _CLUSTER_BUS_OFFSET
    lo_pick, hi_pick = (10000, top - 1) if top - 10000 > 500 else (1025, 65535 - _CLUSTER_BUS_OFFSET)
    for _ in range(500):
        port = random.randint(lo_pick, hi_pick)
        bus = port + _CLUSTER_BUS_OFFSET
        if {port, bus} & (exclude | _SHARED_PORTS):
            continue
        if _port_is_free(port) and _port_is_free(bus):
            return port
    raise RedisServerError("could not find a free port pair for a cluster node")


# --------------------------------------------------------------------------
# process bookkeeping
# --------------------------------------------------------------------------

_LIVE: set[RedisServer] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_leftovers() -> None:
    """Last-resort cleanup for servers a test forgot to stop."""
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for server in leftovers:
        with contextlib.suppress(Exception):
            server.stop(timeout=2.0)


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL the child if the test process dies (Linux only)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<log {path} unreadable: {exc}>"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"<log {path} is empty>"


# --------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA plus a server certificate/key for 127.0.0.1 and localhost."""

    ca_cert: Path
    cert: Path
    key: Path


def make_tls_files(tmp_dir: Path) -> TlsFiles:
    """Create a CA and a CA-signed server certificate (SAN IP:127.0.0.1, DNS:localhost) with ``trustme``."""
    tls_dir = Path(tempfile.mkdtemp(prefix="tls-", dir=_ensure_dir(tmp_dir)))
    authority = trustme.CA(organization_name="fs_augment tests")
    server = authority.issue_cert("127.0.0.1", "localhost")
    files = TlsFiles(ca_cert=tls_dir / "ca.crt", cert=tls_dir / "server.crt", key=tls_dir / "server.key")
    authority.cert_pem.write_to_path(str(files.ca_cert))
    server.private_key_pem.write_to_path(str(files.key))
    for index, pem in enumerate(server.cert_chain_pems):  # the leaf first, then any intermediates
        pem.write_to_path(str(files.cert), append=index > 0)
    return files


def _ensure_dir(path: Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------
# single server
# --------------------------------------------------------------------------


class RedisServer:
    """One private ``redis-server`` subprocess; create it with :meth:`start`."""

    host: str = HOST

    def __init__(
        self,
        tmp_dir: Path,
        port: int,
        *,
        password: str | None = None,
        acl_users: Sequence[tuple[str, str]] | None = None,
        tls: TlsFiles | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        """Describe a server without starting it; prefer :meth:`start`."""
        self.tmp_dir = _ensure_dir(tmp_dir)
        self.port = port
        self.password = password
        self.acl_users: list[tuple[str, str]] = list(acl_users or [])
        self.tls = tls
        self.extra_args: list[str] = list(extra_args)
        self.log_path = self.tmp_dir / f"redis-{port}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._argv = self._build_argv()

    # -- construction -----------------------------------------------------

    @classmethod
    def start(
        cls,
        tmp_dir: Path,
        *,
        password: str | None = None,
        acl_users: Sequence[tuple[str, str]] | None = None,
        tls: TlsFiles | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        startup_timeout: float = 10.0,
    ) -> RedisServer:
        """Start redis-server and wait until it answers PING.

        ``acl_users`` are ``(user, password)`` pairs with full permissions.
        Without ``port`` a free one is picked (and re-picked if it was stolen).
        """
        require_redis_server_binary()
        attempts = 1 if port is not None else _PORT_ATTEMPTS
        last_error: Exception | None = None
        for _ in range(attempts):
            server = cls(
                tmp_dir,
                port if port is not None else free_port(),
                password=password,
                acl_users=acl_users,
                tls=tls,
                extra_args=extra_args,
            )
            try:
                server._spawn(fresh=True)
                server._wait_ready(startup_timeout)
            except _PortInUse as exc:
                last_error = exc
                continue
            return server
        raise RedisServerError(f"could not start redis-server: {last_error}")

    def _build_argv(self) -> list[str]:
        server_bin, _ = require_redis_server_binary()
        argv = [server_bin]
        if self.tls is None:
            argv += ["--port", str(self.port)]
        else:
            argv += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.cert),
                "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca_cert),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        argv += [
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.tmp_dir),
            "--dbfilename", f"dump-{self.port}.rdb",
            "--daemonize", "no",
            "--enable-debug-command", "local",
        ]  # fmt: skip
        if self.password is not None:
            argv += ["--requirepass", self.password]
        for user, user_password in self.acl_users:
            argv += ["--user", user, "on", f">{user_password}", "~*", "&*", "+@all"]
        argv += self.extra_args
        return argv

    # -- properties -------------------------------------------------------

    @property
    def pid(self) -> int:
        """PID of the redis-server process (of the latest start)."""
        if self._proc is None:
            raise RedisServerError("redis-server was never started")
        return self._proc.pid

    @property
    def is_running(self) -> bool:
        """True while the process has not exited."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def url(self) -> str:
        """``redis://`` or ``rediss://`` URL; credentials of ``password`` or else the first ACL user."""
        scheme = "rediss" if self.tls is not None else "redis"
        auth = ""
        if self.password is not None:
            auth = f":{quote(self.password, safe='')}@"
        elif self.acl_users:
            user, user_password = self.acl_users[0]
            auth = f"{quote(user, safe='')}:{quote(user_password, safe='')}@"
        return f"{scheme}://{auth}{self.host}:{self.port}"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis(**kwargs)`` matching :attr:`url`."""
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.password is not None:
            kwargs["password"] = self.password
        elif self.acl_users:
            kwargs["username"], kwargs["password"] = self.acl_users[0]
        if self.tls is not None:
            kwargs.update(ssl=True, ssl_ca_certs=str(self.tls.ca_cert))
        return kwargs

    # -- commands ---------------------------------------------------------

    def client(self, *, timeout: float = 5.0) -> redis.Redis:
        """A redis-py client of the default user (as :attr:`url`), text replies, no retries.

        Close it when done (it is a context manager).
        """
        return redis.Redis(
            host=self.host,
            port=self.port,
            password=self.password,
            ssl=self.tls is not None,
            ssl_ca_certs=str(self.tls.ca_cert) if self.tls is not None else None,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )

    def command(self, *args: str | bytes | int, timeout: float = 5.0) -> Any:
        """Run one command as the default user on a fresh connection; replies as redis-py parses them."""
        with self.client(timeout=timeout) as client:
            return client.execute_command(*args)

    def info(self, section: str = "server", *, timeout: float = 5.0) -> dict[str, Any]:
        """``INFO section`` as redis-py parses it (numbers as numbers, ``a=1,b=2`` fields as dicts)."""
        with self.client(timeout=timeout) as client:
            return client.info(section)

    # -- lifecycle --------------------------------------------------------

    def _spawn(self, *, fresh: bool = False) -> None:
        if self.is_running:
            raise RedisServerError(f"redis-server on port {self.port} is already running")
        self._reap()
        if not _port_is_free(self.port, reuse_addr=True):
            # Never even PING a server we did not start (e.g. the shared one on 6379).
            raise _PortInUse(f"port {self.port} is already in use by another process")
        if fresh:
            for stale in (self.tmp_dir / f"dump-{self.port}.rdb", self.log_path):
                stale.unlink(missing_ok=True)
        on_main_thread = threading.current_thread() is threading.main_thread()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmp_dir,
                preexec_fn=_die_with_parent if on_main_thread else None,
            )
        with _LIVE_LOCK:
            _LIVE.add(self)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        rejected_since: float | None = None
        while True:
            proc = self._proc
            assert proc is not None
            if proc.poll() is not None:
                self._reap()
                tail = _log_tail(self.log_path)
                if "Address already in use" in tail:
                    raise _PortInUse(f"port {self.port} is already in use")
                raise RedisServerError(
                    f"redis-server on port {self.port} exited with code {proc.returncode}; log {self.log_path}:\n{tail}"
                )
            try:
                with self.client(timeout=1.0) as client:
                    client.ping()
                    served_by = int(client.info("server").get("process_id", -1))
                if served_by != proc.pid:
                    self._terminate_now()
                    raise _PortInUse(f"port {self.port} is served by another process ({served_by})")
                return
            except redis.BusyLoadingError as exc:  # still loading its snapshot: transient
                last_error = exc
            except (redis.ResponseError, redis.AuthenticationError) as exc:
                # e.g. NOAUTH from a foreign server that owns the port while ours is exiting: one second.
                rejected_since = rejected_since or time.monotonic()
                if time.monotonic() - rejected_since > 1.0:
                    self._terminate_now()
                    raise RedisServerError(
                        f"redis-server on port {self.port} rejected PING: {exc}; "
                        f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                    ) from exc
                last_error = exc
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                self._terminate_now()
                raise RedisServerError(
                    f"redis-server on port {self.port} did not answer PING within {timeout:.0f}s "
                    f"(last error: {last_error!r}); log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def _terminate_now(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def _send_term(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def _finish_stop(self, deadline: float) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._reap()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process, SIGKILL it if still alive after ``timeout`` s; idempotent."""
        self._send_term()
        self._finish_stop(time.monotonic() + timeout)

    def kill(self) -> None:
        """SIGKILL the process immediately (crash simulation); idempotent."""
        self._terminate_now()

    def restart(self, startup_timeout: float = 10.0) -> None:
        """Stop if running, start again on the same port with the same args, wait for PING."""
        self.stop()
        self._spawn()
        self._wait_ready(startup_timeout)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self._proc.pid}" if self.is_running and self._proc else "stopped"
        return f"<RedisServer {self.host}:{self.port} {state}>"


# --------------------------------------------------------------------------
# a server that accepts connections and never answers
# --------------------------------------------------------------------------


class SilentServer:
    """TCP listener on 127.0.0.1 that accepts connections, discards input, never replies."""

    host: str = HOST

    def __init__(self) -> None:
        """Bind, listen and start the background accept/discard thread."""
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port: int = int(self._listener.getsockname()[1])
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"SilentServer:{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``redis://`` URL pointing at the silent port."""
        return f"redis://{self.host}:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        conn, _ = self._listener.accept()
                        conn.setblocking(False)
                        self._selector.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._selector.unregister(sock)
                    sock.close()
        for key in list(self._selector.get_map().values()):
            with contextlib.suppress(OSError):
                key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def close(self) -> None:
        """Stop accepting and close every connection; idempotent."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=5)

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------
# cluster
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _NodeView:
    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str
    slots: str

    @property
    def has_slots(self) -> bool:
        return bool(self.slots)

    @property
    def role(self) -> str:
        return "master" if "master" in self.flags else "replica"


def _parse_cluster_nodes(text: str) -> list[_NodeView]:
    views = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0].split(",", 1)[0]
        port_text = address.rsplit(":", 1)[-1]
        views.append(
            _NodeView(
                node_id=fields[0],
                port=int(port_text) if port_text.isdigit() else 0,
                flags=frozenset(fields[2].split(",")),
                master_id=fields[3],
                slots=" ".join(fields[8:]),
            )
        )
    return views


class RedisCluster:
    """A private Redis Cluster of ``masters * (1 + replicas_per_master)`` redis-servers."""

    host: str = HOST

    def __init__(self, root: Path, nodes: list[RedisServer]) -> None:
        """Wrap already-started nodes; prefer :meth:`start`."""
        self.root = root
        self.nodes = nodes

    @classmethod
    def start(
        cls,
        tmp_dir: Path,
        *,
        masters: int = 3,
        replicas_per_master: int = 0,
        node_timeout_ms: int = 2000,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 20.0,
    ) -> RedisCluster:
        """Start the nodes, ``redis-cli --cluster create`` them and wait for ``cluster_state:ok``."""
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        _, cli_bin = require_redis_server_binary()
        root = Path(tempfile.mkdtemp(prefix="cluster-", dir=_ensure_dir(tmp_dir)))
        cluster = cls(root, [])
        try:
            cluster._start_nodes(masters * (1 + replicas_per_master), node_timeout_ms, list(extra_args))
            create = [
                cli_bin, "--cluster", "create",
                *(f"{HOST}:{node.port}" for node in cluster.nodes),
                "--cluster-replicas", str(replicas_per_master),
                "--cluster-yes",
            ]  # fmt: skip
            result = subprocess.run(
                create, capture_output=True, text=True, timeout=60, check=False,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            (root / "cluster-create.log").write_text(result.stdout + result.stderr)
            if result.returncode != 0 or "[OK] All 16384 slots covered" not in result.stdout:
                raise RedisServerError(
                    f"redis-cli --cluster create failed ({result.returncode}):\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
                )
            cluster.wait_ok(startup_timeout, expect_known_nodes=len(cluster.nodes))
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @staticmethod
    def _node_args(port: int, node_timeout_ms: int) -> list[str]:
        return [
            "--cluster-enabled", "yes",
            "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            # Replicas may always take over; failover speed matters more than data age here.
            "--cluster-replica-validity-factor", "0",
            # Default diskless-sync delay is 5 s, which would delay replica sync.
            "--repl-diskless-sync", "yes",
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip

    def _new_node(self, exclude: set[int], node_timeout_ms: int, extra: list[str]) -> RedisServer:
        port = _free_cluster_port(exclude)
        exclude.add(port)
        return RedisServer(
            self.root / f"node-{port}",
            port,
            extra_args=[*self._node_args(port, node_timeout_ms), *extra],
        )

    def _spawn_node(self, used: set[int], node_timeout_ms: int, extra: list[str]) -> RedisServer:
        for _ in range(_PORT_ATTEMPTS):
            node = self._new_node(used, node_timeout_ms, extra)
            try:
                node._spawn(fresh=True)
            except _PortInUse:
                continue
            return node
        raise RedisServerError("could not find free ports for cluster nodes")

    def _start_nodes(self, count: int, node_timeout_ms: int, extra: list[str]) -> None:
        """Spawn all nodes first (they boot in parallel), then wait for each PING."""
        used: set[int] = set()
        self.nodes = []
        for _ in range(count):
            self.nodes.append(self._spawn_node(used, node_timeout_ms, extra))
        for index in range(count):
            for attempt in range(_PORT_ATTEMPTS):
                try:
                    self.nodes[index]._wait_ready(10.0)
                    break
                except _PortInUse:
                    if attempt == _PORT_ATTEMPTS - 1:
                        raise
                    self.nodes[index] = self._spawn_node(used, node_timeout_ms, extra)

    # -- views ------------------------------------------------------------

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node."""
        return [(node.host, node.port) for node in self.nodes]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<first node port>``."""
        return f"redis://{self.host}:{self.nodes[0].port}"

    def node_by_port(self, port: int) -> RedisServer:
        """The node listening on ``port``."""
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def _topology(self) -> list[_NodeView]:
        errors = []
        for node in self.nodes:
            if not node.is_running:
                continue
            try:
                return _parse_cluster_nodes(node.command("CLUSTER", "NODES", timeout=2.0))
            except (OSError, redis.RedisError) as exc:
                errors.append(f"{node.port}: {exc!r}")
        raise RedisServerError(f"no cluster node answered CLUSTER NODES: {errors}")

    def masters(self) -> list[RedisServer]:
        """Nodes currently flagged master (and not failed) in ``CLUSTER NODES`` of a live node."""
        ports = {
            view.port
            for view in self._topology()
            if "master" in view.flags and not view.flags & {"fail", "fail?", "noaddr", "handshake"}
        }
        return [node for node in self.nodes if node.port in ports]

    def replicas(self) -> list[RedisServer]:
        """Nodes currently flagged replica in ``CLUSTER NODES`` of a live node."""
        ports = {view.port for view in self._topology() if "slave" in view.flags}
        return [node for node in self.nodes if node.port in ports]

    # -- health -----------------------------------------------------------

    def _node_problem(
        self, node: RedisServer, alive: set[int], expect_known_nodes: int | None
    ) -> tuple[str | None, tuple[tuple[str, str, str, str], ...]]:
        """Health problem seen from one node (or None), plus its view of roles/slots."""
        try:
            with node.client(timeout=2.0) as client:
                info = client.cluster("INFO")
                views = _parse_cluster_nodes(client.execute_command("CLUSTER", "NODES"))  # the raw text
                replication = client.info("replication")
        except (OSError, redis.RedisError) as exc:
            return f"node {node.port} unreachable: {exc!r}", ()
        layout = tuple(sorted((v.node_id, v.role, v.master_id, v.slots) for v in views))
        if info.get("cluster_state") != "ok":
            return f"node {node.port}: cluster_state={info.get('cluster_state')}", layout
        for key in ("cluster_slots_assigned", "cluster_slots_ok"):
            if info.get(key) != str(CLUSTER_SLOTS):
                return f"node {node.port}: {key}={info.get(key)}", layout
        if expect_known_nodes is not None and len(views) != expect_known_nodes:
            return f"node {node.port} knows {len(views)}/{expect_known_nodes} nodes", layout
        for view in views:
            if view.role == "master" and view.has_slots:
                if view.port not in alive:
                    return f"node {node.port} still routes slots to dead node {view.port}", layout
                if view.flags & {"fail", "fail?"}:
                    return f"node {node.port} sees slot owner {view.port} as failing", layout
        if replication.get("role") == "slave":
            if replication.get("master_link_status") != "up":
                link = replication.get("master_link_status")
                return f"replica {node.port} not synced (link {link})", layout
        else:
            # After a (diskless) full sync the master streams writes to a replica only
            # once it has ACKed (up to 1 s later); a kill before that loses them.
            own_id = next((v.node_id for v in views if "myself" in v.flags), "")
            expected = {v.port for v in views if v.master_id == own_id and v.role == "replica" and v.port in alive}
            online = {  # redis-py parses "slave0:ip=...,port=...,state=online,..." into a dict
                int(value["port"])
                for key, value in replication.items()
                if key.startswith("slave") and key[5:].isdigit() and isinstance(value, dict)
                and value.get("state") == "online" and isinstance(value.get("port"), int)
            }
            if expected - online:
                return f"master {node.port}: replicas {sorted(expected - online)} not online", layout
        return None, layout

    def _problem(self, expect_known_nodes: int | None) -> str | None:
        """Why the cluster is not healthy yet, or None if it is."""
        alive = {node.port for node in self.nodes if node.is_running}
        if not alive:
            return "no cluster node is running"
        layouts = set()
        for node in self.nodes:
            if node.port in alive:
                problem, layout = self._node_problem(node, alive, expect_known_nodes)
                if problem is not None:
                    return problem
                layouts.add(layout)
        # Roles and slot ownership spread by gossip; wait until every node agrees.
        if len(layouts) > 1:
            return "nodes do not agree yet on roles/slot ownership"
        return None

    def wait_ok(self, timeout: float = 20.0, *, expect_known_nodes: int | None = None) -> None:
        """Wait until every running node reports a healthy, fully covered cluster.

        Healthy means ``cluster_state:ok``, all 16384 slots ok, no slot owned by
        a dead or failing node (so after ``kill()`` this waits for the failover),
        every replica linked to and streamed by its master, and all nodes
        agreeing on roles and slot ownership.
        """
        deadline = time.monotonic() + timeout
        while True:
            problem = self._problem(expect_known_nodes)
            if problem is None:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- node {node.port} ---\n{_log_tail(node.log_path, 15)}" for node in self.nodes)
                raise RedisServerError(f"cluster not ok after {timeout:.0f}s: {problem}\n{tails}")
            time.sleep(0.05)

    def wait_replicated(self, timeout: float = 10.0) -> None:
        """Wait until every running replica has processed all writes its master has seen.

        Replication is asynchronous: call this after writing and before ``kill()``
        if the test expects the data to survive a failover.
        """
        deadline = time.monotonic() + timeout
        while True:
            lagging = []
            for node in self.nodes:
                if not node.is_running:
                    continue
                try:
                    replication = node.info("replication")
                    if replication.get("role") != "slave":
                        continue
                    master = self.node_by_port(int(replication["master_port"]))
                    if not master.is_running:
                        continue  # nothing left to catch up with
                    target = int(master.info("replication")["master_repl_offset"])
                except (OSError, redis.RedisError, KeyError, ValueError):
                    lagging.append(node.port)
                    continue
                if (
                    replication.get("master_link_status") != "up"
                    or int(replication.get("slave_repl_offset", -1)) < target
                ):
                    lagging.append(node.port)
            if not lagging:
                return
            if time.monotonic() > deadline:
                raise RedisServerError(f"replicas {lagging} still lag after {timeout:.0f}s")
            time.sleep(0.02)

    # -- lifecycle --------------------------------------------------------

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM every node by PID, SIGKILL stragglers; idempotent."""
        for node in self.nodes:
            node._send_term()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node._finish_stop(deadline)

    def __enter__(self) -> RedisCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RedisCluster ports={[node.port for node in self.nodes]}>"
