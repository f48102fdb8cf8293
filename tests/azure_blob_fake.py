"""A local HTTP fake of Azure Blob storage, enough for the real ``BlobServiceClient``: List Blobs
(XML, ``marker`` pages, ETags) and Get Blob (ranges, ``If-Match``).

Point a client at it with ``BlobServiceClient(fake.account_url, credential=AzureNamedKeyCredential(
"devstoreaccount1", KEY))`` (shared-key signatures are not checked; a bearer token would be
refused by the SDK over plain http).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

ACCOUNT = "devstoreaccount1"
KEY = "ZmFrZS1rZXktZm9yLXRlc3RzLW9ubHk="


@dataclass
class Blob:
    data: bytes
    etag: str
    modified: datetime


@dataclass
class FakeBlobStorage:
    containers: dict[str, dict[str, Blob]] = field(default_factory=dict)
    page_size: int = 3
    fail: tuple[int, str] | None = None  # (status, x-ms-error-code) for every call
    gets: list[str] = field(default_factory=list)
    account_url: str = ""
    _clock: datetime = datetime(2026, 11, 1, tzinfo=UTC)

    def put(self, container: str, name: str, data: bytes) -> None:
        self._clock += timedelta(minutes=1)
        etag = (
            '"0x'
            + hashlib.sha256(data + name.encode() + str(self._clock).encode()).hexdigest()[:16].upper()
            + '"'
        )
        self.containers.setdefault(container, {})[name] = Blob(data, etag, self._clock)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBlobStorage
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {"x-ms-version": "2025-01-05", "x-ms-request-id": "fake", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        body = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{code}</Code><Message>{code}</Message></Error>"
        )
        self._send(status, body.encode(), {"x-ms-error-code": code, "Content-Type": "application/xml"})

    def do_GET(self) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        segments = unquote(parts.path).lstrip("/").split("/", 2)
        if fake.fail is not None:
            return self._error(*fake.fail)
        if len(segments) < 2 or segments[0] != ACCOUNT or segments[1] not in fake.containers:
            return self._error(404, "ContainerNotFound")
        blobs = fake.containers[segments[1]]
        if len(segments) == 2 and query.get("comp") == "list":
            return self._list(blobs, query)
        blob = blobs.get(segments[2]) if len(segments) == 3 else None
        if blob is None:
            return self._error(404, "BlobNotFound")
        fake.gets.append(segments[2])
        if_match = self.headers.get("If-Match")
        if if_match and if_match.strip('"') != blob.etag.strip('"'):
            return self._error(412, "ConditionNotMet")
        headers = {
            "ETag": blob.etag,
            "Last-Modified": format_datetime(blob.modified, usegmt=True),
            "x-ms-blob-type": "BlockBlob",
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        wanted = self.headers.get("x-ms-range") or self.headers.get("Range")
        match = re.match(r"bytes=(\d+)-(\d*)", wanted or "")
        if match is None:
            return self._send(200, blob.data, headers)
        size = len(blob.data)
        start = int(match[1])
        end = min(int(match[2]) if match[2] else size - 1, size - 1)
        if size and start >= size:
            return self._error(416, "InvalidRange")
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return self._send(206, blob.data[start : end + 1], headers)

    def _list(self, blobs: dict[str, Blob], query: dict[str, str]) -> None:
        names = sorted(n for n in blobs if n.startswith(query.get("prefix", "")))
        start = int(query.get("marker") or 0)
        size = int(query.get("maxresults") or self.fake.page_size)
        page = names[start : start + size]
        items = "".join(
            f"<Blob><Name>{escape(n)}</Name><Properties>"
            f"<Last-Modified>{format_datetime(blobs[n].modified, usegmt=True)}</Last-Modified>"
            f"<Etag>{blobs[n].etag}</Etag><Content-Length>{len(blobs[n].data)}</Content-Length>"
            "<Content-Type>application/octet-stream</Content-Type><BlobType>BlockBlob</BlobType>"
            "</Properties></Blob>"
            for n in page
        )
        following = str(start + size) if start + size < len(names) else ""
        body = (
            '<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="'
            f'{self.fake.account_url}" ContainerName="c"><Prefix>{escape(query.get("prefix", ""))}</Prefix>'
            f"<MaxResults>{size}</MaxResults><Blobs>{items}</Blobs><NextMarker>{following}</NextMarker>"
            "</EnumerationResults>"
        )
        self._send(200, body.encode(), {"Content-Type": "application/xml"})


@contextmanager
def serve(fake: FakeBlobStorage) -> Iterator[FakeBlobStorage]:
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.account_url = f"http://127.0.0.1:{server.server_address[1]}/{ACCOUNT}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
