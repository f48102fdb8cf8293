"""The soak's fast slice (``bench/soak.py`` is the soak, ``make soak``): the real operator on the
stand-in while pods churn and budgets cross their limits, at a few hundred pods and a few churn
cycles. Asserted: no operator error; what the operator holds follows the live pods and budgets
(its tables return to the live counts, no record of a deleted pod is left anywhere in memory);
every crossing acted on exactly once. No timing: the figures are the soak's."""

from __future__ import annotations

import contextlib
import gc
import logging
from datetime import timedelta
from typing import Any

import kmock
import pytest

from costwarden.records import PodRecord
from costwarden.sim.testing import ThreadedSimCluster
from tests import churn, shapes
from tests.clock import ManualClock

NAMESPACES, NODES, GROUPS_PER_NAMESPACE, GROUP = 4, 20, 15, 4  # 240 pods
CYCLES, SHARE = 4, 0.25  # each cycle replaces a quarter of the pods: every pod once
CROSSINGS_PER_CYCLE = 2
KILL_AFTER_S = 40  # a crossing pod's spend reaches its limit 40 s after it started
CB = "costwarden.dev/v1alpha1"
POD_REQUESTS = kmock.resource("", "v1", "pods")
# The operator's tables that hold an entry per live pod, label, node or budget: after the churn
# each holds what it held before it (the others hold per-write or per-record entries).
FOLLOWING = (
    "informer_pods",
    "informer_namespaces",
    "informer_labels",
    "informer_label_keys",
    "informer_label_memberships",
    "informer_nodes",
    "informer_budgets",
    "spend_accruals",
    "spend_rates",
    "spend_rated_pods",
    "spend_rated_prices",
    "budget_states",
    "budget_covered_pods",
    "budget_ledger_entries",
)
# Empty once the churn stops. Statuses still wait to be written at any moment on a slow machine
# (each pass queues some while the writer works): those are checked to be live budgets' instead.
QUEUES = ("status_retries", "actions_running", "notifications_running", "events_running")


def _pods() -> list[dict[str, Any]]:
    """Groups of 4 per namespace: SkyPilot clusters (1 GPU each) and CPU app groups."""
    pods = []
    for n in range(NAMESPACES):
        for g in range(GROUPS_PER_NAMESPACE):
            for k in range(GROUP):
                node = f"node-{(n * GROUPS_PER_NAMESPACE + g) % NODES}"
                if g % 2:
                    pod = shapes.skypilot_pod(
                        f"sky-{g}-2ea4",
                        f"sky-{g}",
                        namespace=f"team-{n}",
                        node=node,
                        role="head" if k == 0 else "worker",
                        index=k,
                        gpus=1,
                        cpu="8",
                        memory="64Gi",
                    )
                else:
                    labels = {"app": f"svc-{g}", "tier": ("web", "batch")[g % 4 // 2]}
                    pod = shapes.plain_pod(f"svc-{g}-{k}", namespace=f"team-{n}", node=node, labels=labels)
                pods.append(pod)
    return pods


def _budgets() -> list[dict[str, Any]]:
    """A budget per group (matchLabels or skypilotCluster) and one over each namespace; limits
    far away, except over a few SkyPilot clusters (4 GPUs: more than 5 USD after their hour),
    which cross 80 % (Notify) at once, and never again while their pods are replaced."""
    budgets = []
    for n in range(NAMESPACES):
        for g in range(GROUPS_PER_NAMESPACE):
            if g % 2:
                selection: dict[str, Any] = {"skypilotCluster": f"sky-{g}"}
            else:
                selection = {"selector": {"matchLabels": {"app": f"svc-{g}"}}}
            budgets.append((f"team-{n}", f"group-{g}", selection, 5 if g % 10 == 1 else 100_000))
        budgets.append((f"team-{n}", "everything", {}, 100_000))
    return [
        {
            "apiVersion": CB,
            "kind": "CostBudget",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"limit": limit, "thresholds": [{"percent": 80, "action": "Notify"}], **selection},
        }
        for namespace, name, selection, limit in budgets
    ]


def _start(cluster: ThreadedSimCluster, body: dict[str, Any], clock: ManualClock) -> dict[str, Any]:
    """Create a pod Running since the clock's now; the stored pod."""
    meta = body["metadata"]
    cluster.create(body)
    status = {"status": shapes.running_status(clock())}
    return cluster.patch(
        "v1", "pods", meta["name"], status, namespace=meta["namespace"], subresource="status"
    )


def _tracked(operator: Any) -> dict[str, int]:
    return dict(operator.runtime.metrics.tracked)


def _records_in_memory(uids: set[str]) -> set[str]:
    """Uids of ``uids`` that some PodRecord still alive in this process carries."""
    gc.collect()
    return {obj.uid for obj in gc.get_objects() if type(obj) is PodRecord and obj.uid in uids}


def test_churn_leaves_nothing_behind_and_every_crossing_is_acted_on_once(
    cluster: ThreadedSimCluster, clock: ManualClock, start_operator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for n in range(NAMESPACES):
        cluster.create(shapes.namespace(f"team-{n}"))
    cluster.create(shapes.namespace(churn.CROSSING_NAMESPACE))
    nodes = [shapes.eks_p5_node(f"node-{i}", spot=i % 3 == 0) for i in range(NODES)]
    for node in nodes:
        cluster.create(node)
    seeded = _pods()
    started = clock() - timedelta(hours=1)
    live: dict[int, dict[str, Any]] = {}  # slot -> the pod there now
    for slot, body in enumerate(seeded):
        cluster.create(body)
        meta = body["metadata"]
        status = {"status": shapes.running_status(started)}
        live[slot] = cluster.patch(
            "v1", "pods", meta["name"], status, namespace=meta["namespace"], subresource="status"
        )
    budgets = _budgets()
    for budget in budgets:
        cluster.create(budget)
    operator = start_operator(write_rate=1000, max_destructive_per_minute=1000)

    def settled(pods: int, budgets: int) -> bool:
        tracked = _tracked(operator)
        return (
            tracked.get("informer_pods") == pods
            and tracked.get("spend_accruals") == pods
            and tracked.get("informer_budgets") == budgets
            and tracked.get("budget_states") == budgets
        )

    def recorded(budgets: list[str], percent: int) -> bool:
        return all(_result(cluster, name, percent) == "Done" for name in budgets)

    cluster.wait_for(lambda: settled(len(seeded), len(budgets)), timeout=30)
    baseline = _tracked(operator)

    deleted: set[str] = set()
    crossings: list[tuple[str, str]] = []  # (budget, pod)
    kills: list[str] = []  # the pods the operator's DELETEs named
    generations = [0] * len(seeded)
    for cycle in range(CYCLES):
        for slot in churn.churn_slots(cycle, len(seeded), SHARE):
            old = live[slot]["metadata"]
            deleted.add(old["uid"])
            cluster.delete("v1", "pods", old["name"], namespace=old["namespace"])
            generations[slot] += 1
            live[slot] = _start(cluster, churn.replacement(seeded[slot], generations[slot]), clock)
        opened: list[tuple[str, str]] = []
        for k in range(CROSSINGS_PER_CYCLE):
            i = cycle * CROSSINGS_PER_CYCLE + k
            node = nodes[i % NODES]
            pod = _start(cluster, churn.crossing_pod(i, node["metadata"]["name"]), clock)
            limit = churn.crossing_limit(churn.hourly_rate(pod, node), KILL_AFTER_S)
            budget = churn.crossing_budget(i, limit)
            cluster.create(budget)
            opened.append((budget["metadata"]["name"], pod["metadata"]["name"]))
        crossings += opened
        names = [name for name, _ in opened]
        counts = (len(seeded) + len(opened), len(budgets) + len(opened))
        cluster.wait_for(lambda: settled(*counts), timeout=30)  # noqa: B023 -- called at once
        clock.advance(timedelta(seconds=KILL_AFTER_S * 0.9))  # past 80 %: Notify
        cluster.wait_for(lambda: recorded(names, 80), timeout=30)  # noqa: B023
        clock.advance(timedelta(seconds=KILL_AFTER_S * 0.2))  # past 100 %: Kill
        cluster.wait_for(lambda: recorded(names, 100), timeout=30)  # noqa: B023
        # the stand-in's request log keeps the latest requests only: read this cycle's DELETEs now
        pods_now = {pod for _, pod in opened}
        kills += [r.name for r in cluster.cluster.emulator["delete", POD_REQUESTS] if r.name in pods_now]
        for name in names:  # budgets churn too
            cluster.delete(CB, "costbudgets", name, namespace=churn.CROSSING_NAMESPACE)
        cluster.wait_for(lambda: settled(len(seeded), len(budgets)), timeout=30)
    assert len(deleted) == len(seeded)  # every seeded pod was replaced

    # What the operator holds follows the live pods and budgets: nothing of a deleted one.
    def following() -> dict[str, int | None]:
        tracked = _tracked(operator)
        return {table: tracked.get(table) for table in (*FOLLOWING, *QUEUES)}

    expected = {**{table: baseline[table] for table in FOLLOWING}, **dict.fromkeys(QUEUES, 0)}
    with contextlib.suppress(TimeoutError):
        cluster.wait_for(lambda: following() == expected, timeout=30)
    assert following() == expected  # the tables that did not follow, named
    live_budgets = {
        (b["metadata"]["namespace"], b["metadata"]["name"]) for b in cluster.list(CB, "costbudgets")
    }
    assert operator.runtime.work.writer.waiting() <= live_budgets  # no deleted budget's status
    assert _tracked(operator)["spend_written"] <= len(seeded)
    cluster.wait_for(lambda: not _records_in_memory(deleted), timeout=30)

    # Every crossing acted on once: one Event per threshold, one DELETE per pod, one attempt.
    events = churn.threshold_events(cluster.list("v1", "events"))
    assert {key: n for key, n in events.items() if n != 1} == {}
    for name, _ in crossings:
        assert (
            events[(churn.CROSSING_NAMESPACE, name, 80)] == events[(churn.CROSSING_NAMESPACE, name, 100)] == 1
        )
    assert sorted(kills) == sorted(pod for _, pod in crossings)  # one DELETE per crossing pod
    assert cluster.list("v1", "pods", namespace=churn.CROSSING_NAMESPACE) == []
    crossed = sorted(key[:2] for key in events if key[0] != churn.CROSSING_NAMESPACE)
    assert crossed == [(f"team-{n}", f"group-{g}") for n in range(NAMESPACES) for g in (1, 11)]

    assert operator.error is None
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or "failed" in r.getMessage()]
    assert problems == []


def _result(cluster: ThreadedSimCluster, budget: str, percent: int) -> str | None:
    obj = cluster.get(CB, "costbudgets", budget, namespace=churn.CROSSING_NAMESPACE) or {}
    for record in (obj.get("status") or {}).get("actions") or []:
        if record["id"].startswith(f"threshold/{percent}/"):
            assert record["attempts"] <= 1, record
            return str(record["result"])
    return None
