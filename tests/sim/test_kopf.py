"""The real kopf against the stand-in: it sees a custom object, patches status from a timer, posts Events."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from kopf.testing import KopfRunner

from costwarden.sim.testing import ThreadedSimCluster
from tests.sim.crd import API_VERSION, GROUP, budget


def _operator(url: str) -> tuple[kopf.OperatorRegistry, kopf.OperatorSettings]:
    registry = kopf.OperatorRegistry()
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 5
    settings.networking.error_backoffs = [0.1]

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, token="test", default_namespace="default")

    @kopf.on.create(GROUP, "v1", "budgets", registry=registry)
    def created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        kopf.info(body, reason="Seen", message=f"budget {body['metadata']['name']} seen")
        patch.status["seen"] = True

    @kopf.timer(GROUP, "v1", "budgets", interval=0.2, registry=registry)
    def tick(status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
        patch.status["ticks"] = int(status.get("ticks", 0)) + 1
        patch.status["spend"] = 1.5

    @kopf.on.delete(GROUP, "v1", "budgets", registry=registry)
    def deleted(**_: Any) -> None:
        """Having a deletion handler makes kopf put (and later remove) its finalizer."""

    return registry, settings


def test_kopf_operator_round_trip(threaded: ThreadedSimCluster) -> None:
    registry, settings = _operator(threaded.url)
    with KopfRunner(
        ["run", "-A", "--standalone"], registry=registry, settings=settings, timeout=30
    ) as runner:
        threaded.create(budget("b"))

        def ticked_twice() -> bool:
            obj = threaded.get(API_VERSION, "budgets", "b") or {}
            return int(obj.get("status", {}).get("ticks", 0)) >= 2

        threaded.wait_for(ticked_twice, timeout=20)
        obj = threaded.get(API_VERSION, "budgets", "b") or {}
        assert obj["status"]["seen"] is True and obj["status"]["spend"] == 1.5
        assert "kopf.zalando.org/KopfFinalizerMarker" in obj["metadata"]["finalizers"]
        events = threaded.list("v1", "events", "default")
        seen = [e for e in events if e.get("reason") == "Seen"]
        assert seen and seen[0]["involvedObject"]["name"] == "b" and seen[0]["message"] == "budget b seen"

        threaded.delete(API_VERSION, "budgets", "b")
        threaded.wait_for(lambda: threaded.get(API_VERSION, "budgets", "b") is None, timeout=20)
    assert runner.exception is None, runner.output
