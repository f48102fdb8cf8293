"""The admission webhook serves only TLS, with the certificate and CA it is configured with
(docs/security.md): the operator's own server (``admission.webhook_server``, kopf's aiohttp
server) is started as the operator starts it and probed over raw sockets.

- over TLS, verified against the CA the configuration hands the API server (``caBundle``), for
  the certificate's host name, it answers an AdmissionReview;
- plain HTTP on the same port gets no HTTP answer; a client trusting another CA, or asking for
  another host name, fails the handshake; the server's TLS context refuses anything below 1.2.

tests/chart/test_chart_security.py runs the same probes with the certificate the chart generates.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from costwarden.operator import admission
from costwarden.operator.settings import OperatorSettings
from tests.component.conftest import free_port

REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {"uid": "0df28fbd-5f5f-4c33-9f8a-e2f0b5b2b3c4", "operation": "CREATE"},
}


@dataclass(frozen=True)
class Probes:
    client_config: dict[str, Any]
    verified: str  # the status line of an HTTPS request verified against caBundle
    plain_http: str  # what a plain HTTP request got back ("" for nothing)
    other_ca: str  # the error of a client trusting another CA
    other_host: str  # the error of a client asking for a host the certificate does not name
    minimum_tls: ssl.TLSVersion  # the lowest version the server's context accepts


def make_ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def write_cert_dir(folder: Path, hosts: Sequence[str]) -> Path:
    """A CA and a serving certificate it signed for ``hosts``, as a kubernetes.io/tls Secret
    mounted as files (tls.crt, tls.key, ca.crt)."""
    ca, ca_key = make_ca("costwarden-webhook-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(ca.public_bytes(pem))
    (folder / "tls.crt").write_bytes(certificate.public_bytes(pem))
    (folder / "tls.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder


def other_ca_pem() -> bytes:
    return make_ca("somebody-else")[0].public_bytes(serialization.Encoding.PEM)


async def _request(port: int, context: ssl.SSLContext | None, host: str | None) -> str:
    """POST an AdmissionReview; the response's status line, or "" when none came."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=host if context else None),
        timeout=10,
    )
    body = json.dumps(REVIEW).encode()
    head = (
        f"POST /{admission.HANDLER_ID} HTTP/1.1\r\nHost: {host or '127.0.0.1'}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    except (ConnectionError, ssl.SSLError):
        answer = b""
    finally:
        writer.close()
    return answer.split(b"\r\n", 1)[0].decode(errors="replace")


async def _failure(port: int, context: ssl.SSLContext, host: str) -> str:
    try:
        line = await _request(port, context, host)
    except (ssl.SSLError, ssl.CertificateError, ConnectionError) as exc:
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError(f"the handshake succeeded: {line!r}")


def client_context(cadata: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=cadata.decode())


def server_context(server: admission.WebhookServer) -> ssl.SSLContext:
    """The TLS context kopf builds for ``server`` (as it does on each start)."""
    _, context = server._build_ssl()
    assert context is not None
    return context


async def probe(settings: OperatorSettings, host: str) -> Probes:
    """Start the operator's webhook server for ``settings`` and probe it as above."""
    server = admission.webhook_server(settings)
    assert not server.insecure and server.context is None, "kopf builds a TLS context, never plain HTTP"

    async def review(request: Any, **_: Any) -> dict[str, Any]:
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": request["request"]["uid"], "allowed": True},
        }

    serving = server(review)
    try:
        client_config = dict(await anext(serving))
        cadata = base64.b64decode(client_config["caBundle"])
        port = settings.webhook_port
        return Probes(
            client_config=client_config,
            verified=await _request(port, client_context(cadata), host),
            plain_http=await _request(port, None, None),
            other_ca=await _failure(port, client_context(other_ca_pem()), host),
            other_host=await _failure(port, client_context(cadata), "somewhere-else.example"),
            minimum_tls=server_context(server).minimum_version,
        )
    finally:
        await serving.aclose()


def assert_tls_only(found: Probes) -> None:
    assert found.client_config["url"].startswith("https://")
    assert found.verified == "HTTP/1.1 200 OK"
    assert not found.plain_http.startswith("HTTP/1.1 200"), found.plain_http
    assert "CERTIFICATE_VERIFY_FAILED" in found.other_ca
    assert "Hostname mismatch" in found.other_host
    assert found.minimum_tls >= ssl.TLSVersion.TLSv1_2


def settings_for(cert_dir: Path | None) -> OperatorSettings:
    return OperatorSettings(
        webhook_port=free_port(),
        webhook_addr="127.0.0.1",
        webhook_host="127.0.0.1",
        webhook_cert_dir=cert_dir,
    )


async def test_the_mounted_certificate_is_served_and_its_ca_handed_to_the_api_server(tmp_path: Path) -> None:
    """The chart's way: tls.crt/tls.key/ca.crt mounted; the caBundle is ca.crt exactly."""
    host = "costwarden.costwarden.svc"
    folder = write_cert_dir(tmp_path / "webhook", [host])
    found = await probe(settings_for(folder), host)
    assert base64.b64decode(found.client_config["caBundle"]) == (folder / "ca.crt").read_bytes()
    assert_tls_only(found)


async def test_the_self_signed_certificate_is_the_bundle_when_nothing_is_mounted() -> None:
    """kopf-managed without a cert dir: a self-signed certificate for --webhook-host, which is
    the caBundle the managed configuration carries."""
    found = await probe(settings_for(None), "127.0.0.1")
    cert = x509.load_pem_x509_certificate(base64.b64decode(found.client_config["caBundle"]))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert_tls_only(found)


def test_every_way_to_configure_the_server_is_tls(tmp_path: Path) -> None:
    folder = write_cert_dir(tmp_path / "webhook", ["h"])
    for cert_dir in (None, folder):
        server = admission.webhook_server(settings_for(cert_dir))
        assert server.insecure is False
    (folder / "ca.crt").unlink()
    server = admission.webhook_server(settings_for(folder))
    assert server.cafile is None and server.certfile == folder / "tls.crt"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
