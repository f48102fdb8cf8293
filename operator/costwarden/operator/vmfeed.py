"""The cloud VMs of SkyPilot clusters as the operator knows them: polled, accrued, acted on.

One ``VMInventory`` per ``--cloud`` scope (an AWS region, a GCP project, an Azure subscription)
is polled every ``cloud_interval`` seconds in a worker thread (the SDKs block); a scope that
fails is polled again after a doubling back-off (capped at ten intervals, never sooner than the
cloud's Retry-After). What a scope last read completely stays the truth until the next complete
read: a failed or partial poll never drops a VM (its spend keeps accruing from its last known
state) and never lets a destructive action through (``fresh``).

Where VM spend lives: a VM's tags cannot be written cheaply every pass, so its figure lives in
the ledger of each budget that covers it (``status.ledger``, keyed ``vm:<cloud>:<id>``) and in
memory here. After a restart the first budget evaluated that holds the VM resumes it from its
ledger figure (``engine.vms.accrue_vm``); a VM no budget ever saw starts from its launch time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from costwarden.clouds.base import Discovery, VMActionResult, VMInventory
from costwarden.engine.ledger import PodAccrual
from costwarden.engine.outside import CoveredOutside
from costwarden.engine.vms import VMMark, VMRecord, accrue_vm, vm_node
from costwarden.models import BudgetLedger
from costwarden.pricing import PriceBook
from costwarden.records import parse_time

log = logging.getLogger(__name__)

Run = Callable[[Callable[[], Any]], Awaitable[Any]]  # how a blocking SDK call is run
MAX_BACKOFF_INTERVALS = 10


async def in_thread(call: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(call)


@dataclass(frozen=True, slots=True)
class VMFeedSettings:
    interval: float = 60.0  # seconds between polls of each scope
    stale_after: float = 0.0  # a scope not read completely for this long is stale; 0: 3 x interval

    @property
    def stale_seconds(self) -> float:
        return self.stale_after or 3 * self.interval


@dataclass
class ScopeState:
    """One scope: what it last read, and how its polls have gone."""

    inventory: VMInventory
    vms: dict[str, VMRecord] = field(default_factory=dict)  # by VMRecord.key
    complete_at: float | None = None  # monotonic time of the last complete poll
    error: str | None = None  # the last poll's error, None after a complete one
    failures: int = 0  # polls in a row that were not complete
    next_poll: float = 0.0  # monotonic

    def take(self, found: Discovery, now: float, interval: float) -> None:
        read = {vm.key: vm for vm in found.vms}
        if found.complete:
            self.vms, self.complete_at, self.error, self.failures = read, now, None, 0
            self.next_poll = now + interval
            return
        self.vms.update(read)  # what was read is newer; nothing unread is dropped
        self.error = found.error or "incomplete answer"
        self.failures += 1
        backoff = interval * min(2 ** (self.failures - 1), MAX_BACKOFF_INTERVALS)
        self.next_poll = now + max(backoff, found.retry_after or 0.0)


class VMFeed:
    """The VMs of every ``--cloud`` scope, their accrual, and the door to stop or terminate them."""

    def __init__(self, inventories: Sequence[VMInventory], settings: VMFeedSettings, run: Run = in_thread):
        self.settings = settings
        self._run = run
        self.scopes = {inventory.scope: ScopeState(inventory) for inventory in inventories}
        self._figures: dict[str, PodAccrual] = {}
        self._pass: dict[str, CoveredOutside] = {}
        self._pass_at: datetime | None = None

    async def poll(self, now: float) -> dict[str, bool]:
        """Poll every scope that is due; which were polled and whether completely. Never raises."""
        polled: dict[str, bool] = {}
        due = [state for state in self.scopes.values() if state.next_poll <= now]
        results = await asyncio.gather(
            *(self._run(state.inventory.discover) for state in due), return_exceptions=True
        )
        for state, result in zip(due, results, strict=True):
            if isinstance(result, Discovery):
                found = result
            else:  # an adapter bug, not a cloud answer: treat as a failed poll
                found = Discovery((), complete=False, error=f"{state.inventory.scope}: {result!r}")
            state.take(found, now, self.settings.interval)
            polled[state.inventory.scope] = found.complete
            if not found.complete:
                log.warning(
                    "%s: %s (next poll in %.0f s)", state.inventory.scope, found.error, state.next_poll - now
                )
        return polled

    def all_read(self) -> bool:
        """Whether every scope has answered completely at least once (since the operator started)."""
        return all(state.complete_at is not None for state in self.scopes.values())

    def records(self) -> list[VMRecord]:
        return [vm for state in self.scopes.values() for vm in state.vms.values()]

    def fresh(self, scope: str, now: float) -> bool:
        """Whether the scope's last poll was complete and recent enough to act on."""
        state = self.scopes.get(scope)
        return (
            state is not None
            and state.error is None
            and state.complete_at is not None
            and now - state.complete_at <= self.settings.stale_seconds
        )

    def problems(self, now: float) -> tuple[str, ...]:
        """One line per scope that is failing or stale (for the budgets' CloudUnavailable condition)."""
        found = []
        for scope, state in sorted(self.scopes.items()):
            if state.error is not None:
                found.append(f"{state.error} ({state.failures} failed polls in a row)")
            elif state.complete_at is None:
                found.append(f"{scope}: not read yet")
            elif now - state.complete_at > self.settings.stale_seconds:
                found.append(f"{scope}: last read {now - state.complete_at:.0f} s ago")
        return tuple(found)

    def covered(self, vm: VMRecord, prices: PriceBook, now: datetime, ledger: BudgetLedger) -> CoveredOutside:
        """The VM's accrual at ``now``, once per pass however many budgets cover it; the first
        budget to ask after a restart resumes it from its own ledger figure."""
        if self._pass_at != now:
            self._pass, self._pass_at = {}, now
        known = self._pass.get(vm.key)
        if known is not None and known.record == vm:
            return known
        price = prices.price(vm_node(vm))
        accrual = accrue_vm(vm, price.hourly, now, self._figures.get(vm.key), _mark(ledger, vm.key))
        self._figures[vm.key] = accrual
        covered = CoveredOutside(vm, accrual, gpus=price.facts.gpu_count)
        self._pass[vm.key] = covered
        return covered

    def retain(self, keys: Iterable[str]) -> None:
        """Forget figures of VMs no scope lists any more (their budgets closed them)."""
        keep = set(keys)
        for key in [key for key in self._figures if key not in keep]:
            del self._figures[key]

    def clear(self) -> None:
        """A new leadership term resumes from the stored ledgers."""
        self._figures.clear()
        self._pass, self._pass_at = {}, None

    def inventory(self, scope: str) -> VMInventory | None:
        state = self.scopes.get(scope)
        return state.inventory if state is not None else None

    def record(self, key: str) -> VMRecord | None:
        for state in self.scopes.values():
            vm = state.vms.get(key)
            if vm is not None:
                return vm
        return None

    async def act(self, scope: str, verb: str, vms: Sequence[VMRecord]) -> list[VMActionResult]:
        """``stop`` or ``terminate`` these VMs of one scope in a worker thread; never raises."""
        inventory = self.inventory(scope)
        if inventory is None:
            return [VMActionResult(vm.vm_id, False, f"{scope} is not a --cloud scope") for vm in vms]
        call = inventory.stop if verb == "stop" else inventory.terminate
        try:
            result = await self._run(lambda: call(vms))
        except Exception as exc:  # an adapter bug: report, never crash the action worker
            return [VMActionResult(vm.vm_id, False, f"{scope} {verb}: {exc!r}", transient=True) for vm in vms]
        assert isinstance(result, list)
        return result


def _mark(ledger: BudgetLedger, key: str) -> VMMark | None:
    entry = ledger.pods.get(key)
    if entry is None:
        return None
    at = parse_time(entry.at)
    return VMMark(entry.spend, at) if at is not None else None
