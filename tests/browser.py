"""A headless Chromium driven over the DevTools protocol, for tests that render HTML for real.

Chromium is started with ``--remote-debugging-pipe``: the protocol runs over two pipes (the
browser reads commands on fd 3 and writes replies and events on fd 4, each message JSON ended
by a NUL byte), so no WebDriver, no port and no Python package is needed. `Browser.open` loads a
page in a fresh tab and records every network request the page makes (``Network`` events),
console messages and uncaught exceptions; `Page.evaluate` runs an expression in it (the
harness's own script: the page may forbid scripts with its Content-Security-Policy, which
the protocol bypasses); `Page.screenshot` saves a PNG.

`chromium_path` finds the browser or, through `required.unavailable`, skips the test
locally and fails it under CI=true (where `.ci/run` installs the Debian package ``chromium``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from required import unavailable

__all__ = ["Browser", "Page", "chromium_path"]

_TIMEOUT_S = 60.0


def chromium_path() -> str:
    """The Chromium binary, or skip (locally) / fail (CI=true) saying how to get it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    unavailable(
        "chromium is not installed (apt-get install chromium): the HTML report tests "
        "render pages in a real headless browser"
    )


class Browser:
    """One headless Chromium process; use as a context manager."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or chromium_path()
        self._profile = tempfile.TemporaryDirectory(prefix="retrain-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipes() -> None:  # in the child: the protocol's fds 3 and 4
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        args = [
            self.binary,
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile.name}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root
        self._proc = subprocess.Popen(
            args,
            preexec_fn=wire_pipes,
            # Kept open across exec: the fds wire_pipes sets up (closing happens after it).
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, 9)
            self._proc.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._profile.cleanup()

    # --- the protocol ------------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from Chromium in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and return its result (events meanwhile are kept)."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + _TIMEOUT_S
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self._events.append(reply)

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + _TIMEOUT_S
        while True:
            for ev in self._events:
                if ev.get("method") == method and ev.get("sessionId") == session:
                    self._events.remove(ev)
                    return ev
            self._events.append(self._read_message(deadline))

    def events(self, session: str, method: str) -> list[dict[str, Any]]:
        return [
            e for e in self._events if e.get("sessionId") == session and e.get("method") == method
        ]

    def open(
        self, path: Path, *, width: int = 1200, height: int = 900, javascript: bool = True
    ) -> Page:
        """Load the file at `path` in a new tab and wait for its load event."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        if not javascript:
            self.send("Emulation.setScriptExecutionDisabled", {"value": True}, session=session)
        self.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        self.wait_event("Page.loadEventFired", session)
        return Page(self, session)


class Page:
    """A loaded tab."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def evaluate(self, expression: str) -> Any:
        """The JSON value of `expression` evaluated in the page."""
        out = self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True},
            session=self.session,
        )
        if "exceptionDetails" in out:
            raise RuntimeError(f"evaluating {expression!r}: {out['exceptionDetails']}")
        return out["result"].get("value")

    def requested_urls(self) -> list[str]:
        """Every URL the page asked the network stack for (the document itself included)."""
        return [
            e["params"]["request"]["url"]
            for e in self.browser.events(self.session, "Network.requestWillBeSent")
        ]

    def console_and_errors(self) -> list[str]:
        """Console messages and uncaught exceptions the page produced."""
        out = [
            json.dumps(e["params"].get("args"))
            for e in self.browser.events(self.session, "Runtime.consoleAPICalled")
        ]
        out += [
            json.dumps(e["params"])
            for e in self.browser.events(self.session, "Runtime.exceptionThrown")
        ]
        return out

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the viewport) at `path`."""
        data = self.browser.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True},
            session=self.session,
        )["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
