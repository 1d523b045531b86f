"""A private BigQuery emulator (``bqemulator``) process for tests.

The emulator lives in a virtual environment of its own, created by
``.ci/bqemulator-setup.sh`` (its pins for duckdb and sqlglot must not reach
the project's venv).  :meth:`BigQueryEmulator.start` launches it from that
venv on a free port of 127.0.0.1, waits until its REST API answers, and hands
out real ``google.cloud.bigquery.Client`` objects pointed at it.  A missing
venv raises ``RuntimeError``: BigQuery tests must fail loudly, never skip.

Typical use::

    with BigQueryEmulator.start("test-project") as emulator:
        client = emulator.client()
        client.create_dataset("features")

Things the emulator (1.4.0) needs from callers, found by trying them:

* Uploads: a multipart upload (what ``load_table_from_dataframe`` and
  ``load_table_from_json`` use below 5 MB) is rejected because the client
  labels the media part ``*/*``.  ``client.load_table_from_file(buf, table,
  job_config=...)`` without ``size=`` takes the resumable-upload path, which
  the emulator accepts; serialise a DataFrame to Parquet (or NDJSON) first.
  ``insert_rows_json`` and ``insert_rows_from_dataframe`` also work.
  Loading into a table that does not exist yet needs ``schema=`` in the
  job config (Parquet ``autodetect`` fails).
* Results: fetch with ``to_dataframe(create_bqstorage_client=False)``.
* ``QueryJobConfig(destination=...)`` writes nothing; table expirations are
  accepted but ignored (delete scratch tables yourself).
* ``ARRAY<STRUCT<...>>`` parameters: ``UNNEST(@p) AS s`` with ``s.field``
  works, but ``SELECT * FROM UNNEST(@p)`` yields one column and ``USING``
  on the alias fails; select the fields explicitly in a CTE.  Indexing an
  array parameter by a column (``@a[OFFSET(off)]``) is off by one.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.cloud import bigquery

__all__ = ["BigQueryEmulator", "BigQueryEmulatorError", "default_venv"]

HOST = "127.0.0.1"
SETUP_SCRIPT = ".ci/bqemulator-setup.sh"
MARKER_FILE = ".bqemu-setup"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 40
_running: set[BigQueryEmulator] = set()


class BigQueryEmulatorError(RuntimeError):
    """The emulator could not be found, started or reached."""


def default_venv() -> Path:
    """Where ``.ci/bqemulator-setup.sh`` puts the emulator venv when given no argument."""
    configured = os.environ.get("BQEMU_VENV")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "fs_augment" / "bqemu-venv"


def _require_venv(venv: Path) -> Path:
    """The emulator venv's python, set up first (once, by the setup script) when it is missing."""
    python = venv / "bin" / "python"
    if not (venv / MARKER_FILE).is_file() or not python.is_file():
        script = Path(__file__).resolve().parents[2] / SETUP_SCRIPT
        result = subprocess.run(["bash", str(script), str(venv)], capture_output=True, text=True, timeout=900)
        if result.returncode != 0 or not (venv / MARKER_FILE).is_file():
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise BigQueryEmulatorError(
                f"BigQuery emulator venv could not be set up at {venv} by `bash {SETUP_SCRIPT} {venv}` "
                f"(exit {result.returncode}); refusing to skip the BigQuery tests:\n{tail}"
            )
    return python


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<log unreadable: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _port_was_taken(log_path: Path) -> bool:
    """Did uvicorn fail to bind because somebody took the port after we chose it?"""
    try:
        return "address already in use" in log_path.read_text(errors="replace").lower()
    except OSError:
        return False


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _term_with_parent() -> None:
    """preexec_fn: SIGTERM the emulator if the process that started it dies (Linux)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class BigQueryEmulator:
    """One running ``bqemulator`` process; build it with :meth:`start`."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, project: str, workdir: Path) -> None:
        self._process = process
        self.port = port
        self.project = project
        self.workdir = workdir
        self.log_path = workdir / "bqemulator.log"
        self.endpoint = f"http://{HOST}:{port}"

    @property
    def pid(self) -> int:
        return self._process.pid

    # ------------------------------------------------------------------ start

    @classmethod
    def start(
        cls,
        project: str = "test-project",
        *,
        venv: Path | None = None,
        timeout: float = START_TIMEOUT_S,
    ) -> BigQueryEmulator:
        """Launch an emulator from ``venv`` (default :func:`default_venv`) and wait for it."""
        python = _require_venv(Path(venv) if venv is not None else default_venv())
        workdir = Path(tempfile.mkdtemp(prefix="bqemulator-"))
        try:
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                emulator = cls._spawn(python, project, workdir)
                try:
                    emulator._wait_ready(timeout)
                except BigQueryEmulatorError:
                    port_taken = _port_was_taken(emulator.log_path)
                    emulator._terminate()
                    if port_taken and attempt < _PORT_ATTEMPTS:
                        continue
                    raise
                _running.add(emulator)
                return emulator
        except BigQueryEmulatorError:
            raise  # keep the workdir: its full log is named in the message
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _spawn(cls, python: Path, project: str, workdir: Path) -> BigQueryEmulator:
        venv = python.parent.parent
        port = _free_port()
        uploads = workdir / "uploads"
        uploads.mkdir(exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith("BQEMU_")}
        env.update(
            {
                # DuckDB finds the spatial extension that the setup script installed here.
                "HOME": str(venv / "duckdb-home"),
                # The optional avro extension would be downloaded; stay offline.
                "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
                "BQEMU_UPLOAD_STAGING_DIR": str(uploads),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.pop("BIGQUERY_EMULATOR_HOST", None)
        command = [
            str(python),
            "-m",
            "bqemulator",
            "start",
            "--rest-host",
            HOST,
            "--rest-port",
            str(port),
            "--grpc-host",
            HOST,
            "--grpc-port",
            "0",
            "--ephemeral",
            "--project",
            project,
            "--log-format",
            "json",
            "--log-level",
            "info",
        ]
        on_main_thread = threading.current_thread() is threading.main_thread()
        with open(workdir / "bqemulator.log", "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=workdir,  # it reads ./.bqemu.toml: keep stray config out
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_term_with_parent if on_main_thread else None,
            )
        return cls(process, port, project, workdir)

    def _wait_ready(self, timeout: float) -> None:
        url = f"{self.endpoint}/bigquery/v2/projects/{self.project}/datasets"
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while True:
            code = self._process.poll()
            if code is not None:
                raise BigQueryEmulatorError(
                    f"bqemulator exited with code {code} before answering on {self.endpoint}.\n"
                    f"Log tail ({self.log_path}):\n{_log_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                raise BigQueryEmulatorError(
                    f"bqemulator did not answer on {url} within {timeout:.0f} s "
                    f"(last error: {last_error}).\n"
                    f"Log tail ({self.log_path}):\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.1)

    # ------------------------------------------------------------------ use

    def client(self, **kwargs: Any) -> bigquery.Client:
        """A real ``bigquery.Client`` for :attr:`project`, anonymous, aimed at the emulator."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        kwargs.setdefault("project", self.project)
        return bigquery.Client(
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.endpoint),
            **kwargs,
        )

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the emulator's log (for failure messages)."""
        return _log_tail(self.log_path, lines)

    def is_running(self) -> bool:
        return self._process.poll() is None

    # ------------------------------------------------------------------ stop

    def _terminate(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Terminate the emulator by PID and remove its scratch directory; idempotent."""
        self._terminate()
        _running.discard(self)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> BigQueryEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"BigQueryEmulator(endpoint={self.endpoint!r}, project={self.project!r}, pid={self.pid}, {state})"


@atexit.register
def _stop_leftovers() -> None:
    for emulator in list(_running):
        emulator.stop()
