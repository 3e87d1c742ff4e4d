"""Headless Chromium for the e2e tests (Debian package `chromium`): the page's DOM (`--dump-dom`) and a
screenshot taken once the page's scripts have drawn it, over the DevTools protocol (websocket-client, a
dependency of the kubernetes client), since the one-shot `--screenshot` fires before bokeh draws its plots."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                  "--no-first-run", "--no-default-browser-check", "--window-size=1400,1000")

MISSING_CHROMIUM = ("headless Chromium is missing: none of chromium, chromium-browser, google-chrome is on PATH; "
                    "install the Debian package with `apt-get install chromium` (.ci/run installs it)")


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def dump_dom(url: str, *, profile: Path, wait_ms: int = 5000, timeout: float = 90) -> str:
    """The DOM Chromium serialises after loading `url` (and `wait_ms` of virtual time for its scripts)."""
    proc = subprocess.run([chromium() or "chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           f"--virtual-time-budget={wait_ms}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class DevTools:
    """Chromium with a DevTools port; `page(url)` opens a tab and returns its connection."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc = subprocess.Popen([chromium() or "chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                      "--remote-debugging-port=0", "--remote-allow-origins=*", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.proc.poll() is None, f"chromium exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.2)
        self.port = int(port_file.read_text().split()[0])

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def page(self, url: str) -> Page:
        import urllib.request

        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?{url}", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            target = json.loads(response.read())
        return Page(target["webSocketDebuggerUrl"])


class Page:
    """One tab over the DevTools protocol: `evaluate(js)` and `screenshot()` (PNG bytes)."""

    def __init__(self, ws_url: str) -> None:
        import websocket  # websocket-client

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message.get("result") or {}

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return (result.get("result") or {}).get("value")

    def wait_for(self, expression: str, *, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.5)
        raise AssertionError(f"the page never made {expression!r} true (last value {value!r})")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        self.ws.close()


def artifact_dir(fallback: Path) -> Path:
    """Bazel's TEST_UNDECLARED_OUTPUTS_DIR (kept as the test's outputs.zip), else `fallback`."""
    path = Path(os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or fallback)
    path.mkdir(parents=True, exist_ok=True)
    return path
