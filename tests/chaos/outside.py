"""The outside world of the chaos scenario, misbehaving on request: notification receivers
(webhook, Slack, PagerDuty) that fail or hang, and a Prometheus that answers garbage.

``HookReceiver`` serves all three channels on one port: the generic webhook at ``/hook``, Slack's
Web API under ``/slack/`` (``chat.postMessage``, as slack-sdk calls it with ``base_url``) and
PagerDuty's Events API v2 at ``/pagerduty``. It counts deliveries by channel and key: the
webhook's ``Idempotency-Key`` (the notification record's id), PagerDuty's ``dedup_key`` (derived
from it), Slack's message summary (Slack has no idempotency key; the summary names the budget, the
threshold and the spend, so it differs per record; the "Next:" part after it may say what an
earlier attempt did, and the hourly rate in it whether the pass that decided already saw a pod
started at that very moment, so neither is part of the key). Each key is the same on every resend.
``fail_first`` answers 500 to the first deliveries of each key (nothing taken in), ``hang_first``
takes the next ones in but holds the answer past the sender's timeout, so the sender cannot tell
that the message arrived; the rest are acknowledged. Exactly once means one acknowledged delivery
per key: every other delivery was forced by a failure or a hang. (A held Slack message was shown:
Slack cannot deduplicate, so there a hang means the message shows twice; the webhook and PagerDuty
receivers deduplicate by their keys.)

``JunkPrometheus`` answers ``POST /api/v1/query`` with one garbage answer after another: HTML,
cut JSON, JSON of the wrong shape, values that are not numbers, series without pod labels, a
sample dated a day ahead, errors. None of it is a reading that a pod is idle.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 with a free port, as a context manager."""

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> _Server:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


class HookReceiver(_Server):
    def __init__(self, *, fail_first: int = 0, hang_first: int = 0, hang_s: float = 2.0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.hang_first = hang_first
        self.hang_s = hang_s
        self.received: Counter[str] = Counter()  # deliveries, by key
        self.failed: Counter[str] = Counter()  # answered 500, nothing taken in
        self.hung: Counter[str] = Counter()  # taken in, answered only after the sender gave up
        self.acknowledged: Counter[str] = Counter()  # taken in and answered 200 in time
        self._lock = threading.Lock()

    def _arrived(self, key: str) -> str:
        """What this delivery gets: "fail", "hang" or "ok" (the first ones of a key fail, the
        next ones hang)."""
        with self._lock:
            self.received[key] += 1
            number = self.received[key]
            if number <= self.fail_first:
                self.failed[key] += 1
                return "fail"
            if number <= self.fail_first + self.hang_first:
                self.hung[key] += 1
                return "hang"
            self.acknowledged[key] += 1
            return "ok"

    def processed(self) -> set[str]:
        """Keys whose message was taken in (once: a receiver deduplicating by the key)."""
        with self._lock:
            return {key for key in self.received if self.hung[key] or self.acknowledged[key]}

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body: Any = json.loads(self.rfile.read(length) or b"{}")
                channel, key, ok = _delivery(self.path, self.headers.get("Idempotency-Key"), body)
                fate = receiver._arrived(f"{channel}:{key}")
                if fate == "fail":
                    self._answer(500, json.dumps({"ok": False, "error": "receiver down"}).encode())
                    return
                if fate == "hang":
                    time.sleep(receiver.hang_s)  # past the sender's timeout: it has gone
                self._answer(202 if channel == "pagerduty" else 200, ok)

            def _answer(self, code: int, text: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except OSError:
                    pass  # the sender timed out and closed the connection

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> HookReceiver:
        super().__enter__()
        return self


_RATE = re.compile(r" at [0-9.,]+ USD/h")


def _delivery(path: str, idempotency_key: str | None, body: Any) -> tuple[str, str, bytes]:
    """(channel, key, the channel's answer when it takes the message in) of one POST."""
    if path.startswith("/slack/"):
        summary = str(body.get("text")).split(" Next: ", 1)[0]  # what follows may tell a retry apart
        summary = _RATE.sub("", summary)  # "... (82.6%) at 165.12 USD/h: spend ...": the rate races
        return "slack", summary, b'{"ok": true, "ts": "1764590400.000100"}'
    if path.startswith("/pagerduty"):
        key = str(body.get("dedup_key"))
        return "pagerduty", key, json.dumps({"status": "success", "dedup_key": key}).encode()
    return "webhook", idempotency_key or str(body.get("id")), b'{"received": true}'


JUNK: tuple[tuple[int, str, bytes], ...] = (
    (200, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    (200, "application/json", b'{"status": "succ'),
    (200, "application/json", b'{"status": "success", "data": {"resultType": "matrix", "result": "none"}}'),
    (200, "application/json", b"42"),
    (200, "application/json", b""),
    (500, "application/json", b'{"status": "error", "errorType": "internal", "error": "query panicked"}'),
    (503, "text/plain", b"Service Unavailable"),
)


def _series(namespace: str, pod: str, values: list[list[Any]], **labels: str) -> dict[str, Any]:
    metric = {"__name__": "DCGM_FI_DEV_GPU_UTIL", "namespace": namespace, "pod": pod, "UUID": "GPU-0"}
    metric.update(labels)
    return {"metric": metric, "values": values}


class JunkPrometheus(_Server):
    """Garbage for every query; ``pods`` are (namespace, pod) the garbage names, so a parser that
    took it for data would find those pods idle."""

    def __init__(self, pods: list[tuple[str, str]], clock: Any) -> None:
        super().__init__()
        self.pods = pods
        self.clock = clock
        self.queries = 0
        self._answers = itertools.count()

    def _shaped(self, number: int) -> bytes:
        now = self.clock().timestamp()
        namespace, pod = self.pods[number % len(self.pods)]
        weird = [
            [_series(namespace, pod, [[now, "NaN"]])],
            [_series(namespace, pod, [[now, "-3"]])],
            [_series(namespace, pod, [[now, "zero"]])],
            [_series(namespace, pod, [["yesterday", "0"]])],
            [_series(namespace, pod, [[now + 86_400, "0"]])],  # a sample from tomorrow
            [_series(namespace, "", [[now, "0"]])],  # an unallocated GPU
            [{"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL"}, "values": [[now, "0"]]}],  # no pod at all
            [_series(namespace, pod, [[now, "9223372036854775794"]])],  # DCGM's blank
            [_series(namespace, pod, [])],
            [{"metric": "not a map", "values": None}],
        ]
        result = weird[number % len(weird)]
        body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        return json.dumps(body).encode()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        prometheus = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                number = next(prometheus._answers)
                prometheus.queries += 1
                if number % 2:
                    code, kind, text = JUNK[(number // 2) % len(JUNK)]
                else:
                    code, kind, text = 200, "application/json", prometheus._shaped(number // 2)
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> JunkPrometheus:
        super().__enter__()
        return self
