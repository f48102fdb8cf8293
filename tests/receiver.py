"""A local HTTP receiver on 127.0.0.1 standing in for Slack, a webhook and PagerDuty."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWERS: dict[str, tuple[int, str]] = {
    "/api/chat.postMessage": (200, '{"ok": true, "channel": "C1", "ts": "1.2"}'),
    "/hook": (200, '{"received": true}'),
    "/v2/enqueue": (202, '{"status": "success", "message": "Event processed"}'),
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    received: list[Received] = field(default_factory=list)
    status_override: int | None = None  # answer every request with this status (failure tests)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def on(self, path: str) -> list[Received]:
        return [r for r in list(self.received) if r.path == path]

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = dict(pair.split("=", 1) for pair in raw.split("&") if "=" in pair)
                receiver.received.append(Received(self.path, dict(self.headers), body))
                code, text = ANSWERS.get(self.path, (404, "{}"))
                if receiver.status_override is not None:
                    code, text = receiver.status_override, '{"ok": false}'
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
