"""The cloud VMs of SkyPilot clusters as the operator knows them: polled, accrued, acted on.

One ``VMInventory`` per ``--cloud`` scope (an AWS region, a GCP project, an Azure subscription)
is polled every ``cloud_interval`` seconds in a worker thread (the SDKs block), with the
back-off and staleness rules of ``polling.Sources``: a failed or partial poll never drops a VM
(its spend keeps accruing from its last known state) and never lets a destructive action
through (``fresh``).

Where VM spend lives: a VM's tags cannot be written cheaply every pass, so its figure lives in
the ledger of each budget that covers it (``status.ledger``, keyed ``vm:<cloud>:<id>``) and in
memory here. After a restart the first budget evaluated that holds the VM resumes it from its
ledger figure (``engine.vms.accrue_vm``); a VM no budget ever saw starts from its launch time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from costwarden.clouds.base import Discovery, VMActionResult, VMInventory
from costwarden.engine.outside import CoveredOutside
from costwarden.engine.vms import VMRecord, accrue_vm, vm_node
from costwarden.models import BudgetLedger
from costwarden.operator.polling import Figures, PollSettings, Sources
from costwarden.pricing import PriceBook

log = logging.getLogger(__name__)

Run = Callable[[Callable[[], Any]], Awaitable[Any]]  # how a blocking SDK call is run
VMFeedSettings = PollSettings


async def in_thread(call: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(call)


class VMFeed:
    """The VMs of every ``--cloud`` scope, their accrual, and the door to stop or terminate them."""

    def __init__(self, inventories: Sequence[VMInventory], settings: PollSettings, run: Run = in_thread):
        self.settings = settings
        self._run = run
        self._inventories = {inventory.scope: inventory for inventory in inventories}
        self.sources: Sources[VMRecord] = Sources(self._inventories, settings)
        self._figures = Figures()

    @property
    def scopes(self) -> list[str]:
        return list(self._inventories)

    async def poll(self, now: float) -> dict[str, bool]:
        """Poll every scope that is due; which were polled and whether completely. Never raises."""
        due = self.sources.due(now)
        results = await asyncio.gather(
            *(self._run(self._inventories[scope].discover) for scope in due), return_exceptions=True
        )
        polled: dict[str, bool] = {}
        for scope, result in zip(due, results, strict=True):
            if isinstance(result, Discovery):
                found = result
            else:  # an adapter bug, not a cloud answer: treat as a failed poll
                found = Discovery((), complete=False, error=f"{scope}: {result!r}")
            self.sources.take(scope, found.vms, (found.complete, found.error, found.retry_after), now)
            polled[scope] = found.complete
            if not found.complete:
                wait = self.sources.states[scope].next_poll - now
                log.warning("%s: %s (next poll in %.0f s)", scope, found.error, wait)
        self._figures.retain(vm.key for vm in self.sources.records())
        return polled

    def records(self) -> list[VMRecord]:
        return self.sources.records()

    def record(self, key: str) -> VMRecord | None:
        return self.sources.record(key)

    def fresh(self, scope: str, now: float) -> bool:
        return self.sources.fresh(scope, now)

    def problems(self, now: float) -> tuple[str, ...]:
        return self.sources.problems(now)

    def all_read(self) -> bool:
        return self.sources.all_read()

    def covered(self, vm: VMRecord, prices: PriceBook, now: datetime, ledger: BudgetLedger) -> CoveredOutside:
        """The VM's accrual at ``now``, once per pass however many budgets cover it; the first
        budget to ask after a restart resumes it from its own ledger figure."""

        def price() -> tuple[Decimal, int]:
            found = prices.price(vm_node(vm))
            return found.hourly, found.facts.gpu_count

        return self._figures.covered(
            vm, (now, ledger), price, lambda rate, previous, mark: accrue_vm(vm, rate, now, previous, mark)
        )

    def retain(self, keys: Iterable[str]) -> None:
        self._figures.retain(keys)

    def clear(self) -> None:
        """A new leadership term resumes from the stored ledgers."""
        self._figures.clear()

    async def act(self, scope: str, verb: str, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        """``stop`` or ``terminate`` these VMs of one scope in a worker thread; never raises."""
        inventory = self._inventories.get(scope)
        if inventory is None:
            return [VMActionResult(vm.vm_id, False, f"{scope} is not a --cloud scope") for vm in vms]
        call = inventory.stop if verb == "stop" else inventory.terminate
        try:
            result = await self._run(lambda: call(vms))
        except Exception as exc:  # an adapter bug: report, never crash the action worker
            return [VMActionResult(vm.vm_id, False, f"{scope} {verb}: {exc!r}", transient=True) for vm in vms]
        assert isinstance(result, list)
        return result
