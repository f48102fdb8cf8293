"""The admission guard: a validating webhook that refuses new pods of exhausted budgets.

With ``spec.enforcement.blockNewPods``, a budget in phase Exceeded or Enforced refuses the new
pods it covers; without it SkyPilot's managed-job recovery (or any controller) simply relaunches
what enforcement just killed. The decision is the engine's (``engine.admission.blocking_budget``);
this module serves it through kopf's ``@kopf.on.validate`` and webhook server.

**failurePolicy is ``Ignore`` by default.** The API server consults the webhook on every pod
creation it matches. With ``Fail``, whenever the operator is unreachable (crashed, rescheduling,
its node drained, a certificate expired) *every* pod creation the webhook matches is refused:
Deployments cannot roll, Jobs cannot start, and on a small cluster the operator's own replacement
pod may be unable to start: an outage caused by a cost guard. So the guard is best effort by
default (a relaunch during an operator outage gets through, and is killed again by the next
evaluation once the operator is back), and ``Fail`` is an explicit opt-in (the setting
``webhook_failure_policy``) for those who prefer a hard stop. The managed webhook matches pod
creations in every namespace, kube-system included (the handler admits protected namespaces, but
only while it answers). kopf removes its managed webhook on a graceful shutdown, not when the
process is killed or its node is lost, so ``Fail`` bites exactly then.
Under ``Fail``, an internal error of this handler also refuses the pod (kopf answers 500); under
``Ignore`` it is logged and the pod admitted, consistent with the policy.

kopf takes the failure policy from the handler (``ignore_failures``), and the handler list from the
registry when the operator starts; the policy is a setting, so the registry is built for the
settings (``handlers.build_registry``).

With ``webhook_managed`` (default) kopf creates and maintains the ``ValidatingWebhookConfiguration``
named ``costwarden.dev`` itself, with a ``clientConfig.url`` pointing at ``webhook_host`` and the CA
of the server's certificate. Without it, the Helm chart ships the configuration (a Service
``clientConfig``, its failurePolicy from values) and mounts the certificate into ``webhook_cert_dir``.

**Who may call it.** By default the server authenticates no client (kopf's default): anything that
reaches the port can send an AdmissionReview and learn whether a namespace's budget is exhausted.
With ``webhook_client_ca`` (``--webhook-client-ca``) the TLS context requires a client certificate
signed by that CA (``ssl.CERT_REQUIRED``, through kopf's ``verify_mode``/``verify_cafile``): a
client without one, or with one another CA signed, fails the handshake and never reaches the
handler. The API server presents such a certificate when its admission configuration
(``--admission-control-config-file``, a ``WebhookAdmissionConfiguration`` whose kubeconfig names
the webhook's host) says so; docs/security.md shows it. ``webhook_client_names`` further limits the
accepted certificates to these subject common names (checked per request, answered 403 before the
body is read: Python's ``ssl`` has no verification callback, so not at the handshake). kopf
restarts the server when the serving certificate files change, not the client CA: after rotating
the CA, restart the operator.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import ssl
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp.web
import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from costwarden.engine.admission import blocking_budget
from costwarden.models import CostBudgetSpec, Phase, parse_spec
from costwarden.operator.budgets import BudgetObject
from costwarden.operator.runtime import Runtime, runtime_of
from costwarden.operator.settings import OperatorSettings
from costwarden.records import PodRecord

log = logging.getLogger(__name__)

HANDLER_ID = "costwarden-block-exhausted"
MANAGED_CONFIGURATION = "costwarden.dev"
FAILURE_POLICIES = ("Ignore", "Fail")
CERT_VALIDITY = timedelta(days=365)


def self_signed_certificate(
    hostnames: Collection[str], password: str | None, now: datetime
) -> tuple[bytes, bytes]:
    """A self-signed CA-and-server certificate for ``hostnames`` (IPs become IP SANs), PEM."""
    names = [h for h in dict.fromkeys(hostnames) if h]
    ips, dns = [], []
    for name in names:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            dns.append(name)
        else:
            if not address.is_unspecified:
                ips.append(address)
    common_name = dns[0] if dns else str(ips[0]) if ips else "costwarden-webhook"
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ip) for ip in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


class WebhookSettingsError(ValueError):
    """A webhook setting or file the operator cannot start with; the message names the flag."""


def load_client_ca(path: Path, now: datetime) -> list[x509.Certificate]:
    """The CA certificates of the ``--webhook-client-ca`` bundle at ``path``, checked as the
    server will use them; WebhookSettingsError naming the flag and the file when it is missing,
    unreadable, not PEM certificates, holds a certificate that is no CA, or none currently valid."""
    where = f"--webhook-client-ca {path}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WebhookSettingsError(f"{where}: {exc.strerror or exc}") from exc
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise WebhookSettingsError(
            f"{where}: not a PEM CA bundle (one or more '-----BEGIN CERTIFICATE-----' blocks): {exc}"
        ) from exc
    for number, certificate in enumerate(certificates, 1):
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            continue  # a v1 certificate: OpenSSL takes it as a trust anchor
        if not constraints.ca:
            raise WebhookSettingsError(
                f"{where}: certificate {number} ({certificate.subject.rfc4514_string()}) is not a CA "
                "(basicConstraints CA:FALSE): give the CA that signs the API server's client "
                "certificate, not a certificate it signed"
            )
    if not any(c.not_valid_before_utc <= now <= c.not_valid_after_utc for c in certificates):
        ends = ", ".join(
            f"{c.not_valid_before_utc:%Y-%m-%d} to {c.not_valid_after_utc:%Y-%m-%d}" for c in certificates
        )
        raise WebhookSettingsError(f"{where}: no certificate of the bundle is valid now ({ends})")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:
        raise WebhookSettingsError(f"{where}: OpenSSL refuses it as a CA bundle: {exc}") from exc
    return certificates


def check_settings(settings: OperatorSettings, now: datetime) -> None:
    """Refuse, before anything starts, webhook settings the server could not run with."""
    if settings.webhook_client_names and settings.webhook_client_ca is None:
        raise WebhookSettingsError(
            "--webhook-client-name needs --webhook-client-ca (the CA whose certificates it names)"
        )
    if settings.webhook_client_ca is None:
        return
    if not settings.webhook_port:
        raise WebhookSettingsError("--webhook-client-ca needs --webhook-port (the webhook server it guards)")
    load_client_ca(settings.webhook_client_ca, now)


def common_names(peercert: Any) -> list[str]:
    """The subject common names of a certificate as ``ssl.SSLSocket.getpeercert()`` gives it."""
    if not isinstance(peercert, dict):
        return []
    return [value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"]


class WebhookServer(kopf.WebhookServer):
    """kopf's HTTPS webhook server, its self-signed certificate made with ``cryptography``, and
    optionally only for clients whose certificate has one of ``client_names`` as its subject CN.

    kopf's own generator needs ``certbuilder``/``oscrypto``, and oscrypto 1.3 cannot parse the
    version string of OpenSSL 3.0.10 and later ("Error detecting the version of libcrypto").
    """

    def __init__(self, *, client_names: Iterable[str] = (), **options: Any) -> None:
        super().__init__(**options)
        self.client_names = frozenset(client_names)

    @staticmethod
    def build_certificate(hostnames: Collection[str], password: str | None = None) -> tuple[bytes, bytes]:
        return self_signed_certificate(hostnames, password, datetime.now(UTC))

    async def _serve(  # type: ignore[override]  # kopf's is static; kopf calls it as self._serve
        self, fn: Any, request: aiohttp.web.Request
    ) -> aiohttp.web.Response:
        if self.client_names:
            peer = request.transport.get_extra_info("peercert") if request.transport else None
            names = common_names(peer)
            if not self.client_names.intersection(names):
                log.warning(
                    "webhook request refused: client certificate CN %s is not one of --webhook-client-name",
                    names or "(none)",
                )
                raise aiohttp.web.HTTPForbidden(reason="client certificate not accepted")
        response: aiohttp.web.Response = await kopf.WebhookServer._serve(fn, request)
        return response


def webhook_server(settings: OperatorSettings) -> WebhookServer:
    """The admission server for ``settings``: certificate files from ``webhook_cert_dir``
    (``tls.crt``, ``tls.key``, optional ``ca.crt``: a kubernetes.io/tls Secret, as cert-manager
    writes it; kopf restarts the server when they change), else a self-signed certificate; with
    ``webhook_client_ca``, a client certificate signed by it is required (``check_settings``
    has checked the file)."""
    files: dict[str, Any] = {}
    if settings.webhook_cert_dir is not None:
        directory = settings.webhook_cert_dir
        files = {"certfile": directory / "tls.crt", "pkeyfile": directory / "tls.key"}
        if (directory / "ca.crt").exists():
            files["cafile"] = directory / "ca.crt"
    if settings.webhook_client_ca is not None:
        files.update(verify_mode=ssl.CERT_REQUIRED, verify_cafile=settings.webhook_client_ca)
    return WebhookServer(
        addr=settings.webhook_addr,
        port=settings.webhook_port,
        host=settings.webhook_host,
        client_names=settings.webhook_client_names,
        **files,
    )


def configure(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """Admission settings for kopf: the server, and whether kopf manages the configuration."""
    if not settings.webhook_port:
        return
    kopf_settings.admission.server = webhook_server(settings)
    kopf_settings.admission.managed = MANAGED_CONFIGURATION if settings.webhook_managed else None
    if settings.webhook_client_ca is not None:
        names = ", ".join(settings.webhook_client_names) or "any"
        log.info(
            "admission webhook: only clients with a certificate signed by %s (subject CN: %s) are "
            "answered; the API server must present one (docs/security.md)",
            settings.webhook_client_ca,
            names,
        )


def budgets_of(
    runtime: Runtime, namespace: str, stored: Iterable[BudgetObject] = ()
) -> list[tuple[str, CostBudgetSpec, Phase | None]]:
    """The namespace's valid budgets with their phase: as last evaluated here, else (on a standby,
    or right after a restart before the first evaluation pass) as their stored status says."""
    found = []
    evaluated: set[str] = set()
    for state in runtime.budgets:
        if state.namespace != namespace or state.spec is None:
            continue
        evaluated.add(state.name)
        phase = state.status.phase
        found.append((state.name, state.spec, Phase(phase) if phase is not None else None))
    for budget in stored:
        if budget.namespace != namespace or budget.name in evaluated:
            continue
        try:
            spec = parse_spec(budget.spec)
        except ValidationError:
            continue
        found.append((budget.name, spec, _phase(str(budget.status.get("phase") or ""))))
    return found


def _phase(text: str) -> Phase | None:
    try:
        return Phase(text)
    except ValueError:
        return None


def refusal(
    runtime: Runtime, body: kopf.Body, namespace: str | None, stored: Iterable[BudgetObject] = ()
) -> tuple[str, str] | None:
    """The budget that refuses this pod and its message, or None (the pod is admitted)."""
    pod = PodRecord.from_body(body)
    if not pod.namespace and namespace:
        pod = dataclasses.replace(pod, namespace=namespace)
    protected = frozenset(runtime.settings.protected_namespaces)
    return blocking_budget(pod, budgets_of(runtime, pod.namespace, stored), protected)


def register_admission(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Register the guard if ``webhook_port`` is set, with the configured failure policy."""
    if not settings.webhook_port:
        return
    policy = settings.webhook_failure_policy
    if policy not in FAILURE_POLICIES:
        raise ValueError(f"webhook failure policy {policy!r}: expected Ignore or Fail")
    fail_closed = policy == "Fail"

    @kopf.on.validate(
        "",
        "v1",
        "pods",
        operations=["CREATE"],
        id=HANDLER_ID,
        ignore_failures=not fail_closed,
        registry=registry,
    )
    async def block_exhausted(*, body: kopf.Body, namespace: str | None, memo: Any, **_: Any) -> None:
        try:
            runtime = runtime_of(memo)
            view = memo.get("view") if hasattr(memo, "get") else None
            stored = view.budgets() if view is not None else ()
            found = refusal(runtime, body, namespace, stored)
        except Exception:
            if fail_closed:
                raise
            log.exception("admission guard failed; the pod is admitted (failurePolicy Ignore)")
            return
        if found is not None:
            raise kopf.AdmissionError(found[1], code=403)
