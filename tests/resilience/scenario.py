"""The scripted guardrail scenario that the crash and failover tests run, and its end state.

Two SkyPilot pods (head and worker) on nodes priced at 60 USD/h each start 20 s before T0: the
budget (limit 20 USD, Lifetime) spends 2 USD a minute. The clock moves in one-minute steps: the
50 % Notify is decided at step 5 (10.67 USD), the 100 % Kill at step 10 (20.67 USD), after which
both pods are gone and the spend stays at 2 x 620 s x 1/60 USD = 20.666... USD. Both records notify
a webhook (a local receiver that counts deliveries per Idempotency-Key).

The clock is gated: it moves to the next step only once the operator has caught up with the
current one (``status.lastEvaluated`` is the step's time, every record and notification is final
and the ledger's pods are marked at that time). A killed operator is restarted at once, and the
clock waits for it; so an interrupted run sees the same moments as an uninterrupted one, and
any difference in the end state is the operator's, not the schedule's.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from costwarden.models import CostBudgetStatus
from costwarden.records import format_time
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.conftest import load_crd
from tests.component.test_enforcement import secret
from tests.resilience.harness import ApiProxy, Exchange, OperatorProcess, SharedClock, Verdict

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=1)
STEPS = 12  # the Kill is decided at step 10; two more show nothing moves after it
STARTED = T0 - timedelta(seconds=20)
NS = "research"
BUDGET = "llama-sweep"
CLUSTER = "llama-sweep-2ea4"
HOURLY = "60"  # USD/h per node (and pod): a dollar a minute
NOTIFY_ID = "threshold/50/lifetime"
KILL_ID = "threshold/100/lifetime"
STATUS_PATH = f"/apis/costwarden.dev/v1alpha1/namespaces/{NS}/costbudgets/{BUDGET}/status"
PODS_PATH = f"/api/v1/namespaces/{NS}/pods/"
# Both pods for 10 min 20 s at 1/60 USD a second: 10.333333333 USD each in whole nanodollars.
EXPECTED_SPEND = Decimal("20.666666666")


# ---- the world


def budget_body() -> dict[str, Any]:
    return {
        "apiVersion": "costwarden.dev/v1alpha1",
        "kind": "CostBudget",
        "metadata": {"name": BUDGET, "namespace": NS},
        "spec": {
            "limit": 20,
            "period": "Lifetime",
            "skypilotCluster": BUDGET,
            "selector": {"matchLabels": {"skypilot-cluster-name": CLUSTER}},
            "thresholds": [{"percent": 50, "action": "Notify"}, {"percent": 100, "action": "Kill"}],
            "notify": {"webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}}},
        },
    }


def seed(cluster: ThreadedSimCluster, hook_url: str) -> list[str]:
    cluster.create(load_crd())
    cluster.create(shapes.namespace(NS))
    names = []
    for index, role in enumerate(("head", "worker")):
        node = shapes.eks_p5_node(f"gpu-{index}")
        node["metadata"]["annotations"] = {"costwarden.dev/hourly-price": HOURLY}
        cluster.create(node)
        pod = shapes.skypilot_pod(CLUSTER, BUDGET, namespace=NS, node=f"gpu-{index}", role=role, index=index)
        name = cluster.create(pod)["metadata"]["name"]
        cluster.patch(
            "v1", "pods", name, {"status": shapes.running_status(STARTED)}, namespace=NS, subresource="status"
        )
        names.append(name)
    cluster.create(secret("hooks", url=hook_url))
    cluster.create(budget_body())
    return names


def status_of(cluster: ThreadedSimCluster) -> dict[str, Any]:
    obj = cluster.get("costwarden.dev/v1alpha1", "costbudgets", BUDGET, namespace=NS) or {}
    return dict(obj.get("status") or {})


def caught_up(cluster: ThreadedSimCluster, now: datetime) -> bool:
    """The operator has evaluated ``now``, settled every record, and marked its pods at ``now``."""
    raw = status_of(cluster)
    if raw.get("lastEvaluated") != format_time(now):
        return False
    for record in raw.get("actions") or []:
        if record.get("result") == "Pending" or record.get("notification") == "Pending":
            return False
    ledger = CostBudgetStatus.model_validate(raw).ledger
    return all(entry.at == format_time(now) for entry in ledger.pods.values())


# ---- the webhook receiver


class HookReceiver:
    """Counts webhook deliveries per Idempotency-Key; ``before_answer`` runs before each answer
    (a test kills the operator there: the message arrived, the operator never heard back)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[float, str]] = []  # (monotonic time, Idempotency-Key)
        self.before_answer: Callable[[str], None] | None = None
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def counts(self) -> Counter[str]:
        return Counter(key for _, key in list(self.deliveries))

    def __enter__(self) -> HookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key") or ""
                receiver.deliveries.append((time.monotonic(), key))
                if receiver.before_answer is not None:
                    receiver.before_answer(key)
                with contextlib.suppress(OSError):  # the operator may be gone
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"received": true}')

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


# ---- kill points


def _records(exchange: Exchange) -> list[dict[str, Any]]:
    body = exchange.json()
    if exchange.method != "PATCH" or not exchange.path.startswith(STATUS_PATH) or not isinstance(body, dict):
        return []
    return list((body.get("status") or {}).get("actions") or [])


def _record(exchange: Exchange, record_id: str) -> dict[str, Any]:
    return next((r for r in _records(exchange) if r.get("id") == record_id), {})


def _pod_delete(exchange: Exchange) -> bool:
    return exchange.method == "DELETE" and exchange.path.startswith(PODS_PATH)


@dataclass(frozen=True)
class Point:
    """A named kill point: where (the proxy before forwarding, after the server answered, or the
    receiver before answering), what it matches, and whether it is inside the documented
    at-least-once window of a notification (delivered, not yet recorded Sent)."""

    name: str
    stage: str  # "request" | "response" | "receiver"
    matches: Callable[[Exchange], bool]
    window: str | None = None  # the record whose notification may then be delivered twice
    says: str = ""


POINTS = {
    p.name: p
    for p in (
        Point(
            "notify-decided-unstored",
            "request",
            lambda e: _record(e, NOTIFY_ID).get("notification") == "Pending",
            says="the 50 % crossing is decided; the write storing it never reaches the server",
        ),
        Point(
            "notify-decided-stored",
            "response",
            lambda e: _record(e, NOTIFY_ID).get("notification") == "Pending",
            says="right after the crossing is decided: its Pending record is stored, unanswered",
        ),
        Point(
            "notify-delivered",
            "receiver",
            lambda e: False,
            window=NOTIFY_ID,
            says="the receiver has the 50 % message; the operator dies before the answer",
        ),
        Point(
            "notify-sent-unrecorded",
            "request",
            lambda e: _record(e, NOTIFY_ID).get("notification") == "Sent",
            window=NOTIFY_ID,
            says="delivered and answered; the write recording Sent never reaches the server",
        ),
        Point(
            "kill-decided-unstored",
            "request",
            lambda e: _record(e, KILL_ID).get("result") == "Pending",
            says="the 100 % Kill is decided; the write storing it Pending never reaches the server",
        ),
        Point(
            "kill-pending-stored",
            "response",
            lambda e: _record(e, KILL_ID).get("result") == "Pending",
            says="between the Pending record and the action: stored, nothing deleted yet",
        ),
        Point(
            "before-first-delete",
            "request",
            _pod_delete,
            says="the first pod delete is sent but never reaches the server",
        ),
        Point(
            "between-deletes",
            "response",
            _pod_delete,
            says="the first pod is deleted, the second not yet",
        ),
        Point(
            "deleted-unrecorded",
            "request",
            lambda e: _record(e, KILL_ID).get("result") == "Done",
            says="both pods deleted; the write recording Done never reaches the server",
        ),
        Point(
            "kill-notice-delivered",
            "receiver",
            lambda e: False,
            window=KILL_ID,
            says="the receiver has the Kill's message; the operator dies before the answer",
        ),
    )
}


@dataclass(frozen=True)
class Plan:
    """Where one run kills the operator: named points (each once, at its first match), the n-th
    mutating request through the proxy (dropped or forwarded, at random), and moments after a
    clock step (seconds after the step began, or when the operator caught up, whichever first)."""

    points: tuple[str, ...] = ()
    nth_requests: tuple[tuple[int, bool], ...] = ()  # (n, the request reaches the server)
    timed: tuple[tuple[int, float], ...] = ()  # (step, seconds)

    @classmethod
    def random(
        cls, rng: random.Random, *, points: tuple[str, ...] = (), requests: int = 1, timed: int = 1
    ) -> Plan:
        # An uninterrupted run makes 46 mutating requests (17 status writes, 20 annotations, 7
        # Events, 2 deletes), the deletes near the 40th, and a restarted operator makes more:
        # every draw among the first 44 fires.
        nth = tuple(sorted((n, rng.random() < 0.5) for n in rng.sample(range(3, 45), requests)))
        steps = rng.sample(range(STEPS), timed)
        moments = tuple(sorted((step, round(rng.uniform(0.0, 1.5), 3)) for step in steps))
        return cls(points, nth, moments)


@dataclass
class Kill:
    at: float  # monotonic
    step: int
    how: str  # the point's name, "request #n (forwarded|dropped)", or "timed +s"


@dataclass
class EndState:
    actions: list[
        tuple[str, str, str, str | None, tuple[str, ...]]
    ]  # id, action, result, notification, targets
    messages: dict[str, str]
    attempts: dict[str, int]
    spend: Decimal  # closedSpend + the pods' figures: exact
    shown_spend: Any  # status.spend as displayed
    deletes: dict[str, list[int | None]]  # pod name -> answers of the DELETEs that came through the proxy
    deliveries: Counter[str]
    kills: list[Kill]
    windows: dict[str, int]  # record id -> kills inside its at-least-once window
    starts: int
    seconds: float
    events: Counter[str] = field(default_factory=Counter)


def exact_spend(raw: dict[str, Any]) -> Decimal:
    ledger = CostBudgetStatus.model_validate(raw).ledger
    return ledger.closed_spend + sum((e.spend - e.baseline for e in ledger.pods.values()), Decimal(0))


def run(tmp: Path, plan: Plan, *, timeout: float = 240.0) -> EndState:
    """The scenario once, killing the operator as ``plan`` says and restarting it each time."""
    tmp.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    clock = SharedClock(T0, tmp / "clock")
    kills: list[Kill] = []
    step = 0
    with (
        ThreadedSimCluster(clock=clock) as cluster,
        HookReceiver() as receiver,
        ApiProxy(cluster.url) as proxy,
    ):
        seed(cluster, receiver.url)
        operator = OperatorProcess(
            proxy.write_kubeconfig(tmp / "kubeconfig"), clock.path, tmp / "operator.log"
        )
        fired: set[str] = set()
        lock = threading.Lock()
        mutating = 0
        answered_later: dict[int, int] = {}  # id(exchange) -> n: kill once the server answered

        def kill(how: str) -> None:
            operator.kill()
            kills.append(Kill(time.monotonic(), step, how))

        def at_point(stage: str, exchange: Exchange) -> Verdict:
            for name in plan.points:
                point = POINTS[name]
                if point.stage == stage and name not in fired and point.matches(exchange):
                    fired.add(name)
                    kill(name)
                    return Verdict.DROP
            return Verdict.FORWARD

        def on_request(exchange: Exchange) -> Verdict:
            nonlocal mutating
            with lock:
                if at_point("request", exchange) is Verdict.DROP:
                    return Verdict.DROP
                if not exchange.mutating:
                    return Verdict.FORWARD
                mutating += 1
                for n, reaches in plan.nth_requests:
                    if n == mutating:
                        if not reaches:
                            kill(f"request #{n} {exchange.method} dropped")
                            return Verdict.DROP
                        answered_later[id(exchange)] = n
                return Verdict.FORWARD

        def on_response(exchange: Exchange, status: int, body: bytes) -> Verdict:
            with lock:
                if at_point("response", exchange) is Verdict.DROP:
                    return Verdict.DROP
                n = answered_later.pop(id(exchange), None)
                if n is not None:
                    kill(f"request #{n} {exchange.method} reached the server, unanswered")
                    return Verdict.DROP
                return Verdict.FORWARD

        def before_answer(key: str) -> None:
            with lock:
                for name in plan.points:
                    point = POINTS[name]
                    if (
                        point.stage == "receiver"
                        and name not in fired
                        and point.window
                        and key.endswith(point.window)
                    ):
                        fired.add(name)
                        kill(name)

        proxy.on_request, proxy.on_response, receiver.before_answer = on_request, on_response, before_answer
        timed = dict(plan.timed)
        try:
            operator.start()
            for step in range(STEPS + 1):
                now = T0 + step * STEP if step == 0 else clock.advance(STEP)
                began = time.monotonic()
                while True:
                    if time.monotonic() - started > timeout:
                        raise TimeoutError(
                            f"step {step} not caught up within {timeout:g}s\n{operator.log_text()[-4000:]}"
                        )
                    done = caught_up(cluster, now)
                    if step in timed and (done or time.monotonic() - began >= timed[step]):
                        with lock:
                            kill(
                                f"timed +{timed.pop(step):g}s at step {step}"
                                + (" (caught up)" if done else "")
                            )
                        done = False
                    if not operator.alive():
                        operator.start()
                        continue
                    if done:
                        break
                    time.sleep(0.03)
            raw = status_of(cluster)
        finally:
            operator.stop()
        log = operator.log_text()
        assert "Traceback" not in log, log[-6000:]
        return end_state(raw, proxy, receiver, kills, operator.starts, time.monotonic() - started, cluster)


def end_state(
    raw: dict[str, Any],
    proxy: ApiProxy,
    receiver: HookReceiver,
    kills: list[Kill],
    starts: int,
    seconds: float,
    cluster: ThreadedSimCluster,
) -> EndState:
    records = raw.get("actions") or []
    deletes: dict[str, list[int | None]] = {}
    for passed in proxy.requests("DELETE", PODS_PATH):
        deletes.setdefault(passed.path.removeprefix(PODS_PATH).split("?")[0], []).append(passed.status)
    windows = Counter[str]()
    for kill in kills:
        point = POINTS.get(kill.how)
        if point is not None and point.window:
            windows[point.window] += 1
        # A kill at another point can also fall inside a window: between a delivery of the
        # record's message and the write that stores it Sent.
        for record_id in (NOTIFY_ID, KILL_ID):
            delivered = [at for at, key in receiver.deliveries if key.endswith(record_id)]
            recorded = [
                p.at
                for p in proxy.passed
                if p.status == 200
                and _record(Exchange(p.method, p.path, p.body), record_id).get("notification") == "Sent"
            ]
            if (
                (point is None or point.window != record_id)
                and delivered
                and delivered[0] <= kill.at <= min(recorded, default=float("inf"))
            ):
                windows[record_id] += 1
    events = Counter(str(e.get("reason")) for e in cluster.list("v1", "events", namespace=NS))
    return EndState(
        actions=[
            (r["id"], r["action"], r["result"], r.get("notification"), tuple(r.get("targets") or ()))
            for r in records
        ],
        messages={r["id"]: r.get("message", "") for r in records},
        attempts={r["id"]: int(r.get("attempts") or 0) for r in records},
        spend=exact_spend(raw),
        shown_spend=raw.get("spend"),
        deletes=deletes,
        deliveries=receiver.counts(),
        kills=kills,
        windows=dict(windows),
        starts=starts,
        seconds=seconds,
        events=events,
    )
