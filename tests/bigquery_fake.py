"""A local HTTP fake of the BigQuery REST API (v2), enough for the real ``bigquery.Client``:
``tables.get``, ``jobs.query``, ``jobs.insert``, ``jobs.get`` and ``jobs.getQueryResults`` with
pages (``pageToken``), rows in the API's ``f``/``v`` form.

The fake does not run SQL: the test gives ``answer(sql, params) -> (schema fields, rows)`` and
reads back what was sent (``queries``). Point a client at it with
``bigquery.Client(project=..., credentials=AnonymousCredentials(),
client_options={"api_endpoint": fake.url})``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Field = dict[str, Any]  # {"name": ..., "type": ..., "mode": ...}
Answer = Callable[[str, dict[str, Any]], tuple[list[Field], list[dict[str, Any]]]]


def _cell(value: Any, int64_timestamps: bool) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        micros = int(value.timestamp() * 1_000_000)
        return str(micros) if int64_timestamps else f"{micros / 1_000_000:.6f}"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _params(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in body.get("queryParameters", []):
        value = p["parameterValue"]
        if "arrayValues" in value:
            out[p["name"]] = [v.get("value") for v in value["arrayValues"]]
        else:
            out[p["name"]] = value.get("value")
    return out


@dataclass
class FakeBigQuery:
    tables: dict[str, list[Field]] = field(default_factory=dict)  # "project.dataset.table" -> schema
    answer: Answer | None = None
    page_size: int = 2
    fail: tuple[int, str, str] | None = None  # (status, reason, message) for every call
    queries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_query(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        sql = body.get("query") or body["configuration"]["query"]["query"]
        params = _params(body if "query" in body else body["configuration"]["query"])
        assert self.answer is not None
        fields, rows = self.answer(sql, params)
        with self._lock:
            self.queries.append((sql, params))
            job_id = f"job_{len(self.jobs) + 1}"
            self.jobs[job_id] = {"project": project, "sql": sql, "fields": fields, "rows": rows}
        return self.page(job_id, 0, int64=bool(body.get("formatOptions", {}).get("useInt64Timestamp")))

    def page(self, job_id: str, start: int, int64: bool, size: int | None = None) -> dict[str, Any]:
        job = self.jobs[job_id]
        size = self.page_size if size is None else size
        chunk = job["rows"][start : start + size]
        names = [f["name"] for f in job["fields"]]
        response: dict[str, Any] = {
            "kind": "bigquery#queryResponse",
            "jobReference": {"projectId": job["project"], "jobId": job_id, "location": "US"},
            "jobComplete": True,
            "schema": {"fields": job["fields"]},
            "totalRows": str(len(job["rows"])),
            "rows": [{"f": [{"v": _cell(row.get(n), int64)} for n in names]} for row in chunk],
        }
        if start + size < len(job["rows"]):
            response["pageToken"] = str(start + size)
        return response

    def job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        return {
            "kind": "bigquery#job",
            "id": f"{job['project']}:US.{job_id}",
            "jobReference": {"projectId": job["project"], "jobId": job_id, "location": "US"},
            "configuration": {"query": {"query": job["sql"]}, "jobType": "QUERY"},
            "status": {"state": "DONE"},
            "statistics": {"query": {"totalBytesProcessed": "0", "statementType": "SELECT"}},
        }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBigQuery

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path.removeprefix("/bigquery/v2").strip("/").split("/")
        fake.calls.append(f"{method} /{'/'.join(path)}")
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        if fake.fail is not None:
            status, reason, message = fake.fail
            error = {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}
            return self._send(status, {"error": error})
        match (method, path):
            case ("GET", ["projects", p, "datasets", d, "tables", t]):
                schema = fake.tables.get(f"{p}.{d}.{t}")
                if schema is None:
                    return self._send(
                        404, {"error": {"code": 404, "message": f"Not found: Table {p}:{d}.{t}"}}
                    )
                return self._send(
                    200,
                    {
                        "kind": "bigquery#table",
                        "id": f"{p}:{d}.{t}",
                        "tableReference": {"projectId": p, "datasetId": d, "tableId": t},
                        "schema": {"fields": schema},
                    },
                )
            case ("POST", ["projects", p, "queries"]):
                return self._send(200, fake.run_query(p, body))
            case ("POST", ["projects", p, "jobs"]):
                page = fake.run_query(p, body)
                return self._send(200, fake.job(page["jobReference"]["jobId"]))
            case ("GET", ["projects", _p, "jobs", job_id]):
                return self._send(200, fake.job(job_id))
            case ("GET", ["projects", _p, "queries", job_id]):
                size = int(query["maxResults"]) if "maxResults" in query else None
                int64 = str(query.get("formatOptions.useInt64Timestamp", "")).lower() == "true"
                return self._send(200, fake.page(job_id, int(query.get("pageToken", 0)), int64, size))
        return self._send(404, {"error": {"code": 404, "message": f"no route {method} {self.path}"}})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")


@contextmanager
def serve(fake: FakeBigQuery) -> Iterator[FakeBigQuery]:
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
