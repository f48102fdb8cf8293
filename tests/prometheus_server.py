"""A real Prometheus server for the telemetry tests, and the local pages it scrapes.

``prometheus_binary()`` finds ``prometheus`` (``$PROMETHEUS``, else on PATH) or installs Debian's
package (``apt-get install prometheus``, which needs root, as CI has); when it can do neither it
raises ``PrometheusUnavailable`` saying why, and the fixture fails under CI and skips elsewhere.
``PrometheusServer`` runs it on a free port with a generated configuration and a 1 s scrape
interval; ``Pages`` serves ``/metrics``-style pages (and canned API answers) that tests change.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

INSTALL = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"]
SCRAPE_INTERVAL = "1s"


class PrometheusUnavailable(Exception):
    """Why there is no Prometheus binary to run."""


def prometheus_binary() -> str:
    """The path of a runnable ``prometheus``, installing Debian's package when it is missing."""
    configured = os.environ.get("PROMETHEUS")
    if configured:
        if not os.access(configured, os.X_OK):
            raise PrometheusUnavailable(f"PROMETHEUS={configured} is not an executable file")
        return configured
    found = shutil.which("prometheus")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise PrometheusUnavailable(
            "prometheus is not installed and there is no apt-get to install it with: install Prometheus 2.x "
            "and put it on PATH or set PROMETHEUS=/path/to/prometheus"
        )
    if os.geteuid() != 0:
        raise PrometheusUnavailable(
            "prometheus is not installed and installing Debian's package needs root: run "
            "`sudo apt-get install -y prometheus`, or set PROMETHEUS=/path/to/prometheus"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], INSTALL):
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            raise PrometheusUnavailable(f"`{' '.join(command)}` did not finish within 600 s") from None
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise PrometheusUnavailable(
                f"`{' '.join(command)}` failed (exit {done.returncode}): " + " | ".join(tail)
            )
    found = shutil.which("prometheus")
    if found is None:
        raise PrometheusUnavailable("apt-get installed the prometheus package but no prometheus is on PATH")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``check`` until it holds; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Page:
    text: str = ""
    status: int = 200
    content_type: str = "text/plain; version=0.0.4; charset=utf-8"
    delay: float = 0.0  # seconds before answering (a slow server)
    hits: int = 0


class Pages:
    """A threaded HTTP server on 127.0.0.1 answering GET and POST on each path with its ``Page``."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                page = pages.get(self.path.split("?", 1)[0])
                if page is None:
                    page = Page("no such page\n", 404)
                page.hits += 1
                if page.delay:
                    time.sleep(page.delay)
                body = page.text.encode()
                try:
                    self.send_response(page.status)
                    self.send_header("Content-Type", page.content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (a timeout test)
                    pass

            do_GET = _answer
            do_POST = _answer

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="pages", daemon=True
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"

    def set(self, path: str, text: str, **options: Any) -> Page:
        page = Page(text, **options)
        self.pages[path] = page
        return page

    def __enter__(self) -> Pages:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class PrometheusServer:
    """``prometheus`` on a free port of 127.0.0.1, scraping ``scrape_configs`` every second."""

    def __init__(self, binary: str, workdir: Path, scrape_configs: list[dict[str, Any]]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": "900ms"},
            "scrape_configs": scrape_configs,
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> PrometheusServer:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, timeout, f"prometheus on {self.url} to be ready (log: {self.log})")
        return self

    def _ready(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(
                f"prometheus exited with {self._process.returncode}: {self.log.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=15)
