"""What the passes do to stay cheap at 10,000 pods keeps their results: a step-timed pass, node
prices and pod rates reused only for the very same inputs, /metrics rows built from the published
snapshot, the status-due check without packing the ledger, and a pass that writes only with the
budgets it knew when it started (bench/operator_bench.py measures the cost)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costwarden.engine.rates import pod_rate
from costwarden.models import BudgetLedger, CostBudgetStatus, PodLedgerEntry
from costwarden.operator.accrual import accrual_pass
from costwarden.operator.budgets import _due_view
from costwarden.operator.kube import WriteResult
from costwarden.operator.loops import StepTimed
from costwarden.operator.metrics import Metrics
from costwarden.operator.spendbook import SpendBook
from costwarden.operator.throttle import status_due
from costwarden.pricing import PriceBook, load_bundled_catalog
from costwarden.records import NodeRecord, PodRecord
from tests import shapes
from tests.unit.test_runtime import runtime as make_runtime

T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
UID_A, UID_B = "0b6f1c3e-8f43-4c55-9d5e-2a1f0c9e7d11", "5d3a2b1c-7e6f-4a8b-9c0d-1e2f3a4b5c6d"


def node(name: str = "ip-10-0-1-10.ec2.internal") -> NodeRecord:
    return NodeRecord.from_body(shapes.eks_p5_node(name))


def pod(
    name: str = "job-head", uid: str = UID_A, gpus: int = 1, node_name: str = "ip-10-0-1-10.ec2.internal"
) -> PodRecord:
    return PodRecord(
        namespace="research", name=name, uid=uid, node_name=node_name, phase="Running",
        gpus=gpus, created=T0, started=T0,
    )  # fmt: skip


class CountingPrices(PriceBook):
    def __init__(self) -> None:
        super().__init__(load_bundled_catalog())
        self.calls = 0

    def price(self, node: NodeRecord) -> Any:
        self.calls += 1
        return super().price(node)


# ---- StepTimed


async def test_a_step_timed_pass_returns_its_result_and_raises_its_errors() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    assert await StepTimed(answer()) == 42
    with pytest.raises(ValueError, match="boom"):
        await StepTimed(fail())


async def test_cancelling_a_step_timed_pass_cancels_the_pass_inside() -> None:
    inside = asyncio.Event()
    seen: list[str] = []

    async def waits() -> None:
        inside.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise

    async def outer() -> None:
        await StepTimed(waits())

    task = asyncio.create_task(outer())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled inside"]


async def test_a_step_timed_pass_counts_its_own_cpu_not_the_tasks_that_ran_while_it_awaited() -> None:
    """A sibling burns CPU while the timed pass waits: none of it is the pass's."""
    release = asyncio.Event()
    burnt = 0.0

    async def sibling() -> None:
        nonlocal burnt
        started = time.thread_time()
        while time.thread_time() - started < 0.05:
            pass
        burnt = time.thread_time() - started
        release.set()

    async def waits() -> None:
        await release.wait()

    timed = StepTimed(waits())
    burner = asyncio.create_task(sibling())
    await timed
    await burner
    assert burnt >= 0.05
    assert timed.cpu < burnt / 2
    assert timed.longest < 0.05  # no step of its own held the loop for the sibling's burn


# ---- SpendBook: prices and rates reused only for the same inputs


def test_nodes_are_priced_again_only_when_the_snapshot_changes() -> None:
    book, prices = SpendBook(), CountingPrices()
    snapshot = {"a": node("a"), "b": node("b")}
    first = book.price_nodes(snapshot, prices)
    assert prices.calls == 2
    assert book.price_nodes(snapshot, prices) is first
    assert prices.calls == 2
    changed = {**snapshot, "c": node("c")}
    assert set(book.price_nodes(changed, prices)) == {"a", "b", "c"}
    assert first.keys() == {"a", "b"}  # what was published before is never changed


def test_price_of_reads_the_priced_node_and_prices_any_other_record() -> None:
    book, prices = SpendBook(), CountingPrices()
    priced = node("a")
    book.price_nodes({"a": priced}, prices)
    calls = prices.calls
    assert book.price_of(priced, prices) is book.node_prices["a"]
    assert prices.calls == calls
    relabelled = NodeRecord.from_body(
        {
            **shapes.eks_p5_node("a"),
            "metadata": {"name": "a", "annotations": {"costwarden.dev/hourly-price": "7"}},
        }
    )
    assert book.price_of(relabelled, prices) == PriceBook(load_bundled_catalog()).price(relabelled)
    assert prices.calls == calls + 1


def test_a_pod_rate_is_made_again_when_its_pod_or_price_changes() -> None:
    book, prices = SpendBook(), PriceBook(load_bundled_catalog())
    price = prices.price(node())
    one = pod(gpus=1)
    book.figure(one, price, T0 + timedelta(hours=1))
    assert book.rate(UID_A) == pod_rate(one, price)
    eight = replace(one, gpus=8)
    accrual = book.figure(eight, price, T0 + timedelta(hours=2))
    assert book.rate(UID_A) == pod_rate(eight, price)
    assert accrual.rate == pod_rate(eight, price).total
    other = prices.price(NodeRecord.from_body(shapes.gke_a3_spot_node()))
    book.figure(eight, other, T0 + timedelta(hours=3))
    assert book.rate(UID_A) == pod_rate(eight, other)


def test_clearing_the_book_leaves_published_prices_alone() -> None:
    book = SpendBook()
    published = book.price_nodes({"a": node("a")}, PriceBook(load_bundled_catalog()))
    book.clear()
    assert set(published) == {"a"}
    assert book.node_prices == {} and book.idle_costs == {}


# ---- /metrics rows from the published snapshot


def test_metrics_rows_are_built_from_the_last_published_snapshot_sorted() -> None:
    metrics, prices = Metrics(), PriceBook(load_bundled_catalog())
    price = prices.price(node())
    b, a = pod("b-pod", UID_B), pod("a-pod", UID_A)
    metrics.publish_pods(
        ((b, pod_rate(b, price)), (a, pod_rate(a, price))), {"n": price}, {"n": Decimal("1.5")}
    )
    rows = metrics.pod_rows
    assert [row.name for row in rows] == ["a-pod", "b-pod"]
    assert rows[0].hourly == float(pod_rate(a, price).total)
    assert metrics.pod_rows is rows  # built once per snapshot
    assert [(row.name, row.idle_hourly) for row in metrics.node_rows] == [("n", 1.5)]
    metrics.publish_pods((), {}, {})
    assert metrics.pod_rows == () and metrics.node_rows == ()


# ---- the status-due check without packing


def _status(
    pods: dict[str, str], idle: dict[str, str], phase: str = "Ok", spend: str = "10"
) -> CostBudgetStatus:
    entries = {
        uid: PodLedgerEntry(spend=Decimal(value), at="2026-11-03T10:00:00Z") for uid, value in pods.items()
    }
    return CostBudgetStatus(
        phase=phase,
        spend=Decimal(spend),
        hourly_rate=Decimal("2.5"),
        pods=len(pods),
        ledger=BudgetLedger(pods=entries, idle_since=idle),
    )


def _variants() -> Iterator[CostBudgetStatus]:
    yield _status({UID_A: "1"}, {})  # only figures moved
    yield _status({UID_A: "2"}, {}, spend="11")
    yield _status({UID_A: "1", UID_B: "1"}, {})  # a pod joined
    yield _status({}, {})  # a pod left
    yield _status({UID_A: "1"}, {UID_A: "2026-11-03T10:00:00Z"})  # it went idle
    yield _status({UID_A: "1"}, {}, phase="Warning")


@pytest.mark.parametrize("since", [0.0, 5.0, 10.0])
def test_the_status_due_check_without_packing_decides_as_the_stored_form_does(since: float) -> None:
    stored = _status({UID_A: "1"}, {}, spend="9").to_k8s()
    for new in _variants():
        assert status_due(stored, _due_view(new), since, 10.0) == status_due(
            stored, new.to_k8s(), since, 10.0
        )


# ---- the accrual pass writes only with the budgets it knew when it started


class Writes:
    dry_run = False
    last_retry_after = None

    def __init__(self) -> None:
        self.patched: list[tuple[str, dict[str, str | None]]] = []

    async def patch_pod_annotations(
        self, namespace: str, name: str, notes: dict[str, str | None], *, uid: str | None = None
    ) -> WriteResult:
        self.patched.append((name, notes))
        return WriteResult.DONE


async def test_a_pass_that_started_before_budgets_were_known_writes_nothing(tmp_path: Path) -> None:
    """The evaluation may finish while the accrual pass yields: its budget names came too late."""
    runtime = make_runtime(tmp_path)
    writes = Writes()
    runtime.kube = writes  # type: ignore[assignment]
    skypilot = PodRecord.from_body(
        {
            **shapes.skypilot_pod("job-2ea4", "job", namespace="research", node="n"),
            "status": {"phase": "Running", "startTime": "2026-11-03T10:00:00Z"},
        }
    )
    skypilot = replace(skypilot, uid=UID_A)

    def pods() -> Iterator[PodRecord]:
        yield skypilot
        runtime.evaluated = True  # the first evaluation ended meanwhile

    await accrual_pass(runtime, pods(), {"n": node("n")}, T0 + timedelta(hours=1))
    assert writes.patched == []
    await accrual_pass(runtime, [skypilot], {"n": node("n")}, T0 + timedelta(hours=1, seconds=10))
    assert [name for name, _ in writes.patched] == ["job-2ea4-head"]


class EmptyView:
    def synced(self) -> bool:
        return True

    def budgets(self) -> tuple[()]:
        return ()

    def nodes(self) -> dict[str, NodeRecord]:
        return {}


@pytest.mark.parametrize("freeze", [True, False])
async def test_the_heap_is_frozen_once_the_first_evaluation_is_in_when_asked(
    tmp_path: Path, freeze: bool
) -> None:
    import gc

    from costwarden.operator.loops import evaluate_all

    runtime = make_runtime(tmp_path, freeze_heap_when_synced=freeze)
    runtime.start_work()
    before = gc.get_freeze_count()
    try:
        await evaluate_all(runtime, EmptyView())  # type: ignore[arg-type]
        frozen = gc.get_freeze_count()
        await evaluate_all(runtime, EmptyView())  # type: ignore[arg-type]
        assert (frozen > before) is freeze
        assert gc.get_freeze_count() == frozen  # once, not every pass
    finally:
        gc.unfreeze()
        await runtime.work.close()


def test_a_pods_waste_grows_only_while_its_gpus_read_idle() -> None:
    from costwarden.engine.ledger import PodAccrual
    from costwarden.operator.accrual import _count_waste

    book = SpendBook()
    first, second = PodAccrual(Decimal(10), Decimal(60), T0), PodAccrual(Decimal(11), Decimal(60), T0)
    _count_waste(book, "uid", (Decimal(2), T0), (first, second))
    _count_waste(book, "uid", (Decimal(90), T0), (first, second))  # busy: not waste
    _count_waste(book, "uid", None, (first, second))  # unknown: not waste
    _count_waste(book, "uid", (Decimal(0), T0), (None, second))  # first figure: nothing to add
    assert book.wasted == {"uid": Decimal(1)}
    book.forget("uid")
    assert book.wasted == {}
