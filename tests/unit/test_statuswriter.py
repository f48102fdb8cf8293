"""The status writer's order: a status some job waits on goes first, one write per budget at a
time, a newer status replaces a queued one in its place."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from costwarden.models import (
    Action,
    ActionRecord,
    ActionResult,
    CostBudgetStatus,
    NotificationState,
    Phase,
)
from costwarden.operator.budgetstate import BudgetState
from costwarden.operator.kube import WriteResult
from costwarden.operator.metrics import Metrics
from costwarden.operator.statuswriter import STATUS_WRITE_CONCURRENCY, StatusWriter, urgent


class GatedStatusApi:
    """Holds every write until ``release`` lets that many through; notes the order and overlap."""

    def __init__(self, result: WriteResult = WriteResult.DONE) -> None:
        self.result = result
        self.started: list[str] = []
        self.in_flight: dict[str, int] = {}
        self.most_at_once: dict[str, int] = {}
        self._tokens = asyncio.Semaphore(0)
        self.last_retry_after: float | None = None

    def release(self, count: int = 1) -> None:
        for _ in range(count):
            self._tokens.release()

    async def patch_budget_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> WriteResult:
        self.started.append(name)
        self.in_flight[name] = self.in_flight.get(name, 0) + 1
        self.most_at_once[name] = max(self.most_at_once.get(name, 0), self.in_flight[name])
        try:
            await self._tokens.acquire()
        finally:
            self.in_flight[name] -= 1
        return self.result


def _writer(api: GatedStatusApi) -> StatusWriter:
    return StatusWriter(
        api,
        Metrics(),
        monotonic=asyncio.get_running_loop().time,
        acting=lambda: True,
        patch_of=lambda new, _: new.to_k8s(),
    )


def _state(name: str, status: CostBudgetStatus | None = None) -> BudgetState:
    state = BudgetState(key=("ns", name), uid=name, status=CostBudgetStatus(), stored={})
    state.replace_status(status or CostBudgetStatus(phase=Phase.OK, spend=1))
    return state


def _kill_pending() -> CostBudgetStatus:
    record = ActionRecord(
        id="threshold/100/2026-12-01T00:00:00Z",
        time="2026-12-01T07:00:00Z",
        trigger="spend reached 100%",
        action=Action.KILL,
        result=ActionResult.PENDING,
    )
    return CostBudgetStatus(phase=Phase.EXCEEDED, actions=[record])


async def _until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


def test_a_status_is_urgent_while_a_job_waits_for_it_to_be_stored() -> None:
    assert urgent(_kill_pending())
    done = _kill_pending().actions[0].model_copy(update={"result": ActionResult.DONE})
    assert not urgent(CostBudgetStatus(actions=[done]))
    notifying = done.model_copy(update={"notification": NotificationState.PENDING})
    assert urgent(CostBudgetStatus(actions=[notifying]))
    assert not urgent(CostBudgetStatus(phase=Phase.OK))


async def test_a_kill_waits_for_one_write_not_for_the_routine_ones_queued_before_it() -> None:
    api = GatedStatusApi()
    writer = _writer(api)
    runner = asyncio.create_task(writer.run())
    try:
        routine = [_state(f"spend-{n}") for n in range(50)]  # an evaluation pass's spend updates
        for state in routine:
            writer.submit(state)
        await _until(lambda: len(api.started) == STATUS_WRITE_CONCURRENCY)
        kill = _state("kill", _kill_pending())
        writer.submit(kill)
        api.release()  # one write ends: the kill's is next
        await _until(lambda: len(api.started) == STATUS_WRITE_CONCURRENCY + 1)
        assert api.started[-1] == "kill"
        api.release(len(routine) + 1)
        assert await kill.wait_stored(kill.revision, timeout=5)
        for state in routine:
            assert await state.wait_stored(state.revision, timeout=5)
        # the routine ones in the order they were queued
        assert [n for n in api.started if n != "kill"] == [s.name for s in routine]
    finally:
        runner.cancel()


async def test_one_write_per_budget_at_a_time_and_the_latest_status_is_stored_last() -> None:
    api = GatedStatusApi()
    writer = _writer(api)
    runner = asyncio.create_task(writer.run())
    try:
        state = _state("b")
        writer.submit(state)
        await _until(lambda: api.started == ["b"])
        latest = state.replace_status(CostBudgetStatus(phase=Phase.WARNING, spend=2))
        writer.submit(state)  # queued again while written: waits for that write
        await asyncio.sleep(0.01)
        assert api.started == ["b"]
        api.release(2)
        assert await state.wait_stored(latest, timeout=5)
        assert api.started == ["b", "b"]
        assert api.most_at_once["b"] == 1
        assert state.stored["phase"] == "Warning"
        assert writer.sizes() == {"queued": 0, "urgent": 0, "writing": 0, "failures": 0, "retries": 0}
    finally:
        runner.cancel()


async def test_a_newer_status_replaces_a_queued_one_in_its_place() -> None:
    api = GatedStatusApi()
    writer = _writer(api)
    runner = asyncio.create_task(writer.run())
    try:
        busy = [_state(f"busy-{n}") for n in range(STATUS_WRITE_CONCURRENCY)]
        for state in busy:
            writer.submit(state)
        await _until(lambda: len(api.started) == STATUS_WRITE_CONCURRENCY)
        first, second = _state("first"), _state("second")
        writer.submit(first)
        writer.submit(second)
        newer = first.replace_status(CostBudgetStatus(phase=Phase.WARNING, spend=3))
        writer.submit(first)
        assert writer.sizes()["queued"] == 2
        api.release(STATUS_WRITE_CONCURRENCY + 2)
        assert await first.wait_stored(newer, timeout=5)
        assert await second.wait_stored(second.revision, timeout=5)
        assert api.started[STATUS_WRITE_CONCURRENCY:] == ["first", "second"]
        assert first.stored["phase"] == "Warning"
    finally:
        runner.cancel()


async def test_a_deleted_budget_leaves_no_failure_count_behind() -> None:
    api = GatedStatusApi(result=WriteResult.GONE)
    writer = _writer(api)
    runner = asyncio.create_task(writer.run())
    try:
        state = _state("gone")
        writer._failures[state.key] = 3  # earlier writes failed
        writer.submit(state)
        api.release()
        await _until(lambda: writer.sizes()["writing"] == 0 and api.started == ["gone"])
        assert writer.sizes()["failures"] == 0
    finally:
        runner.cancel()
