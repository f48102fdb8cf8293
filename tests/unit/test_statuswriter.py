"""The status writer's order: a status some job waits on goes first, one write per budget at a
time, a newer status replaces a queued one in its place. Its resourceVersion preconditions: a
409 is followed by one read and a merged write (never the old body again), a replica that no
longer leads drops the write, and conflicts without end back off after a bounded number."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from typing import Any

from costwarden.engine.status_patch import status_merge_patch
from costwarden.models import (
    Action,
    ActionRecord,
    ActionResult,
    CostBudgetStatus,
    NotificationState,
    Phase,
)
from costwarden.operator.budgetstate import BudgetState
from costwarden.operator.kube import StatusWrite, WriteResult
from costwarden.operator.metrics import Metrics
from costwarden.operator.statuswriter import (
    CONFLICT_ATTEMPTS,
    STATUS_WRITE_CONCURRENCY,
    StatusWriter,
    urgent,
)
from tests import shapes


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

    async def patch_budget_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> StatusWrite:
        self.started.append(name)
        self.in_flight[name] = self.in_flight.get(name, 0) + 1
        self.most_at_once[name] = max(self.most_at_once.get(name, 0), self.in_flight[name])
        try:
            await self._tokens.acquire()
        finally:
            self.in_flight[name] -= 1
        return StatusWrite(self.result)

    async def read_budget(self, namespace: str, name: str) -> dict[str, Any] | None:
        raise AssertionError("no 409 here")


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


# ---- resourceVersion preconditions: 409s, reads, merges, the leader fence


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies a merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class StoredBudget:
    """One CostBudget as the API server keeps it: status merge patches with a resourceVersion
    precondition are refused (409) once anything wrote it since; an unchanged status keeps the
    version. ``on_patch`` runs as each write arrives (another writer, the fence running out),
    ``on_read`` as each read does."""

    def __init__(self, status: CostBudgetStatus, uid: str = "u") -> None:
        self.uid = uid
        self.version = 1
        self.status: dict[str, Any] = status.to_k8s()
        self.exists = True
        self.patches: list[tuple[str | None, int]] = []  # (precondition, answer)
        self.reads = 0
        self.on_patch: Callable[[], None] | None = None
        self.on_read: Callable[[], None] | None = None
        self.last_retry_after: float | None = None

    @property
    def rv(self) -> str:
        return str(self.version)

    def write(self, status: CostBudgetStatus) -> None:
        """Another replica's status write."""
        self.status = status.to_k8s()
        self.version += 1

    def edit_spec(self) -> None:
        """A user's edit: the status stays, the version moves."""
        self.version += 1

    async def patch_budget_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> StatusWrite:
        if self.on_patch is not None:
            self.on_patch()
        if not self.exists:
            self.patches.append((resource_version, 404))
            return StatusWrite(WriteResult.GONE)
        if resource_version is not None and resource_version != self.rv:
            self.patches.append((resource_version, 409))
            return StatusWrite(WriteResult.CONFLICT)
        new = _merge_patch(self.status, status)
        if new != self.status:
            self.status = new
            self.version += 1
        self.patches.append((resource_version, 200))
        return StatusWrite(WriteResult.DONE, self.rv)

    async def read_budget(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        if self.on_read is not None:
            self.on_read()
        if not self.exists:
            return None
        meta = {"name": name, "namespace": namespace, "uid": self.uid, "resourceVersion": self.rv}
        return {"metadata": meta, "spec": {"limit": 10}, "status": copy.deepcopy(self.status)}

    def records(self) -> list[tuple[str, str, str | None, int]]:
        return [
            (r["id"], r["result"], r.get("notification"), r.get("attempts", 0))
            for r in self.status["actions"]
        ]


NOTIFY_80 = "threshold/80/2026-12-01T00:00:00Z"
KILL_100 = "threshold/100/2026-12-01T00:00:00Z"
IDLE = "anomaly/idleGpu/pod-uid-1"
OLD = "threshold/50/2026-11-01T00:00:00Z"


def _status(*records: ActionRecord, spend: int = 8) -> CostBudgetStatus:
    return CostBudgetStatus(phase=Phase.EXCEEDED, spend=spend, actions=list(records))


def _known(status: CostBudgetStatus, version: str = "1") -> BudgetState:
    """A replica's state of a budget it read at ``version`` with ``status``."""
    return BudgetState(
        key=("ns", "b"), uid="u", status=status, stored=status.to_k8s(), resource_version=version
    )


def _conflict_writer(
    api: StoredBudget, metrics: Metrics, acting: Callable[[], bool] = lambda: True
) -> StatusWriter:
    return StatusWriter(
        api,
        metrics,
        monotonic=asyncio.get_running_loop().time,
        acting=acting,
        patch_of=status_merge_patch,
    )


def _conflicts(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "costwarden_api_writes_total", {"kind": "status", "result": "conflict"}
    )
    return value or 0.0


async def test_writes_carry_the_version_last_known_and_take_the_answers() -> None:
    base = _status()
    api = StoredBudget(base)
    state = _known(base)
    writer = _conflict_writer(api, Metrics())
    runner = asyncio.create_task(writer.run())
    try:
        for spend in (9, 10):
            revision = state.replace_status(_status(spend=spend))
            writer.submit(state)
            assert await state.wait_stored(revision, timeout=5)
        assert api.patches == [("1", 200), ("2", 200)]
        assert state.resource_version == "3" == api.rv
        assert api.reads == 0
    finally:
        runner.cancel()


async def test_after_a_users_edit_one_read_and_the_status_is_written_at_the_new_version() -> None:
    base = _status()
    api = StoredBudget(base)
    state = _known(base)
    api.edit_spec()
    metrics = Metrics()
    writer = _conflict_writer(api, metrics)
    runner = asyncio.create_task(writer.run())
    try:
        revision = state.replace_status(_status(spend=9))
        writer.submit(state)
        assert await state.wait_stored(revision, timeout=5)
        assert api.patches == [("1", 409), ("2", 200)]  # never the old body at the old version again
        assert api.reads == 1 and api.status["spend"] == 9
        assert state.resource_version == "3"
        assert _conflicts(metrics) == 1
        assert writer.sizes() == {"queued": 0, "urgent": 0, "writing": 0, "failures": 0, "retries": 0}
    finally:
        runner.cancel()


async def test_a_replica_whose_fence_ran_out_while_its_write_was_on_the_way_drops_it() -> None:
    """The old leader's write, delivered after the new leader wrote, is refused; the old
    leader, no longer leading when the 409 comes back, reads nothing and writes nothing more."""
    base = _status(shapes.action_record(KILL_100, Action.KILL, ActionResult.PENDING, attempts=1))
    api = StoredBudget(base)
    old_leader = _known(base)
    new_leaders = _status(
        shapes.action_record(
            KILL_100, Action.KILL, ActionResult.DONE, attempts=1, notification=NotificationState.SENT
        )
    )
    leading = [True]

    def delivered_late() -> None:
        api.write(new_leaders)  # the new leader wrote first
        leading[0] = False  # and the old leader's fence ran out while its write was held

    api.on_patch = delivered_late
    writer = _conflict_writer(api, Metrics(), acting=lambda: leading[0])
    runner = asyncio.create_task(writer.run())
    try:
        revision = old_leader.replace_status(
            _status(shapes.action_record(KILL_100, Action.KILL, ActionResult.PENDING, attempts=2))
        )
        writer.submit(old_leader)
        assert not await old_leader.wait_stored(revision, timeout=0.3)
        assert api.patches == [("1", 409)]
        assert api.reads == 0
        assert api.status == new_leaders.to_k8s()
        assert writer.sizes()["failures"] == 0 and writer.sizes()["retries"] == 0
    finally:
        runner.cancel()


async def test_the_leader_keeps_what_another_replica_stored_and_never_undoes_its_own() -> None:
    """The leader's view was older than what is stored (an earlier leader's last writes, not yet
    seen on the watch): its write is refused, and the one it makes instead keeps every record
    stored, each as far along as either replica got; a job waiting to carry out a record the
    stored status had settled does not run."""
    known = _status(
        shapes.action_record(OLD, Action.NOTIFY, ActionResult.DONE),
        shapes.action_record(NOTIFY_80, Action.NOTIFY, ActionResult.PENDING),
    )
    api = StoredBudget(known)
    state = _known(known)
    api.write(  # the earlier leader's last write: the Notify sent, the Kill carried out, an anomaly
        _status(
            shapes.action_record(OLD, Action.NOTIFY, ActionResult.DONE),
            shapes.action_record(
                NOTIFY_80, Action.NOTIFY, ActionResult.DONE, notification=NotificationState.SENT
            ),
            shapes.action_record(KILL_100, Action.KILL, ActionResult.DONE, attempts=1),
            shapes.action_record(IDLE, Action.NOTIFY, ActionResult.DONE),
        )
    )
    # This replica dropped OLD (bounded records), settled NOTIFY_80 with its notification still
    # to send, and decided the Kill itself: a job waits for that Pending record to be stored.
    ours = _status(
        shapes.action_record(
            NOTIFY_80, Action.NOTIFY, ActionResult.DONE, notification=NotificationState.PENDING
        ),
        shapes.action_record(KILL_100, Action.KILL, ActionResult.PENDING, attempts=1),
        spend=11,
    )
    revision = state.replace_status(ours)
    state.acting.add(KILL_100)
    state.notifying.add(NOTIFY_80)
    writer = _conflict_writer(api, Metrics())
    runner = asyncio.create_task(writer.run())
    try:
        job = asyncio.create_task(state.wait_stored(revision, timeout=5))
        writer.submit(state)
        assert await job is False  # neither the Kill nor the message is carried out again
        await _until(lambda: len(api.patches) == 2)
        assert api.patches == [("1", 409), ("2", 200)]
        assert api.records() == [
            (NOTIFY_80, "Done", "Sent", 0),
            (KILL_100, "Done", None, 1),
            (IDLE, "Done", None, 0),
        ]
        assert api.status["spend"] == 11  # the figures are the leader's
        assert state.stored_revision == state.revision > revision
        assert [r.id for r in state.status.actions] == [NOTIFY_80, KILL_100, IDLE]
        assert state.stored == api.status
    finally:
        runner.cancel()


async def test_a_late_write_of_an_earlier_leader_that_landed_first_is_merged_not_kept() -> None:
    """Delivered after the takeover but before the new leader's first write, the earlier
    leader's write is taken (its version was current); the new leader's write is then refused
    and what it writes instead has its own records, not the earlier leader's older ones."""
    base = _status(shapes.action_record(KILL_100, Action.KILL, ActionResult.PENDING, attempts=1))
    api = StoredBudget(base)
    new_leader = _known(base)
    api.write(_status(shapes.action_record(KILL_100, Action.KILL, ActionResult.PENDING, attempts=1), spend=7))
    writer = _conflict_writer(api, Metrics())
    runner = asyncio.create_task(writer.run())
    try:
        done = shapes.action_record(
            KILL_100, Action.KILL, ActionResult.DONE, attempts=1, notification=NotificationState.SENT
        )
        revision = new_leader.replace_status(_status(done, spend=9))
        writer.submit(new_leader)
        assert await new_leader.wait_stored(revision, timeout=5)
        assert api.patches == [("1", 409), ("2", 200)]
        assert api.records() == [(KILL_100, "Done", "Sent", 1)]
        assert api.status["spend"] == 9
    finally:
        runner.cancel()


async def test_conflicts_without_end_back_off_after_a_bounded_number_of_writes() -> None:
    base = _status()
    api = StoredBudget(base)
    api.on_patch = api.edit_spec  # every write finds a newer version
    metrics = Metrics()
    writer = _conflict_writer(api, metrics)
    runner = asyncio.create_task(writer.run())
    try:
        state = _known(base)
        state.replace_status(_status(spend=9))
        writer.submit(state)
        await _until(lambda: writer.sizes()["retries"] == 1)
        assert [answer for _, answer in api.patches] == [409] * CONFLICT_ATTEMPTS
        assert api.reads == CONFLICT_ATTEMPTS
        assert _conflicts(metrics) == CONFLICT_ATTEMPTS
        assert writer.sizes()["failures"] == 1 and writer.sizes()["writing"] == 0
        assert state.resource_version == api.rv  # the retry starts from the version read last
    finally:
        runner.cancel()


async def test_a_budget_gone_or_created_anew_after_a_409_is_not_written() -> None:
    for change in ("deleted", "recreated"):
        base = _status()
        api = StoredBudget(base)
        state = _known(base)
        api.edit_spec()  # the write is refused, and then, before the read:

        def change_it(api: StoredBudget = api, change: str = change) -> None:
            if change == "deleted":
                api.exists = False
            else:
                api.uid = "another"  # deleted and created again under the same name

        api.on_read = change_it
        writer = _conflict_writer(api, Metrics())
        runner = asyncio.create_task(writer.run())
        try:
            revision = state.replace_status(_status(spend=9))
            writer.submit(state)
            await _until(lambda api=api: api.reads == 1)
            assert not await state.wait_stored(revision, timeout=0.05)
            assert api.patches == [("1", 409)], change
            assert api.status == base.to_k8s()
            assert writer.sizes()["failures"] == 0 and writer.sizes()["retries"] == 0, change
        finally:
            runner.cancel()


def test_the_watch_moves_the_version_only_while_the_status_is_the_one_stored() -> None:
    state = _known(_status())
    assert state.observe("5", _status().to_k8s())  # a spec edit: same status, newer version
    assert state.resource_version == "5"
    assert not state.observe("6", _status(spend=3).to_k8s())  # someone else's status: a 409 will say
    assert state.resource_version == "5"
    assert not state.observe(None, _status().to_k8s())
    assert state.resource_version == "5"
