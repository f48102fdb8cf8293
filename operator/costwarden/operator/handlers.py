"""kopf registrations, built into an explicit registry per run (no module-level registry).

Pods and nodes are observed through kopf indexes only: index handlers store nothing on the
objects, unlike on.create/on.update, which would write progress annotations on every pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from costwarden.models import GROUP, PLURAL, VERSION
from costwarden.operator.accrual import accrual_pass
from costwarden.operator.admission import register_admission
from costwarden.operator.budgets import BudgetObject, evaluate
from costwarden.operator.kube import bearer_token
from costwarden.operator.resume import RESUME_ANNOTATION
from costwarden.operator.runtime import Runtime
from costwarden.operator.throttle import status_due
from costwarden.records import NodeRecord, PodRecord

log = logging.getLogger(__name__)

POD_INDEX = "pods_by_namespace"
NODE_INDEX = "nodes_by_name"


def runtime_of(memo: Any) -> Runtime:
    runtime = memo.get("runtime") if hasattr(memo, "get") else getattr(memo, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise kopf.PermanentError("costwarden runtime missing from the operator memo")
    return runtime


def build_registry(interval: float) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    _register_cluster_watch(registry)
    _register_budgets(registry, interval)
    register_admission(registry)
    return registry


def _register_cluster_watch(registry: kopf.OperatorRegistry) -> None:
    """Login, the pod and node indexes, and the accrual loop's lifetime."""

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

    @kopf.index("", "v1", "pods", id=POD_INDEX, registry=registry)
    def index_pod(*, body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, PodRecord]:
        return {namespace or "": PodRecord.from_body(body)}

    @kopf.index("", "v1", "nodes", id=NODE_INDEX, registry=registry)
    def index_node(*, body: kopf.Body, name: str, **_: Any) -> dict[str, NodeRecord]:
        return {name: NodeRecord.from_body(body)}

    @kopf.on.startup(registry=registry)
    async def start_accrual(memo: Any, **kwargs: Any) -> None:
        runtime = runtime_of(memo)
        task = asyncio.create_task(
            _accrual_loop(runtime, kwargs[POD_INDEX], kwargs[NODE_INDEX]), name="accrual"
        )
        memo["accrual_task"] = task

    @kopf.on.cleanup(registry=registry)
    async def stop_accrual(memo: Any, **_: Any) -> None:
        task = memo.get("accrual_task")
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        runtime_of(memo).kube.close()


def _register_budgets(registry: kopf.OperatorRegistry, interval: float) -> None:
    """One timer per CostBudget, and forgetting a budget when it is deleted."""

    @kopf.timer(GROUP, VERSION, PLURAL, interval=interval, registry=registry)
    async def evaluate_budget(
        *,
        body: kopf.Body,
        meta: kopf.Meta,
        name: str,
        namespace: str | None,
        patch: kopf.Patch,
        memo: Any,
        **kwargs: Any,
    ) -> None:
        runtime = runtime_of(memo)
        started = runtime.monotonic()
        runtime.last_timer_run = started
        now = runtime.clock()
        namespace = namespace or ""
        pods = list(kwargs[POD_INDEX].get(namespace, []))
        nodes = runtime.node_map(kwargs[NODE_INDEX])
        budget = BudgetObject(
            namespace=namespace,
            name=name,
            uid=str(meta.get("uid", "")),
            generation=meta.get("generation"),
            spec=dict(body.get("spec") or {}),
            status=dict(body.get("status") or {}),
            resume_requested=RESUME_ANNOTATION in (meta.get("annotations") or {}),
        )
        status, counts = await evaluate(runtime, budget, pods, nodes, now)
        budget_key = (namespace, name)
        since = started - runtime.status_written.get(budget_key, float("-inf"))
        if runtime.kube.dry_run:
            log.info("dry-run: would set status of CostBudget %s/%s: %s", namespace, name, status)
        elif budget.resume_requested or status_due(
            budget.status, status, since, runtime.settings.status_interval
        ):
            patch["status"] = status
            if budget.resume_requested:
                patch["metadata"] = {"annotations": {RESUME_ANNOTATION: None}}
            runtime.status_written[budget_key] = started
            runtime.metrics.api_writes.labels("status", "sent").inc()
        for key, value in counts.items():
            if key.startswith("action_"):
                runtime.metrics.actions.labels(key.removeprefix("action_")).inc(value)
        for key, value in counts.items():
            if key.startswith("event_"):
                runtime.metrics.api_writes.labels("event", key.removeprefix("event_")).inc(value)
        runtime.metrics.reconcile_seconds.labels("budget").observe(runtime.monotonic() - started)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def forget_budget(*, type: str, name: str, namespace: str | None, memo: Any, **_: Any) -> None:
        if type == "DELETED":
            runtime_of(memo).forget_budget((namespace or "", name))


async def _accrual_loop(runtime: Runtime, pod_index: Any, node_index: Any) -> None:
    """Price and accrue every pod each interval; write the spend annotations that are due."""
    while True:
        started = runtime.monotonic()
        if not runtime.acting_peer(started):
            await asyncio.sleep(runtime.settings.accrual_interval)
            continue
        try:
            nodes = runtime.node_map(node_index, max_age=0)
            pods = [record for store in pod_index.values() for record in store]
            counts = await accrual_pass(runtime, pods, nodes, runtime.clock())
            for key, value in counts.items():
                if key.startswith("write_"):
                    runtime.metrics.api_writes.labels("pod_annotation", key.removeprefix("write_")).inc(value)
        except Exception:
            log.exception("accrual pass failed; retrying next interval")
        elapsed = runtime.monotonic() - started
        runtime.metrics.reconcile_seconds.labels("accrual").observe(elapsed)
        await asyncio.sleep(max(0.0, runtime.settings.accrual_interval - elapsed))
