"""The admission webhook authenticates its caller with ``--webhook-client-ca`` (docs/security.md,
finding 4): the operator's own server (``admission.webhook_server``, kopf's aiohttp server) is
started as the operator starts it and probed over raw sockets, then the whole operator is called
by the stand-in API server with and without the client certificate its admission configuration
would give it.

- with the client CA, a client presenting a certificate it signed gets its AdmissionReview
  answered; one presenting none, or one another CA signed, is refused at the handshake and never
  reaches the handler (TLS 1.2: the handshake itself fails; TLS 1.3, where the client finishes
  first: the connection is dropped unanswered);
- ``--webhook-client-name`` narrows that to certificates with these subject CNs (403 otherwise);
- without the flag, any client is answered, as before;
- a missing file, or one that is not a PEM CA bundle, stops ``costwarden run`` at once with exit
  status 2 and a message naming the flag and the file.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from costwarden.operator import admission
from costwarden.operator.settings import OperatorSettings
from costwarden.sim.errors import ApiError
from tests.component.conftest import ROOT, free_port
from tests.component.test_admission import GUARDED, SKY, head_pod, phase, seed, webhooks
from tests.component.test_security_webhook import REVIEW, make_ca, write_cert_dir

HOST = "costwarden.costwarden.svc"
API_SERVER_CN = "kube-apiserver-webhook-client"
PEM = serialization.Encoding.PEM


def dropped(outcome: str) -> bool:
    """What a TLS 1.3 client sees when the server refuses its certificate after the client's
    Finished: the connection closed, or reset, with no HTTP answer."""
    return outcome == "closed without an answer" or outcome.startswith(
        "refused after the client's part of the handshake: "
    )


@dataclass(frozen=True)
class Client:
    """A client certificate and its key, as files (what a kubeconfig user's client-certificate
    and client-key point at)."""

    cert: Path
    key: Path


def write_ca(folder: Path, name: str) -> tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca, key = make_ca(name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.crt"
    path.write_bytes(ca.public_bytes(PEM))
    return path, ca, key


def issue_client(
    folder: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, common_name: str
) -> Client:
    """A client-authentication certificate for ``common_name`` signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    stem = f"{common_name}-{ca.subject.rfc4514_string().split('=')[-1]}"
    client = Client(folder / f"{stem}.crt", folder / f"{stem}.key")
    client.cert.write_bytes(certificate.public_bytes(PEM))
    client.key.write_bytes(
        key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return client


@dataclass
class Pki:
    server_dir: Path  # tls.crt, tls.key, ca.crt of the serving certificate for HOST
    client_ca: Path  # the CA bundle given to --webhook-client-ca
    api_server: Client  # signed by client_ca, CN API_SERVER_CN
    other_cn: Client  # signed by client_ca, another CN
    stranger: Client  # CN API_SERVER_CN, signed by another CA
    leaf_as_ca: Path = field(init=False)  # a certificate that is no CA, given where a CA belongs

    def __post_init__(self) -> None:
        self.leaf_as_ca = self.api_server.cert


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    server_dir = write_cert_dir(tmp_path / "webhook", [HOST, "127.0.0.1"])
    client_ca, ca, ca_key = write_ca(tmp_path / "client-ca", "apiserver-webhook-client-ca")
    _, other, other_key = write_ca(tmp_path / "other-ca", "somebody-else")
    clients = tmp_path / "clients"
    clients.mkdir()
    return Pki(
        server_dir=server_dir,
        client_ca=client_ca,
        api_server=issue_client(clients, ca, ca_key, API_SERVER_CN),
        other_cn=issue_client(clients, ca, ca_key, "someone-in-the-cluster"),
        stranger=issue_client(clients, other, other_key, API_SERVER_CN),
    )


def client_context(pki: Pki, client: Client | None, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.server_dir / "ca.crt"))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    if maximum is not None:
        context.maximum_version = maximum
    return context


async def attempt(port: int, context: ssl.SSLContext) -> str:
    """POST an AdmissionReview over TLS: the response's status line, or where and how it failed."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=HOST), timeout=10
        )
    except (ssl.SSLError, ConnectionError) as exc:
        return f"handshake refused: {type(exc).__name__}: {exc}"
    body = json.dumps(REVIEW).encode()
    head = (
        f"POST /{admission.HANDLER_ID} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    except (ssl.SSLError, ConnectionError) as exc:
        return f"refused after the client's part of the handshake: {type(exc).__name__}: {exc}"
    finally:
        writer.close()
    return answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed without an answer"


@dataclass
class Serving:
    port: int
    server: admission.WebhookServer
    reviews: list[dict[str, Any]]  # what reached the handler


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    """Start the operator's webhook server for some settings; stop every one at the end."""
    running: list[AsyncIterator[Any]] = []

    async def start(settings: OperatorSettings) -> Serving:
        admission.check_settings(settings, datetime.now(UTC))  # as the operator does first
        server = admission.webhook_server(settings)
        reviews: list[dict[str, Any]] = []

        async def review(request: dict[str, Any], **_: Any) -> dict[str, Any]:
            reviews.append(request)
            return {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": request["request"]["uid"], "allowed": True},
            }

        serving = server(review)
        running.append(serving)
        await anext(serving)
        return Serving(settings.webhook_port, server, reviews)

    yield start
    for serving in running:
        await serving.aclose()  # type: ignore[attr-defined]


def settings_for(pki: Pki, **overrides: Any) -> OperatorSettings:
    return OperatorSettings(
        webhook_port=free_port(),
        webhook_addr="127.0.0.1",
        webhook_host=HOST,
        webhook_cert_dir=pki.server_dir,
        **overrides,
    )


async def test_only_a_client_certificate_the_ca_signed_is_answered(pki: Pki, serve: Any) -> None:
    on = await serve(settings_for(pki, webhook_client_ca=pki.client_ca))
    context = on.server._build_ssl()[1]
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    trusted = [dict(c["subject"][0])["commonName"] for c in context.get_ca_certs()]
    assert trusted == ["apiserver-webhook-client-ca"], "only the given CA, no system roots"

    assert await attempt(on.port, client_context(pki, pki.api_server)) == "HTTP/1.1 200 OK"
    assert len(on.reviews) == 1

    refused = {
        "none (TLS 1.3)": await attempt(on.port, client_context(pki, None)),
        "other CA (TLS 1.3)": await attempt(on.port, client_context(pki, pki.stranger)),
        "none (TLS 1.2)": await attempt(on.port, client_context(pki, None, ssl.TLSVersion.TLSv1_2)),
        "other CA (TLS 1.2)": await attempt(
            on.port, client_context(pki, pki.stranger, ssl.TLSVersion.TLSv1_2)
        ),
    }
    assert len(on.reviews) == 1, f"a refused client reached the handler: {refused}"
    assert not [how for how in refused.values() if how.startswith("HTTP/")], refused
    # TLS 1.2: the handshake itself fails (asyncio's server drops the connection, no alert).
    assert refused["none (TLS 1.2)"].startswith("handshake refused"), refused
    assert refused["other CA (TLS 1.2)"].startswith("handshake refused"), refused
    # TLS 1.3: the client's side of the handshake completes first; the server then drops the
    # connection unanswered.
    assert dropped(refused["none (TLS 1.3)"]), refused
    assert dropped(refused["other CA (TLS 1.3)"]), refused

    # Any CN the CA signed is accepted when no name is configured.
    assert await attempt(on.port, client_context(pki, pki.other_cn)) == "HTTP/1.1 200 OK"
    assert len(on.reviews) == 2


async def test_client_names_narrow_the_accepted_certificates(pki: Pki, serve: Any) -> None:
    on = await serve(
        settings_for(pki, webhook_client_ca=pki.client_ca, webhook_client_names=(API_SERVER_CN,))
    )
    assert await attempt(on.port, client_context(pki, pki.api_server)) == "HTTP/1.1 200 OK"
    forbidden = await attempt(on.port, client_context(pki, pki.other_cn))
    assert forbidden == "HTTP/1.1 403 client certificate not accepted"
    assert dropped(await attempt(on.port, client_context(pki, pki.stranger)))
    assert len(on.reviews) == 1


async def test_without_the_flag_any_client_is_answered_as_before(pki: Pki, serve: Any) -> None:
    on = await serve(settings_for(pki))
    context = on.server._build_ssl()[1]
    assert context is not None and context.verify_mode == ssl.CERT_NONE
    for client in (None, pki.api_server, pki.stranger):
        assert await attempt(on.port, client_context(pki, client)) == "HTTP/1.1 200 OK"
    assert len(on.reviews) == 3


def test_bad_client_ca_settings_are_refused_naming_the_flag_and_file(pki: Pki, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    key_only = tmp_path / "key.pem"
    key_only.write_bytes(pki.api_server.key.read_bytes())
    cases = {
        tmp_path / "missing.pem": "No such file or directory",
        garbage: "not a PEM CA bundle",
        key_only: "not a PEM CA bundle",
        pki.leaf_as_ca: "is not a CA",
    }
    now = datetime.now(UTC)
    for path, why in cases.items():
        with pytest.raises(admission.WebhookSettingsError) as refused:
            admission.check_settings(settings_for(pki, webhook_client_ca=path), now)
        assert str(refused.value).startswith(f"--webhook-client-ca {path}: "), refused.value
        assert why in str(refused.value)
    with pytest.raises(admission.WebhookSettingsError, match="no certificate of the bundle is valid now"):
        admission.check_settings(settings_for(pki, webhook_client_ca=pki.client_ca), now + timedelta(days=2))
    with pytest.raises(admission.WebhookSettingsError, match="--webhook-client-ca needs --webhook-port"):
        admission.check_settings(OperatorSettings(webhook_client_ca=pki.client_ca), now)
    with pytest.raises(
        admission.WebhookSettingsError, match="--webhook-client-name needs --webhook-client-ca"
    ):
        admission.check_settings(settings_for(pki, webhook_client_names=("x",)), now)
    admission.check_settings(settings_for(pki, webhook_client_ca=pki.client_ca), now)  # a good one


@pytest.mark.parametrize("name", ["missing.pem", "garbage.pem"])
def test_costwarden_run_stops_at_once_with_the_reason(tmp_path: Path, name: str) -> None:
    """The pod's view: exit status 2 and one line naming the flag and the file, not a traceback."""
    path = tmp_path / name
    if name == "garbage.pem":
        path.write_text("hello\n")
    command = [sys.executable, "-m", "costwarden.cli", "run", "--metrics-port", "0"]
    command += ["--webhook-port", str(free_port()), "--webhook-client-ca", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"costwarden: --webhook-client-ca {path}: "), done.stderr
    assert "Traceback" not in done.stderr


def test_the_api_server_with_the_certificate_is_answered_and_without_it_is_not(
    cluster: Any, start_operator: Any, pki: Pki
) -> None:
    """The whole operator, kopf-managed, called by the stand-in: with the client certificate its
    admission configuration names for the webhook's host (as kube-apiserver's would), the guard
    refuses a relaunch into an exhausted budget; without it the call fails at the handshake, and
    the failure policy (Ignore) admits the pod: a client CA the API server is not configured for
    switches the guard off (and, under Fail, would refuse every pod the webhook matches)."""
    seed(cluster, GUARDED, block=True)
    start_operator(
        webhook_port=free_port(),
        webhook_addr="127.0.0.1",
        webhook_host="127.0.0.1",
        webhook_client_ca=pki.client_ca,
        webhook_client_names=(API_SERVER_CN,),
    )
    cluster.wait_for(lambda: len(webhooks(cluster)) == 1, timeout=15)
    cluster.wait_for(lambda: phase(cluster, GUARDED) == "Exceeded", timeout=15)
    (hook,) = webhooks(cluster)
    netloc = hook["clientConfig"]["url"].split("/")[2]  # 127.0.0.1:PORT, the kubeconfig user's name
    calls = cluster.cluster.emulator.webhooks

    cluster.delete("v1", "pods", f"{SKY}-head", namespace=GUARDED)
    calls.client_certificates[netloc] = (str(pki.api_server.cert), str(pki.api_server.key))
    with pytest.raises(ApiError) as refused:
        cluster.create(head_pod(GUARDED))
    assert refused.value.code == 403 and "is Exceeded" in refused.value.message

    calls.client_certificates.clear()
    assert cluster.create(head_pod(GUARDED))["metadata"]["name"] == f"{SKY}-head"

    cluster.delete("v1", "pods", f"{SKY}-head", namespace=GUARDED)
    calls.client_certificates[netloc] = (str(pki.other_cn.cert), str(pki.other_cn.key))
    assert cluster.create(head_pod(GUARDED))["metadata"]["name"] == f"{SKY}-head", "403: not an answer"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
