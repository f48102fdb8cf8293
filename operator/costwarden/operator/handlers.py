"""kopf registrations, built into an explicit registry per run (no module-level registry).

kopf does what it is good at here: login, startup and cleanup, and the admission webhook, on
every replica. Pods, nodes and CostBudgets are watched by our own list + watch informers
(``informer``): kopf's per-object machinery does not scale to every pod of a large cluster.
The leader (a Lease, ``leader``) runs the two passes; the other replicas only serve admission.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from costwarden.engine.reconcile import BillingSnapshot, factor_lookup
from costwarden.operator.admission import register_admission
from costwarden.operator.jobactions import SLURM_TICK, poll_slurm
from costwarden.operator.kube import bearer_token
from costwarden.operator.livefeed import refresh_prices
from costwarden.operator.loops import ClusterView, accrue_all, evaluate_all, run_every
from costwarden.operator.runtime import Runtime, runtime_of
from costwarden.operator.settings import OperatorSettings
from costwarden.operator.vmactions import CLOUD_TICK, poll_clouds

log = logging.getLogger(__name__)


def build_registry(settings: OperatorSettings, view_factory: Any) -> kopf.OperatorRegistry:
    """``view_factory(runtime)`` returns the started watches as a ``ClusterView`` (awaitable)."""
    registry = kopf.OperatorRegistry()
    _register_login(registry)
    _register_passes(registry, view_factory)
    register_admission(registry, settings)
    return registry


def unit_counters(runtime: Runtime) -> set[str]:
    """The counters the budgets' ``spec.unitEconomics`` read."""
    return {
        state.spec.unit_economics.counter
        for state in runtime.budgets
        if state.spec is not None and state.spec.unit_economics is not None
    }


def _register_login(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.login(registry=registry)
    def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
        configuration = runtime_of(memo).kube.configuration
        if not configuration.host:
            raise kopf.PermanentError("the Kubernetes credentials name no API server")
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            token=bearer_token(configuration),
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
        )


def _outside_loops(runtime: Runtime) -> list[asyncio.Task[None]]:
    """The --cloud and --slurm poll loops, for those the operator reads."""
    loops = []
    vms, jobs = runtime.vms, runtime.slurm
    if vms is not None:

        async def clouds() -> None:
            await poll_clouds(runtime, vms)

        tick = min(runtime.settings.cloud_interval, CLOUD_TICK)
        loops.append(asyncio.create_task(run_every(runtime, tick, "clouds", clouds), name="clouds"))
    if jobs is not None:

        async def slurm() -> None:
            await poll_slurm(runtime, jobs)

        tick = min(runtime.settings.slurm_interval, SLURM_TICK)
        loops.append(asyncio.create_task(run_every(runtime, tick, "slurm", slurm), name="slurm"))
    return loops


def _register_passes(registry: kopf.OperatorRegistry, view_factory: Any) -> None:
    """The watches, the leader election, the background work and the two passes live as long
    as the operator."""

    @kopf.on.startup(registry=registry)
    async def start_passes(memo: Any, **_: Any) -> None:
        runtime = runtime_of(memo)
        work = runtime.start_work()
        view: ClusterView = await view_factory(runtime)
        memo["view"] = view
        try:
            feed = runtime.start_gpu_feed(view.pods)
        except ValueError as exc:
            raise kopf.PermanentError(str(exc)) from exc

        async def accrual() -> None:
            await accrue_all(runtime, view)

        async def evaluation() -> None:
            await evaluate_all(runtime, view)

        async def telemetry() -> None:
            if feed.configured and view.synced():
                pods = view.pods()
                snapshot = await feed.refresh(runtime.clock(), pods, unit_counters(runtime))
                runtime.metrics.gpu_rows = tuple(
                    (pod.namespace, pod.name, float(snapshot.readings[pod.uid].utilization))
                    for pod in pods
                    if pod.uid in snapshot.readings
                )

        async def prices() -> None:
            if view.synced():
                await refresh_prices(runtime, view.nodes())

        def reconciled(snapshot: BillingSnapshot) -> None:
            runtime.factors = factor_lookup(snapshot.factors) if snapshot.factors else None
            runtime.reprice()

        extra = _outside_loops(runtime)
        if runtime.billing is not None:
            extra.append(asyncio.create_task(runtime.billing.run(runtime.acting, reconciled), name="billing"))
        if runtime.price_feeds is not None:
            interval = runtime.settings.price_feed_interval
            extra.append(asyncio.create_task(run_every(runtime, interval, "prices", prices), name="prices"))
        memo["passes"] = [
            *extra,
            asyncio.create_task(runtime.leader.run(), name="leader-election"),
            asyncio.create_task(work.writer.run(), name="status-writer"),
            asyncio.create_task(
                run_every(runtime, runtime.settings.accrual_interval, "accrual", accrual), name="accrual"
            ),
            asyncio.create_task(
                run_every(runtime, runtime.settings.interval, "budget", evaluation), name="evaluation"
            ),
            asyncio.create_task(
                run_every(runtime, runtime.settings.telemetry_interval, "telemetry", telemetry),
                name="telemetry",
            ),
        ]

    @kopf.on.cleanup(registry=registry)
    async def stop_passes(memo: Any, **_: Any) -> None:
        runtime = runtime_of(memo)
        for task in memo.get("passes") or []:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runtime.work.close()
        if runtime.billing is not None:
            await runtime.billing.shutdown()
        await runtime.leader.stop()
        view = memo.get("view")
        if view is not None and hasattr(view, "stop"):
            await view.stop()
        await runtime.kube.close()
