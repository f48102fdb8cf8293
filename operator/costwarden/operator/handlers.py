"""kopf registrations, built into an explicit registry per run (no module-level registry).

Pods, nodes and CostBudgets are observed through kopf indexes only: index handlers store nothing
on the objects, unlike on.create/on.update, which would write progress annotations on every pod.
The work itself happens in two passes over those indexes (``loops``), started at startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from costwarden.models import GROUP, PLURAL, VERSION
from costwarden.operator.admission import register_admission
from costwarden.operator.budgets import BudgetObject
from costwarden.operator.kube import bearer_token
from costwarden.operator.loops import StatusWriter, accrue_all, evaluate_all, run_every
from costwarden.operator.runtime import Runtime
from costwarden.operator.settings import OperatorSettings
from costwarden.records import NodeRecord, PodRecord

log = logging.getLogger(__name__)

POD_INDEX = "pods_by_namespace"
NODE_INDEX = "nodes_by_name"
BUDGET_INDEX = "budgets_by_key"


def runtime_of(memo: Any) -> Runtime:
    runtime = memo.get("runtime") if hasattr(memo, "get") else getattr(memo, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise kopf.PermanentError("costwarden runtime missing from the operator memo")
    return runtime


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    _register_login(registry)
    _register_indexes(registry)
    _register_passes(registry)
    if settings.peering is not None:
        _register_peering_heartbeat(registry, settings.heartbeat_interval)
    register_admission(registry)
    return registry


def _register_login(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.login(registry=registry)
    def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
        configuration = runtime_of(memo).kube.configuration
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            token=bearer_token(configuration),
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
        )


def _register_indexes(registry: kopf.OperatorRegistry) -> None:
    @kopf.index("", "v1", "pods", id=POD_INDEX, registry=registry)
    def index_pod(*, body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, PodRecord]:
        return {namespace or "": PodRecord.from_body(body)}

    @kopf.index("", "v1", "nodes", id=NODE_INDEX, registry=registry)
    def index_node(*, body: kopf.Body, name: str, **_: Any) -> dict[str, NodeRecord]:
        return {name: NodeRecord.from_body(body)}

    @kopf.index(GROUP, VERSION, PLURAL, id=BUDGET_INDEX, registry=registry)
    def index_budget(*, body: kopf.Body, **_: Any) -> dict[tuple[str, str], BudgetObject]:
        budget = BudgetObject.from_body(body)
        return {budget.key: budget}

    @kopf.on.event("", "v1", "nodes", registry=registry)
    def indexes_ready(*, memo: Any, **_: Any) -> None:
        """kopf calls resource handlers only once every index is filled from its first listing:
        the first node event says the passes see the whole cluster, not a partial one."""
        runtime_of(memo).indexed = True

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def forget_budget(*, type: str, name: str, namespace: str | None, memo: Any, **_: Any) -> None:
        if type == "DELETED":
            runtime_of(memo).forget_budget((namespace or "", name))


def _register_passes(registry: kopf.OperatorRegistry) -> None:
    """The accrual and evaluation passes live as long as the operator."""

    @kopf.on.startup(registry=registry)
    async def start_passes(memo: Any, **kwargs: Any) -> None:
        runtime = runtime_of(memo)
        pods, nodes, budgets = kwargs[POD_INDEX], kwargs[NODE_INDEX], kwargs[BUDGET_INDEX]

        async def accrual() -> None:
            await accrue_all(runtime, pods, nodes)

        async def evaluation() -> None:
            await evaluate_all(runtime, writer, budgets, pods, nodes)

        writer = StatusWriter(runtime)
        memo["passes"] = [
            asyncio.create_task(writer.run()),
            asyncio.create_task(run_every(runtime, runtime.settings.accrual_interval, "accrual", accrual)),
            asyncio.create_task(run_every(runtime, runtime.settings.interval, "budget", evaluation)),
        ]

    @kopf.on.cleanup(registry=registry)
    async def stop_passes(memo: Any, **_: Any) -> None:
        for task in memo.get("passes") or []:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        runtime_of(memo).kube.close()


def _register_peering_heartbeat(registry: kopf.OperatorRegistry, interval: float) -> None:
    """With peering, kopf pauses its handlers on the replicas that stand by, but not our passes:
    a timer per budget marks this replica as the acting one, and the passes follow it."""

    @kopf.timer(GROUP, VERSION, PLURAL, interval=interval, registry=registry)
    def mark_acting(*, memo: Any, **_: Any) -> None:
        runtime = runtime_of(memo)
        runtime.last_timer_run = runtime.monotonic()
