"""A real headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

No websocket client and no port: Chromium reads protocol messages from fd 3 and writes them to fd 4,
each a JSON object ended by a NUL byte. :func:`open_page` loads a page, records every request it
makes, every failed load and every console or security message, and answers questions about the
rendered DOM.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def chromium() -> str:
    """The chromium binary; CI installs Debian's (``.ci/run``)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("chromium is not installed: apt-get install -y chromium")
    return found


class Page:
    """One tab of a headless Chromium, spoken to over the DevTools pipe."""

    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int) -> None:
        self.proc, self._out, self._in = proc, os.fdopen(to_browser, "wb"), os.fdopen(from_browser, "rb")
        self._id = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Log", "Runtime"):
            self.send(f"{domain}.enable", session=True)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._in.fileno(), 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        """Call a protocol method and wait for its result (events seen meanwhile are kept)."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self._out.write(json.dumps(message).encode() + b"\0")
        self._out.flush()
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        """Wait for the next event ``method`` (already seen ones count)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        self._out.close()
        self._in.close()

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def failed_loads(self) -> list[dict[str, Any]]:
        return [e["params"] for e in self.events if e.get("method") == "Network.loadingFailed"]

    def messages(self) -> list[dict[str, Any]]:
        """Console and browser log entries (CSP violations land here)."""
        return [e["params"]["entry"] for e in self.events if e.get("method") == "Log.entryAdded"] + \
            [e["params"] for e in self.events if e.get("method") == "Runtime.exceptionThrown"]

    def screenshot(self, path: Path) -> Path:
        import base64

        data = self.send("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path


@contextmanager
def open_page(url: str, *, width: int = 1200, height: int = 2000) -> Iterator[Page]:
    """A headless Chromium with ``url`` loaded (after its load event); closed on exit."""
    to_read, to_browser = os.pipe()      # chromium reads fd 3
    from_browser, to_write = os.pipe()   # chromium writes fd 4
    profile = tempfile.mkdtemp(prefix="fs_augment_chromium_")

    # above fd 10 first, so that placing them at 3 and 4 in the child cannot overwrite one with the other
    high_read, high_write = fcntl.fcntl(to_read, fcntl.F_DUPFD, 10), fcntl.fcntl(to_write, fcntl.F_DUPFD, 10)

    def pipes() -> None:
        os.dup2(high_read, 3)
        os.dup2(high_write, 4)

    proc = subprocess.Popen(
        [chromium(), "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
         f"--user-data-dir={profile}", f"--window-size={width},{height}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=pipes, close_fds=False)
    for fd in (to_read, to_write, high_read, high_write):
        os.close(fd)
    page = None
    try:
        page = Page(proc, to_browser, from_browser)
        page.send("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        page.send("Page.navigate", session=True, url=url)
        page.wait_for("Page.loadEventFired")
        yield page
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)
        if page is not None:
            page.close()
        else:
            os.close(to_browser)
            os.close(from_browser)
