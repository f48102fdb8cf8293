"""Background queues: per-key order, concurrency across keys, a bound on what waits."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from costwarden.models import CostBudgetStatus, Phase
from costwarden.operator.budgetstate import BudgetState
from costwarden.operator.kube import StatusWrite, WriteResult
from costwarden.operator.metrics import Metrics
from costwarden.operator.statuswriter import StatusWriter
from costwarden.operator.workqueue import KeyedWorkQueue


async def test_jobs_of_one_key_run_in_order_and_keys_run_concurrently():
    queue = KeyedWorkQueue("test", concurrency=4, capacity=100)
    ran: list[str] = []
    gate, b_ran = asyncio.Event(), asyncio.Event()

    async def job(name: str, wait: bool = False) -> None:
        if wait:
            await gate.wait()
        ran.append(name)
        if name == "b1":
            b_ran.set()

    queue.submit("a", lambda: job("a1", wait=True))
    queue.submit("a", lambda: job("a2"))
    queue.submit("b", lambda: job("b1"))
    await asyncio.wait_for(b_ran.wait(), 5)
    assert ran == ["b1"]  # b is not held up by a's blocked job, a2 waits behind a1
    gate.set()
    await asyncio.wait_for(queue.idle(), 5)
    assert ran == ["b1", "a1", "a2"]
    assert queue.queued == 0


async def test_a_full_queue_refuses_instead_of_growing():
    queue = KeyedWorkQueue("test", concurrency=1, capacity=2)
    gate = asyncio.Event()

    async def blocked() -> None:
        await gate.wait()

    assert queue.submit("a", blocked)
    assert queue.submit("a", blocked)
    assert not queue.submit("b", blocked)
    assert queue.refused == 1
    await queue.close()
    assert queue.queued == 0


async def test_a_failing_job_does_not_stop_the_next():
    queue = KeyedWorkQueue("test", concurrency=1, capacity=10)
    ran: list[str] = []

    async def boom() -> None:
        raise RuntimeError("receiver exploded")

    async def fine() -> None:
        ran.append("fine")

    queue.submit("a", boom)
    queue.submit("a", fine)
    await asyncio.wait_for(queue.idle(), 5)
    assert ran == ["fine"]


class FlakyStatusApi:
    """Refuses the first ``failures`` status writes with ``result``, then stores them."""

    def __init__(self, failures: int, result: WriteResult) -> None:
        self.failures, self.result = failures, result
        self.bodies: list[Mapping[str, Any]] = []
        self.last_retry_after: float | None = 0.01

    async def patch_budget_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> StatusWrite:
        self.bodies.append(status)
        if self.failures:
            self.failures -= 1
            return StatusWrite(self.result)
        return StatusWrite(WriteResult.DONE, "2")

    async def read_budget(self, namespace: str, name: str) -> dict[str, Any] | None:
        raise AssertionError("only a 409 reads the budget again (tests/unit/test_statuswriter.py)")


async def test_a_refused_status_write_is_retried_and_waiters_learn_when_it_is_stored():
    api = FlakyStatusApi(failures=2, result=WriteResult.FAILED)
    writer = StatusWriter(
        api,
        Metrics(),
        monotonic=asyncio.get_running_loop().time,
        acting=lambda: True,
        patch_of=lambda new, _: new.to_k8s(),
    )
    state = BudgetState(key=("ns", "b"), uid="u", status=CostBudgetStatus(), stored={})
    revision = state.replace_status(CostBudgetStatus(phase=Phase.EXCEEDED))
    runner = asyncio.create_task(writer.run())
    try:
        writer.submit(state)
        assert await state.wait_stored(revision, timeout=10)
        assert len(api.bodies) == 3
        assert state.stored["phase"] == "Exceeded"
    finally:
        runner.cancel()


async def test_a_standby_writes_no_status():
    api = FlakyStatusApi(failures=0, result=WriteResult.DONE)
    writer = StatusWriter(
        api,
        Metrics(),
        monotonic=asyncio.get_running_loop().time,
        acting=lambda: False,
        patch_of=lambda new, _: new.to_k8s(),
    )
    state = BudgetState(key=("ns", "b"), uid="u", status=CostBudgetStatus(), stored={})
    revision = state.replace_status(CostBudgetStatus(phase=Phase.OK))
    runner = asyncio.create_task(writer.run())
    try:
        writer.submit(state)
        assert not await state.wait_stored(revision, timeout=0.2)
        assert api.bodies == []
    finally:
        runner.cancel()
