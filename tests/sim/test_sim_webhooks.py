"""The stand-in calls ValidatingWebhookConfigurations over HTTPS, as the apiserver does."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp.web
import pytest

from costwarden.operator.admission import self_signed_certificate
from costwarden.sim.cluster import SimCluster
from costwarden.sim.errors import ApiError
from tests.sim.conftest import T0, Api
from tests.sim.crd import pod

PODS = "/api/v1/namespaces/default/pods"
CONFIGS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
Answer = Callable[[dict[str, Any]], dict[str, Any]]


def allow(_: dict[str, Any]) -> dict[str, Any]:
    return {"allowed": True}


class Webhook:
    """A local HTTPS admission webhook that records each AdmissionReview and answers with ``answer``."""

    def __init__(self, tmp_path: Path) -> None:
        cert, key = self_signed_certificate(["127.0.0.1"], None, T0)
        (tmp_path / "tls.crt").write_bytes(cert)
        (tmp_path / "tls.key").write_bytes(key)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
        self.ca_bundle = base64.b64encode(cert).decode()
        self.reviews: list[dict[str, Any]] = []
        self.answer: Answer = allow
        self.hang = False
        self._released = asyncio.Event()
        self._runner: aiohttp.web.AppRunner | None = None
        self.url = ""

    async def _serve(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        review = await request.json()
        self.reviews.append(review)
        if self.hang:
            await self._released.wait()
        response = {"uid": review["request"]["uid"], **self.answer(review["request"])}
        return aiohttp.web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )

    async def start(self) -> None:
        app = aiohttp.web.Application()
        app.router.add_post("/validate", self._serve)
        self._runner = aiohttp.web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = aiohttp.web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.context)
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}/validate"

    async def stop(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def configuration(self, name: str = "guard.test", **hook: Any) -> dict[str, Any]:
        webhook = {
            "name": name,
            "clientConfig": {"url": self.url, "caBundle": self.ca_bundle},
            "rules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"],
                    "operations": ["CREATE"],
                    "scope": "Namespaced",
                }
            ],
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            **hook,
        }
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [webhook],
        }


@pytest.fixture
async def webhook(tmp_path: Path) -> AsyncIterator[Webhook]:
    server = Webhook(tmp_path)
    await server.start()
    yield server
    await server.stop()


def stored_pods(sim: SimCluster) -> list[str]:
    return [p["metadata"]["name"] for p in sim.store.items(("", "pods"), "default")]


async def test_an_allowed_pod_is_stored_and_the_review_describes_it(
    sim: SimCluster, api: Api, webhook: Webhook
) -> None:
    await sim.create(webhook.configuration())
    reply = await api.post(PODS, {**pod("x"), "metadata": {"generateName": "relaunch-"}})
    assert reply.status == 201
    name = reply.body["metadata"]["name"]
    assert stored_pods(sim) == [name]
    (review,) = webhook.reviews
    assert (review["apiVersion"], review["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    request = review["request"]
    assert request["operation"] == "CREATE"
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert request["requestResource"] == request["resource"]
    assert (request["namespace"], request["name"]) == ("default", "")  # generateName: no name asked for
    assert request["object"]["metadata"]["name"] == name
    assert request["object"]["spec"]["restartPolicy"] == "Always"  # defaulted before review
    assert request["oldObject"] is None and request["dryRun"] is False
    assert request["userInfo"]["username"]
    assert request["options"]["kind"] == "CreateOptions"


async def test_a_denial_refuses_the_create_with_the_webhooks_message(
    sim: SimCluster, api: Api, webhook: Webhook
) -> None:
    webhook.answer = lambda _: {"allowed": False, "status": {"code": 403, "message": "budget is spent"}}
    await sim.create(webhook.configuration())
    reply = await api.post(PODS, pod("x"))
    assert reply.status == 403
    assert reply.body["status"] == "Failure" and reply.body["code"] == 403
    assert reply.body["message"] == 'admission webhook "guard.test" denied the request: budget is spent'
    with pytest.raises(ApiError) as refused:
        await sim.create(pod("y"))
    assert refused.value.code == 403 and "budget is spent" in refused.value.message
    assert stored_pods(sim) == []


async def test_a_denial_without_code_or_message_reads_like_the_apiservers(
    sim: SimCluster, api: Api, webhook: Webhook
) -> None:
    webhook.answer = lambda _: {"allowed": False}
    await sim.create(webhook.configuration())
    reply = await api.post(PODS, pod("x"))
    assert reply.status == 403
    assert reply.body["message"] == 'admission webhook "guard.test" denied the request without explanation'


@pytest.mark.parametrize(("policy", "stored"), [("Ignore", True), ("Fail", False)])
async def test_an_unreachable_webhook_follows_the_failure_policy(
    sim: SimCluster, api: Api, webhook: Webhook, policy: str, stored: bool
) -> None:
    config = webhook.configuration(failurePolicy=policy)
    await webhook.stop()
    await sim.create(config)
    reply = await api.post(PODS, pod("x"))
    assert (reply.status == 201) is stored
    assert (stored_pods(sim) == ["x"]) is stored
    if not stored:
        assert reply.status == 500 and reply.body["reason"] == "InternalError"
        assert 'failed calling webhook "guard.test"' in reply.body["message"]


async def test_a_server_the_ca_bundle_does_not_vouch_for_is_a_failed_call(
    sim: SimCluster, api: Api, webhook: Webhook, tmp_path: Path
) -> None:
    other, _ = self_signed_certificate(["127.0.0.1"], None, T0)
    config = webhook.configuration()
    config["webhooks"][0]["clientConfig"]["caBundle"] = base64.b64encode(other).decode()
    await sim.create(config)
    reply = await api.post(PODS, pod("x"))
    assert reply.status == 500 and "certificate verify failed" in reply.body["message"]
    assert webhook.reviews == [] and stored_pods(sim) == []


async def test_a_slow_webhook_times_out_and_is_ignored(sim: SimCluster, api: Api, webhook: Webhook) -> None:
    webhook.hang = True
    await sim.create(webhook.configuration(failurePolicy="Ignore", timeoutSeconds=1))
    reply = await api.post(PODS, pod("x"))
    assert reply.status == 201 and len(webhook.reviews) == 1


async def test_rules_that_do_not_match_do_not_call_the_webhook(
    sim: SimCluster, api: Api, webhook: Webhook
) -> None:
    webhook.answer = lambda _: {"allowed": False}
    config = webhook.configuration()
    config["webhooks"][0]["rules"][0].update(
        resources=["configmaps", "pods/status"], operations=["CREATE", "UPDATE"]
    )
    await sim.create(config)
    assert (await api.post(PODS, pod("x"))).status == 201
    assert (await api.patch(f"{PODS}/x", {"metadata": {"labels": {"a": "b"}}})).status == 200
    status = await api.patch(f"{PODS}/x/status", {"status": {"phase": "Running"}})
    assert status.status == 403  # pods/status is covered, pods itself is not
    configmap = {"metadata": {"name": "c"}, "data": {}}
    assert (await api.post("/api/v1/namespaces/default/configmaps", configmap)).status == 403


async def test_object_and_namespace_selectors_pick_what_is_reviewed(
    sim: SimCluster, api: Api, webhook: Webhook
) -> None:
    webhook.answer = lambda _: {"allowed": False, "status": {"message": "guarded"}}
    await sim.create(
        webhook.configuration(
            objectSelector={"matchLabels": {"guard": "on"}},
            namespaceSelector={"matchExpressions": [{"key": "team", "operator": "In", "values": ["ml"]}]},
        )
    )
    await sim.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml", "labels": {"team": "ml"}}}
    )
    assert (await api.post(PODS, pod("plain-default"))).status == 201
    assert (await api.post(PODS, pod("labelled-default", labels={"guard": "on"}))).status == 201
    ml = "/api/v1/namespaces/ml/pods"
    assert (await api.post(ml, pod("plain-ml", namespace="ml"))).status == 201
    refused = await api.post(ml, pod("labelled-ml", namespace="ml", labels={"guard": "on"}))
    assert refused.status == 403 and refused.body["message"].endswith("denied the request: guarded")
    assert len(webhook.reviews) == 1


async def test_updates_are_reviewed_with_the_old_object(sim: SimCluster, api: Api, webhook: Webhook) -> None:
    config = webhook.configuration()
    config["webhooks"][0]["rules"][0]["operations"] = ["UPDATE"]
    await sim.create(config)
    await api.post(PODS, pod("x", labels={"v": "1"}))
    assert webhook.reviews == []
    webhook.answer = lambda request: {
        "allowed": request["object"]["metadata"]["labels"]["v"] == "2",
        "status": {"message": "only v2"},
    }
    assert (await api.patch(f"{PODS}/x", {"metadata": {"labels": {"v": "2"}}})).status == 200
    request = webhook.reviews[-1]["request"]
    assert request["operation"] == "UPDATE" and request["options"]["kind"] == "UpdateOptions"
    assert request["oldObject"]["metadata"]["labels"] == {"v": "1"}
    with pytest.raises(ApiError):
        await sim.patch("v1", "pods", "x", {"metadata": {"labels": {"v": "3"}}})
    assert sim.store.get(("", "pods"), "default", "x")["metadata"]["labels"] == {"v": "2"}


async def test_a_dry_run_create_is_reviewed_as_dry_run_and_stores_nothing(
    sim: SimCluster, api: Api, webhook: Webhook
) -> None:
    await sim.create(webhook.configuration())
    reply = await api.post(f"{PODS}?dryRun=All", pod("x"))
    assert reply.status == 201 and stored_pods(sim) == []
    assert webhook.reviews[0]["request"]["dryRun"] is True


async def test_a_service_client_config_needs_a_mapping_in_the_stand_in(
    sim: SimCluster, api: Api, webhook: Webhook
) -> None:
    service = {"namespace": "costwarden", "name": "webhook", "path": "/validate"}
    config = webhook.configuration(clientConfig={"service": service, "caBundle": webhook.ca_bundle})
    await sim.create(config)
    unmapped = await api.post(PODS, pod("x"))
    assert (
        unmapped.status == 500
        and 'service "costwarden/webhook" cannot be resolved' in unmapped.body["message"]
    )
    sim.emulator.webhooks.service_urls[("costwarden", "webhook")] = webhook.url.removesuffix("/validate")
    assert (await api.post(PODS, pod("x"))).status == 201
    assert len(webhook.reviews) == 1


async def test_a_server_side_apply_that_creates_is_reviewed_as_create(
    sim: SimCluster, api: Api, webhook: Webhook
) -> None:
    await sim.create(webhook.configuration())
    reply = await api.patch(f"{PODS}/y?fieldManager=test", pod("y"), "application/apply-patch+yaml")
    assert reply.status == 201
    (review,) = webhook.reviews
    assert review["request"]["operation"] == "CREATE" and review["request"]["name"] == "y"
    assert (
        await api.patch(f"{PODS}/y?fieldManager=test", pod("y"), "application/apply-patch+yaml")
    ).status == 200
    assert len(webhook.reviews) == 1  # the second apply is an UPDATE, which the rule leaves out
