"""Validating admission webhooks: the stand-in calls them on writes, like the apiserver does.

On a create (and an update) of an object that a ``ValidatingWebhookConfiguration``
(``admissionregistration.k8s.io/v1``) matches, the stand-in first performs the write as a dry run
(so the webhook sees the object as it would be stored: defaulted, validated, its name generated),
then POSTs an ``AdmissionReview`` v1 to each matching webhook over HTTPS, verifying the server with
the configuration's ``caBundle``, and stores the object only if every webhook allowed it.

What is matched: ``rules`` (apiGroups, apiVersions, resources with ``*``, ``*/*``, ``x/*``,
``*/sub``; operations; scope), ``namespaceSelector`` and ``objectSelector`` (matchLabels and
matchExpressions), ``matchPolicy`` Equivalent (a rule naming another served version matches).
Calls run concurrently, each bounded by ``timeoutSeconds`` (default 10); a call that fails, times
out or answers garbage is skipped under ``failurePolicy: Ignore`` and refuses the write under
``Fail`` (the v1 default). A denial becomes the apiserver's Status: the webhook's code (403 if it
gives none below 400) and ``admission webhook "<name>" denied the request: <message>``.

Client certificates: like kube-apiserver with an admission configuration whose kubeconfig names
the webhook (``--admission-control-config-file``, "Authenticate apiservers" in the Kubernetes docs),
``client_certificates`` maps a name to a certificate and key file the call presents: the URL's
``host:port`` (or ``host`` without a port), a service's ``name.namespace.svc:port``, the same
without ``:443``, else ``*``; no entry, no certificate.

Limits: ``clientConfig.service`` cannot be resolved here, so a test maps services to URLs in
``service_urls``; an unmapped service counts as a failed call. The stored object gets its own uid,
not the one of the dry run the webhook saw. Mutating webhooks are not called.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import logging
import ssl
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from costwarden.sim.addressing import Target, WriteOptions, WriteResult
from costwarden.sim.errors import ApiError
from costwarden.sim.objects import NAMESPACES, ObjectApi
from costwarden.sim.selectors import LabelSelector, SelectorError, label_selector_string

log = logging.getLogger(__name__)

CONFIGS = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
DEFAULT_TIMEOUT = 10.0
USER_INFO = {"username": "costwarden-sim", "groups": ["system:masters", "system:authenticated"]}


class WebhookCallError(Exception):
    """The webhook could not be asked or gave no usable answer; the message says why."""


@dataclass(frozen=True)
class Review:
    """One admission request: what is written, by which operation, through which target."""

    target: Target
    operation: str  # CREATE | UPDATE
    name: str  # as requested: empty for a create by generateName, as on a real apiserver
    obj: Mapping[str, Any]
    old: Mapping[str, Any] | None
    dry_run: bool

    def payload(self, uid: str) -> dict[str, Any]:
        info, meta = self.target.info, self.obj.get("metadata") or {}
        kind = {"group": info.group, "version": self.target.version, "kind": info.kind}
        resource = {"group": info.group, "version": self.target.version, "resource": info.plural}
        options = "CreateOptions" if self.operation == "CREATE" else "UpdateOptions"
        request: dict[str, Any] = {
            "uid": uid,
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            "name": self.name,
            "operation": self.operation,
            "userInfo": USER_INFO,
            "object": self.obj,
            "oldObject": self.old,
            "dryRun": self.dry_run,
            "options": {"kind": options, "apiVersion": "meta.k8s.io/v1"},
        }
        if self.target.subresource:
            request["subResource"] = request["requestSubResource"] = self.target.subresource
        if info.namespaced:
            request["namespace"] = meta.get("namespace", self.target.namespace)
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def _listed(values: Any, wanted: str) -> bool:
    return isinstance(values, list) and ("*" in values or wanted in values)


def _resource_listed(resources: Any, plural: str, subresource: str | None) -> bool:
    for entry in resources if isinstance(resources, list) else []:
        name, _, sub = str(entry).partition("/")
        if subresource is None and not sub and name in ("*", plural):
            return True
        if subresource is not None and name in ("*", plural) and sub in ("*", subresource):
            return True
    return False


def rule_matches(rule: Mapping[str, Any], target: Target, operation: str, equivalent: bool) -> bool:
    """Whether one ``RuleWithOperations`` covers this request (group, version, resource, op, scope)."""
    info = target.info
    versions = rule.get("apiVersions")
    version_ok = _listed(versions, target.version) or (
        equivalent and isinstance(versions, list) and any(v in info.versions for v in versions)
    )
    scope = rule.get("scope") or "*"
    scope_ok = scope in ("*", "Namespaced" if info.namespaced else "Cluster")
    return (
        _listed(rule.get("operations"), operation)
        and _listed(rule.get("apiGroups"), info.group)
        and version_ok
        and _resource_listed(rule.get("resources"), info.plural, target.subresource)
        and scope_ok
    )


def _selects(selector: Any, labels: Mapping[str, Any]) -> bool:
    if not selector:
        return True
    try:
        parsed = LabelSelector.parse(label_selector_string(selector))
    except SelectorError:
        return False
    return parsed.matches({"metadata": {"labels": labels}})


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _ssl_context(ca_bundle: Any) -> ssl.SSLContext:
    if not ca_bundle:
        return ssl.create_default_context()
    try:
        pem = base64.b64decode(str(ca_bundle), validate=True).decode()
        return ssl.create_default_context(cadata=pem)
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError) as exc:
        raise WebhookCallError(f"invalid caBundle: {exc}") from exc


@dataclass
class AdmissionWebhooks:
    """The validating-webhook stage of the stand-in's writes (HTTP and in-process alike)."""

    api: ObjectApi
    service_urls: dict[tuple[str, str], str] = field(default_factory=dict)  # (ns, name) -> base URL
    # kubeconfig user name (host[:port], svc DNS name:port, or *) -> (certificate file, key file)
    client_certificates: dict[str, tuple[str, str]] = field(default_factory=dict)

    def _candidates(self, target: Target, operation: str) -> list[Mapping[str, Any]]:
        """Webhooks whose rules cover the request; selectors are checked once the object is known."""
        found = []
        for config in self.api.store.items(CONFIGS):
            for hook in config.get("webhooks") or []:
                equivalent = hook.get("matchPolicy", "Equivalent") != "Exact"
                if any(rule_matches(r, target, operation, equivalent) for r in hook.get("rules") or []):
                    found.append(hook)
        return found

    def _selected(self, hook: Mapping[str, Any], review: Review) -> bool:
        labels = [_labels(review.obj)] + ([_labels(review.old)] if review.old is not None else [])
        if not any(_selects(hook.get("objectSelector"), each) for each in labels):
            return False
        info = review.target.info
        if info.group == "" and info.plural == "namespaces":
            namespace_labels: Mapping[str, Any] = _labels(review.obj)
        elif info.namespaced:
            name = (review.obj.get("metadata") or {}).get("namespace") or review.target.namespace
            namespace_labels = _labels(self.api.store.get(NAMESPACES, None, str(name)))
        else:
            return True
        return _selects(hook.get("namespaceSelector"), namespace_labels)

    async def create(self, target: Target, body: Mapping[str, Any], opts: WriteOptions) -> WriteResult:
        hooks = self._candidates(target, "CREATE")
        if not hooks:
            return self.api.create(target, body, opts)
        trial = self.api.create(target, body, replace(opts, dry_run=True))
        name = str((body.get("metadata") or {}).get("name") or target.name or "")
        review = Review(target, "CREATE", name, trial.obj, None, opts.dry_run)
        warnings = await self._review(hooks, review)
        pinned = copy.deepcopy(dict(body))
        pinned.setdefault("metadata", {})["name"] = trial.obj["metadata"]["name"]
        result = self.api.create(target, pinned, opts)
        result.warnings.extend(warnings)
        return result

    async def update(
        self, target: Target, write: Callable[[WriteOptions], WriteResult], opts: WriteOptions
    ) -> WriteResult:
        """A replace or patch (``write`` performs it); an apply patch that creates counts as CREATE."""
        info = target.info
        stored = self.api.store.get((info.group, info.plural), target.namespace, target.name or "")
        operation = "UPDATE" if stored is not None else "CREATE"
        hooks = self._candidates(target, operation)
        if not hooks:
            return write(opts)
        old = self.api.read(target) if stored is not None else None
        trial = write(replace(opts, dry_run=True))
        review = Review(target, operation, target.name or "", trial.obj, old, opts.dry_run)
        warnings = await self._review(hooks, review)
        result = write(opts)
        result.warnings.extend(warnings)
        return result

    async def _review(self, hooks: Sequence[Mapping[str, Any]], review: Review) -> list[str]:
        """Ask every selected webhook; raise the first refusal (in configuration order)."""
        selected = [h for h in hooks if self._selected(h, review)]
        outcomes = await asyncio.gather(*(self._ask(h, review) for h in selected))
        warnings: list[str] = []
        for refusal, hook_warnings in outcomes:
            if refusal is not None:
                raise refusal
            warnings.extend(hook_warnings)
        return warnings

    async def _ask(self, hook: Mapping[str, Any], review: Review) -> tuple[ApiError | None, list[str]]:
        name = str(hook.get("name", ""))
        try:
            response = await self._call(hook, review)
        except WebhookCallError as exc:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                log.warning("webhook %s failed, ignored by its failurePolicy: %s", name, exc)
                return None, []
            message = f'Internal error occurred: failed calling webhook "{name}": {exc}'
            return ApiError(500, "InternalError", message), []
        warnings = [str(w) for w in response.get("warnings") or []]
        if response.get("allowed") is True:
            return None, warnings
        return denial(name, response.get("status") or {}), warnings

    def _url(self, hook: Mapping[str, Any]) -> str:
        client = hook.get("clientConfig") or {}
        if client.get("url"):
            return str(client["url"])
        service = client.get("service") or {}
        key = (str(service.get("namespace", "")), str(service.get("name", "")))
        base = self.service_urls.get(key)
        if base is None:
            raise WebhookCallError(
                f'service "{key[0]}/{key[1]}" cannot be resolved by the API stand-in '
                "(map it in AdmissionWebhooks.service_urls)"
            )
        return base.rstrip("/") + str(service.get("path") or "")

    def _client_certificate(self, hook: Mapping[str, Any], url: str) -> tuple[str, str] | None:
        """The certificate the call presents, found as kube-apiserver finds a kubeconfig user."""
        service = (hook.get("clientConfig") or {}).get("service")
        if service:
            target = f"{service.get('name')}.{service.get('namespace')}.svc:{service.get('port') or 443}"
        else:
            target = urlsplit(url).netloc
        names = [target, target.removesuffix(":443"), "*"]
        return next((self.client_certificates[n] for n in names if n in self.client_certificates), None)

    async def _call(self, hook: Mapping[str, Any], review: Review) -> Mapping[str, Any]:
        if "v1" not in (hook.get("admissionReviewVersions") or ["v1"]):
            raise WebhookCallError("the webhook does not accept admission.k8s.io/v1 AdmissionReview")
        url = self._url(hook)
        context = _ssl_context((hook.get("clientConfig") or {}).get("caBundle"))
        certificate = self._client_certificate(hook, url)
        if certificate is not None:
            context.load_cert_chain(*certificate)
        uid = str(uuid.uuid4())
        timeout = aiohttp.ClientTimeout(total=float(hook.get("timeoutSeconds") or DEFAULT_TIMEOUT))
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, json=review.payload(uid), ssl=context) as reply,
            ):
                text = await reply.text()
                if reply.status != 200:
                    raise WebhookCallError(f'Post "{url}": HTTP {reply.status}: {text[:200]}')
                document = json.loads(text)
        except TimeoutError as exc:
            raise WebhookCallError(f'Post "{url}": context deadline exceeded') from exc
        except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            raise WebhookCallError(f'failed to call webhook: Post "{url}": {exc}') from exc
        except ValueError as exc:
            raise WebhookCallError(f"the response is not JSON: {exc}") from exc
        response = document.get("response") if isinstance(document, Mapping) else None
        if not isinstance(response, Mapping) or response.get("uid") != uid:
            raise WebhookCallError(f"expected response.uid={uid!r} in an AdmissionReview response")
        return response


def denial(name: str, status: Mapping[str, Any]) -> ApiError:
    """The apiserver's rendering of a refusal (``webhook/errors.ToStatusErr``)."""
    denied = f'admission webhook "{name}" denied the request'
    code = status.get("code")
    code = code if isinstance(code, int) and code >= 400 else 403
    explanation = status.get("message") or status.get("reason")
    message = f"{denied}: {explanation}" if explanation else f"{denied} without explanation"
    details = status.get("details")
    return ApiError(code, str(status.get("reason") or ""), message, dict(details) if details else None)
