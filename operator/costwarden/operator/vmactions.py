"""The cloud side of a pass: polling the ``--cloud`` scopes, and stopping or terminating VMs.

A VM action is carried out only when everything it rests on is fresh: the VM is still listed,
its scope's last poll was complete and recent (``VMFeed.fresh``), and the adapter, re-reading
each VM just before the call, finds the cluster's tag on it (clouds/*.py). Anything else leaves
the VM alone and says why; a stale scope keeps the action Pending (``waiting_on_clouds``) so it
runs once the cloud answers again, without using up its attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from costwarden.clouds.base import VMActionResult
from costwarden.engine.enforcement import ActionPlan, Target, vm_key
from costwarden.engine.vms import VMRecord
from costwarden.models import Action
from costwarden.operator.polling import publish, waiting_on
from costwarden.operator.runtime import Runtime
from costwarden.operator.vmfeed import VMFeed
from costwarden.operator.workloads import Outcome, TargetResult

log = logging.getLogger(__name__)

CLOUD_TICK = 5.0  # seconds between checks for due scopes (each scope keeps its own interval)
_VERBS = {Action.KILL: "terminate", Action.SUSPEND: "stop"}


async def poll_clouds(runtime: Runtime, feed: VMFeed) -> dict[str, bool]:
    """Poll the scopes that are due and publish what they hold."""
    now = runtime.monotonic()
    polled = await feed.poll(now)
    metrics = runtime.metrics
    publish(feed.sources, polled, now, (metrics.cloud_polls, metrics.cloud_vms, metrics.cloud_up))
    return polled


def waiting_on_clouds(runtime: Runtime, plan: ActionPlan) -> str | None:
    """Why a destructive plan with VM targets must wait (a scope not fresh), else None."""
    feed = runtime.vms
    targets = [t for t in plan.targets if t.kind == "VM"]
    if feed is None or not targets or plan.dry_run or plan.skipped:
        return None
    now = runtime.monotonic()
    return waiting_on((vm.scope for vm in _records(feed, targets) if not feed.fresh(vm.scope, now)), "VM")


async def act_on_vms(runtime: Runtime, action: Action, targets: Sequence[Target]) -> list[TargetResult]:
    """Terminate (Kill) or stop (Suspend) the VM targets: workers first, heads after them."""
    feed = runtime.vms
    verb = _VERBS.get(action)
    if feed is None or verb is None:
        why = (
            "the operator watches no cloud (--cloud)" if feed is None else f"{action.value} leaves VMs alone"
        )
        return [TargetResult(f"VM {t.name}", Outcome.SKIPPED, why) for t in targets]
    results: list[TargetResult] = []
    chosen: list[VMRecord] = []
    now = runtime.monotonic()
    for target in targets:
        vm = feed.record(vm_key(target))
        if vm is None:
            results.append(TargetResult(f"VM {target.name}", Outcome.GONE, "no longer listed by its cloud"))
        elif not feed.fresh(vm.scope, now):
            results.append(
                TargetResult(_name(vm), Outcome.THROTTLED, f"{vm.scope} answer is stale: not acting")
            )
        else:
            chosen.append(vm)
    for heads in (False, True):  # workers first, as sky down does
        batch = [vm for vm in chosen if vm.is_head == heads]
        for scope in sorted({vm.scope for vm in batch}):
            in_scope = [vm for vm in batch if vm.scope == scope]
            if runtime.kube.dry_run:
                log.info("dry-run: would %s %s", verb, ", ".join(vm.vm_id for vm in in_scope))
                results.extend(TargetResult(_name(vm), Outcome.DRY_RUN, f"would {verb}") for vm in in_scope)
                continue
            if not runtime.acting():
                return results
            answered = await feed.act(scope, verb, in_scope)
            results.extend(_result(vm, answered) for vm in in_scope)
    return results


def _records(feed: VMFeed, targets: Sequence[Target]) -> list[VMRecord]:
    return [vm for vm in (feed.record(vm_key(t)) for t in targets) if vm is not None]


def _name(vm: VMRecord) -> str:
    return f"VM {vm.cloud}:{vm.vm_id}"


def _result(vm: VMRecord, answered: Sequence[VMActionResult]) -> TargetResult:
    found = next((r for r in answered if r.vm_id == vm.vm_id), None)
    if found is None:
        return TargetResult(_name(vm), Outcome.FAILED, "the cloud adapter did not answer for it")
    if found.ok:
        return TargetResult(_name(vm), Outcome.DONE, found.message)
    return TargetResult(_name(vm), Outcome.THROTTLED if found.transient else Outcome.FAILED, found.message)
