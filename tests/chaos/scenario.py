"""The chaos scenario (issue 12): one fixed workload, one scripted timeline, run fault-free and
under each fault profile, and compared.

The workload: three namespaces on eight EKS p5.48xlarge nodes (55.04 USD/h each, one pod per
node). team-a runs a SkyPilot cluster (head and worker; a second worker joins at 2 h) under
``llama`` (limit 400: Notify at 50 % and 80 %, Kill at 100 %); team-b a Deployment's two pods
under ``serve`` (limit 450: Notify at 50 %, Scale at 100 %); team-c a Job's pod under ``evals``
(limit 150: Suspend at 100 %) and, with a notebook pod that its user deletes at 3 h, under the
namespace-wide ``research`` (limit 100,000, an idle-GPU Kill rule after 30 minutes). Every budget
notifies a webhook, Slack (a bot token and a channel) and PagerDuty, all served by one local
receiver (``outside.HookReceiver``). The harness plays the controllers: pods of a Deployment
scaled to 0 and of a suspended Job are deleted once the operator has done so.

The timeline moves a ``ManualClock`` (start, +1 h, +1 h with a new node and worker, +1 h, the
notebook deleted, +1 h, +2 h). After each step the harness waits until the operator has caught
up: every budget evaluated at the step's time, covering the pods that exist, no action and no
notification Pending, and its status unchanged for ``QUIET_S``. The clock stands still while it
waits, so however late the operator gets there, the figures it must reach are the same. Pods are
deleted only once the operator has caught up with the clock: it closes a vanished pod at its
last accrued figure (at most one accrual interval old when the clock runs, but a whole step old
when the clock has just jumped an hour), so a deletion right after a jump would make the figure
depend on whether an accrual pass came in between.

A profile adds faults: the stand-in's fault layer (``costwarden.sim.faults``), notification
receivers (webhook, Slack, PagerDuty) that fail or hang, Prometheus answering garbage. ``run``
returns what it ended with; ``compare`` says how it differs from the fault-free run (empty: it
converged to the same place).
Elsewhere: a cloud API that throttles is tests/component/test_cloud_vms.py's 503 test (the Kill
waits, attempts unspent, and proceeds once the cloud answers), a billing export cut in half is
test_billing_cut.py here, watch cuts on a quiet stream test_watch_cuts.py, and throttled
destructive actions test_throttled_actions.py.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from costwarden.demo.shapes import running_status
from costwarden.notify.delivery import Notifier
from costwarden.notify.retry import RetryPolicy
from costwarden.operator.app import OperatorThread
from costwarden.operator.settings import OperatorSettings
from costwarden.records import format_time
from costwarden.sim.faults import Faults
from costwarden.sim.routing import parse_api_path
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.chaos.outside import HookReceiver, JunkPrometheus
from tests.clock import ManualClock

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CB = "costwarden.dev/v1alpha1"
QUIET_S = 1.0  # a settled status must stay unchanged this long (three evaluation intervals)
STEP_TIMEOUT_S = 120.0
HOOK_TIMEOUT_S = 1.0  # the notifier's timeout here (10 s in production), so that hangs are short
TOLERANCE = Decimal("0.005")  # spend within 0.5 % of the fault-free run


@dataclass(frozen=True)
class Profile:
    name: str
    about: str
    faults: Faults | None = None  # the stand-in's fault layer
    hook_fail_first: int = 0  # the receivers answer 500 to the first deliveries of each notification
    hook_hang_first: int = 0  # ... then holds the next ones past the sender's timeout
    prometheus_garbage: bool = False  # --prometheus-url answers garbage


COMBINED = Faults(
    error=0.05,
    throttle=0.05,
    retry_after=1,
    delay=0.05,
    delay_s=0.3,
    conflict=0.05,
    gone=0.3,
    lost=0.03,
    cut_watch=20,
    cut_watch_s=3.0,
    seed=7,
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("fault-free", "no faults"),
        Profile("api-errors", "10 % of API requests answered 500", Faults(error=0.10, seed=1)),
        Profile("api-throttle", "20 % answered 429, Retry-After 1 s", Faults(throttle=0.20, seed=12)),
        Profile("api-slow", "20 % served 0.5 s late", Faults(delay=0.20, delay_s=0.5, seed=3)),
        Profile(
            "watch-cuts",
            "every watch cut mid-event after 3 events or 1 s",
            Faults(cut_watch=3, cut_watch_s=1.0, seed=4),
        ),
        Profile(
            "watch-gone",
            "watches cut after 1 s; half the watches resumed from a resourceVersion answered 410",
            Faults(gone=0.5, cut_watch_s=1.0, seed=5),
        ),
        Profile("write-conflicts", "30 % of PATCH/PUT answered 409", Faults(conflict=0.30, seed=6)),
        Profile("lost-writes", "10 % of writes carried out but answered 504", Faults(lost=0.10, seed=8)),
        Profile(
            "combined",
            f"all of them at once: {COMBINED.spec()}; the receivers fail the first delivery",
            COMBINED,
            hook_fail_first=1,
        ),
        Profile(
            "receivers-down",
            "the webhook, Slack and PagerDuty answer 500 to the first 2 deliveries of each notification",
            hook_fail_first=2,
        ),
        Profile(
            "receivers-hang",
            f"the webhook, Slack and PagerDuty hold the first delivery of each notification past the "
            f"sender's {HOOK_TIMEOUT_S:g} s timeout",
            hook_hang_first=1,
        ),
        Profile(
            "prometheus-garbage", "--prometheus-url answers garbage to every query", prometheus_garbage=True
        ),
    )
}
FAST = "combined"  # the profile of the fast slice in make test


# ---- the workload


@dataclass(frozen=True)
class Budget:
    namespace: str
    name: str
    covers: Callable[[dict[str, Any]], bool]  # a pod of the namespace

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _label(key: str, value: str) -> Callable[[dict[str, Any]], bool]:
    return lambda pod: (pod["metadata"].get("labels") or {}).get(key) == value


BUDGETS = (
    Budget("team-a", "llama", _label("skypilot-cluster-name", "llama-2ea4")),
    Budget("team-b", "serve", _label("app", "inference")),
    Budget("team-c", "evals", _label("app", "eval")),
    Budget("team-c", "research", lambda pod: True),
)
NODES = [f"ip-10-0-{index}-10.ec2.internal" for index in range(1, 9)]


def _node(index: int) -> dict[str, Any]:
    body = shapes.eks_p5_node(NODES[index])
    body["spec"]["providerID"] = f"aws:///us-east-1a/i-0chaos{index:011d}"
    return body


def _budget(namespace: str, name: str, limit: int, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": CB,
        "kind": "CostBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "limit": limit,
            "period": "Lifetime",
            "notify": {
                "webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}},
                "slack": {"channel": "#gpu-costs", "tokenSecretRef": {"name": "hooks", "key": "slack-token"}},
                "pagerduty": {"routingKeySecretRef": {"name": "hooks", "key": "pagerduty-key"}},
            },
            **spec,
        },
    }


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
    }


def _gpu_pod(
    name: str, namespace: str, node: int, labels: dict[str, str], owner: dict[str, Any] | None
) -> dict[str, Any]:
    body = shapes.plain_pod(name, namespace=namespace, node=NODES[node], labels=labels)
    body["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "8"
    if owner is not None:
        body["metadata"]["ownerReferences"] = [owner]
    return body


def _start(cluster: ThreadedSimCluster, body: dict[str, Any], started: datetime) -> None:
    created = cluster.create(body)
    meta = created["metadata"]
    container = body["spec"]["containers"][0]["name"]
    status = {"status": running_status(started, container)}
    cluster.patch("v1", "pods", meta["name"], status, namespace=meta["namespace"], subresource="status")


def _llama_pod(role: str, index: int) -> dict[str, Any]:
    return shapes.skypilot_pod(
        "llama-2ea4", "llama", namespace="team-a", node=NODES[index], role=role, index=index
    )


def seed_workload(cluster: ThreadedSimCluster, hook_url: str) -> None:
    for namespace in ("team-a", "team-b", "team-c"):
        cluster.create(shapes.namespace(namespace))
        cluster.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "hooks", "namespace": namespace},
                "data": {
                    key: base64.b64encode(value.encode()).decode()
                    for key, value in (
                        ("url", f"{hook_url}/hook"),
                        ("slack-token", "xoxb-chaos-token"),
                        ("pagerduty-key", "R0UT1NGKEY0000000000000000000000"),
                    )
                },
            }
        )
    for index in range(len(NODES)):
        if index != 2:  # the third llama worker's node comes with it
            cluster.create(_node(index))
    before = T0 - timedelta(hours=1)
    _start(cluster, _llama_pod("head", 0), before)
    _start(cluster, _llama_pod("worker", 1), before)

    template = {"metadata": {"labels": {"app": "inference"}}, "spec": {"containers": [{"name": "main"}]}}
    deployment = cluster.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "inference", "namespace": "team-b"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "inference"}}, "template": template},
        }
    )
    replicas = cluster.create(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "inference-5d9c",
                "namespace": "team-b",
                "ownerReferences": [_owner(deployment)],
            },
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "inference"}}, "template": template},
        }
    )
    for letter, node in (("a", 3), ("b", 4)):
        _start(
            cluster,
            _gpu_pod(f"inference-5d9c-{letter}", "team-b", node, {"app": "inference"}, _owner(replicas)),
            T0,
        )

    job = cluster.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "eval", "namespace": "team-c"},
            "spec": {"template": {"spec": {"containers": [{"name": "main"}], "restartPolicy": "Never"}}},
        }
    )
    _start(cluster, _gpu_pod("eval-x1", "team-c", 5, {"app": "eval"}, _owner(job)), before)
    _start(cluster, _gpu_pod("notebook", "team-c", 6, {"app": "notebook"}, None), T0)

    thresholds = [{"percent": 50, "action": "Notify"}, {"percent": 80, "action": "Notify"}]
    cluster.create(
        _budget(
            "team-a",
            "llama",
            400,
            {
                "skypilotCluster": "llama",
                "selector": {"matchLabels": {"skypilot-cluster-name": "llama-2ea4"}},
                "thresholds": [*thresholds, {"percent": 100, "action": "Kill"}],
            },
        )
    )
    cluster.create(
        _budget(
            "team-b",
            "serve",
            450,
            {
                "selector": {"matchLabels": {"app": "inference"}},
                "thresholds": [{"percent": 50, "action": "Notify"}, {"percent": 100, "action": "Scale"}],
            },
        )
    )
    cluster.create(
        _budget(
            "team-c",
            "evals",
            150,
            {
                "selector": {"matchLabels": {"app": "eval"}},
                "thresholds": [{"percent": 100, "action": "Suspend"}],
            },
        )
    )
    cluster.create(
        _budget(
            "team-c",
            "research",
            100_000,
            {
                "selector": {},
                "thresholds": [{"percent": 50, "action": "Notify"}],
                "anomalies": {"idleGpu": {"belowPercent": 5, "forMinutes": 30, "action": "Kill"}},
            },
        )
    )


def _add_worker(cluster: ThreadedSimCluster, now: datetime) -> None:
    """SkyPilot scales the cluster up: a new node, and a worker on it."""
    cluster.create(_node(2))
    _start(cluster, _llama_pod("worker", 2), now)


def _delete_notebook(cluster: ThreadedSimCluster, now: datetime) -> None:
    if cluster.get("v1", "pods", "notebook", namespace="team-c") is not None:  # not killed as idle
        cluster.delete("v1", "pods", "notebook", namespace="team-c")


@dataclass(frozen=True)
class Step:
    label: str
    advance: timedelta
    change: Callable[[ThreadedSimCluster, datetime], None] | None = None


TIMELINE = (
    Step("start", timedelta(0)),
    Step("+1 h", timedelta(hours=1)),
    Step("+1 h, a new node and a third llama worker", timedelta(hours=1), _add_worker),
    Step("+1 h", timedelta(hours=1)),
    Step("the notebook deleted", timedelta(0), _delete_notebook),
    Step("+1 h", timedelta(hours=1)),
    Step("+2 h", timedelta(hours=2)),
)


def play_controllers(cluster: ThreadedSimCluster) -> int:
    """What the Deployment and Job controllers would do after a Scale or a Suspend: delete the
    pods of a Deployment at 0 replicas and of a suspended Job. The number of pods deleted."""
    deleted = 0
    deployment = cluster.get("apps/v1", "deployments", "inference", namespace="team-b") or {}
    job = cluster.get("batch/v1", "jobs", "eval", namespace="team-c") or {}
    stopped = []
    if deployment.get("spec", {}).get("replicas") == 0:
        stopped.append(("team-b", "inference"))
    if job.get("spec", {}).get("suspend") is True:
        stopped.append(("team-c", "eval"))
    for namespace, app in stopped:
        for pod in cluster.list("v1", "pods", namespace=namespace):
            if (pod["metadata"].get("labels") or {}).get("app") == app:
                cluster.delete("v1", "pods", pod["metadata"]["name"], namespace=namespace)
                deleted += 1
    return deleted


# ---- waiting for the operator


def _budgets(cluster: ThreadedSimCluster) -> dict[str, dict[str, Any]]:
    found = {}
    for body in cluster.list(CB, "costbudgets"):
        meta = body["metadata"]
        found[f"{meta['namespace']}/{meta['name']}"] = dict(body.get("status") or {})
    return found


def _expected_pods(cluster: ThreadedSimCluster) -> dict[str, int]:
    pods: dict[str, list[dict[str, Any]]] = {}
    for budget in BUDGETS:
        if budget.namespace not in pods:
            pods[budget.namespace] = cluster.list("v1", "pods", namespace=budget.namespace)
    return {b.key: sum(1 for pod in pods[b.namespace] if b.covers(pod)) for b in BUDGETS}


def _view(status: dict[str, Any]) -> tuple[Any, ...]:
    actions = tuple(
        (a.get("id"), a.get("result"), a.get("notification")) for a in status.get("actions") or []
    )
    return (status.get("lastEvaluated"), status.get("spend"), status.get("pods", 0), actions)


def _unsettled(cluster: ThreadedSimCluster, now: datetime) -> tuple[list[str], tuple[Any, ...]]:
    """Why the operator has not caught up with ``now`` (empty: it has), and what it shows."""
    statuses, expected = _budgets(cluster), _expected_pods(cluster)
    reasons = []
    for budget in BUDGETS:
        status = statuses.get(budget.key, {})
        if status.get("lastEvaluated") != format_time(now):
            reasons.append(f"{budget.key}: evaluated at {status.get('lastEvaluated')}")
        if status.get("pods", 0) != expected[budget.key]:
            reasons.append(f"{budget.key}: {status.get('pods', 0)} pods, {expected[budget.key]} exist")
        for record in status.get("actions") or []:
            if record.get("result") == "Pending" or record.get("notification") == "Pending":
                reasons.append(
                    f"{budget.key}: {record['id']} {record.get('result')}/{record.get('notification')}"
                )
    return reasons, tuple(_view(statuses.get(b.key, {})) for b in BUDGETS)


def settle(
    cluster: ThreadedSimCluster, now: datetime, timeout: float = STEP_TIMEOUT_S
) -> tuple[float, list[str]]:
    """Wait until the operator has caught up with ``now`` and stayed there for ``QUIET_S``.
    Seconds until it first got there for good, and what was missing at the timeout (empty: it
    converged)."""
    started = time.monotonic()
    deadline = started + timeout
    since: float | None = None
    seen: tuple[Any, ...] | None = None
    reasons: list[str] = []
    while time.monotonic() < deadline:
        reasons, view = _unsettled(cluster, now)
        moment = time.monotonic()
        if reasons or view != seen:
            since = None if reasons else moment
            seen = view
        elif since is not None and moment - since >= QUIET_S:
            return since - started, []
        time.sleep(0.05)
    return time.monotonic() - started, reasons or ["status still changing"]


# ---- one run


class _Captured(logging.Handler):
    """Warnings and errors logged anywhere while a run lasts."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock2:
            self.records.append(record)


@contextmanager
def _captured() -> Iterator[_Captured]:
    handler = _Captured()
    root = logging.getLogger()
    level = root.level
    if root.getEffectiveLevel() > logging.WARNING:  # a quieter root would drop them before any handler
        root.setLevel(logging.WARNING)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@dataclass
class RunResult:
    profile: str
    spend: dict[str, Decimal] = field(default_factory=dict)
    actions: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)  # id, action, result
    notifications: dict[str, str] = field(default_factory=dict)  # record key: the record's state
    deliveries: dict[str, int] = field(default_factory=dict)  # acknowledged per key
    forced: int = 0  # deliveries the receiver failed or held (each forced a resend)
    received: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    faulted: dict[str, int] = field(default_factory=dict)  # "kind METHOD resource[/subresource]": count
    steps: list[tuple[str, float]] = field(default_factory=list)  # seconds to converge
    trail: list[dict[str, Any]] = field(default_factory=list)  # each budget's spend after each step
    unconverged: list[str] = field(default_factory=list)
    operator_error: str | None = None
    tracebacks: list[str] = field(default_factory=list)  # errors logged with a traceback
    warnings: int = 0
    errors: int = 0  # errors logged, with a traceback or not (kopf logs its retries as errors)
    logged: dict[str, int] = field(default_factory=dict)  # warnings and errors by logger and format
    prometheus_queries: int = 0
    wall_s: float = 0.0

    @property
    def converged(self) -> bool:
        return not self.unconverged

    @property
    def slowest_step_s(self) -> float:
        return max((s for _, s in self.steps), default=0.0)


def run(profile: Profile, workdir: Path) -> RunResult:
    """The timeline under ``profile``; what the operator ended with."""
    result = RunResult(profile.name)
    started = time.monotonic()
    clock = ManualClock(T0)
    crd = yaml.safe_load((ROOT / "crds" / "costbudget.yaml").read_text())
    with ExitStack() as stack:
        capture = stack.enter_context(_captured())
        hooks = stack.enter_context(
            HookReceiver(
                fail_first=profile.hook_fail_first,
                hang_first=profile.hook_hang_first,
                hang_s=2 * HOOK_TIMEOUT_S,
            )
        )
        cluster = stack.enter_context(ThreadedSimCluster(workdir / "kubeconfig"))
        cluster.create(crd)
        seed_workload(cluster, hooks.url)
        extra: dict[str, Any] = {}
        prometheus = None
        if profile.prometheus_garbage:
            pods = [("team-c", "eval-x1"), ("team-c", "notebook"), ("team-a", "llama-2ea4-head")]
            prometheus = stack.enter_context(JunkPrometheus(pods, clock))
            extra = {
                "prometheus_url": prometheus.url,
                "telemetry_interval": 0.3,
                "telemetry_stale_after": 3600.0,
            }
        settings = OperatorSettings(
            kubeconfig=cluster.kubeconfig,
            interval=0.3,
            accrual_interval=0.3,
            status_interval=0.3,
            metrics_port=0,
            annotation_interval=60.0,
            notify_attempts=4,
            notify_backoff=0.2,
            **extra,
        )
        cluster.set_faults(profile.faults)
        operator = OperatorThread(settings, clock=clock)
        operator.runtime.notifier = Notifier(
            slack_base_url=f"{hooks.url}/slack/",
            pagerduty_url=f"{hooks.url}/pagerduty",
            retry=RetryPolicy(max_attempts=settings.notify_attempts, base_delay=settings.notify_backoff),
            timeout_s=HOOK_TIMEOUT_S,
        )
        try:
            operator.start(timeout=60)
            for step in TIMELINE:
                now = clock.advance(step.advance)
                if step.change is not None:
                    step.change(cluster, now)
                seconds, missing = settle(cluster, now)
                if not missing and play_controllers(cluster):
                    more, missing = settle(cluster, now)
                    seconds += more
                result.steps.append((step.label, round(seconds, 2)))
                statuses = _budgets(cluster)
                result.trail.append(
                    {key: statuses.get(key, {}).get("spend") for key in (b.key for b in BUDGETS)}
                )
                if missing:
                    result.unconverged = [f"{step.label}: {reason}" for reason in missing]
                    break
        finally:
            result.faults = cluster.fault_counts()
            result.faulted = dict(Counter(_what(*one) for one in cluster.faults_injected()).most_common())
            cluster.set_faults(None)
            operator.stop()
        result.operator_error = repr(operator.error) if operator.error is not None else None
        statuses = _budgets(cluster)
        for budget in BUDGETS:
            status = statuses.get(budget.key, {})
            result.spend[budget.key] = Decimal(str(status.get("spend", 0)))
            result.actions[budget.key] = {
                (a["id"], a["action"], a.get("result", "")) for a in status.get("actions") or []
            }
            for a in status.get("actions") or []:
                if a.get("notification"):
                    result.notifications[f"{budget.key}/{a['id']}"] = a["notification"]
        result.deliveries = dict(hooks.acknowledged)
        result.received = sum(hooks.received.values())
        result.forced = sum(hooks.failed.values()) + sum(hooks.hung.values())
        result.prometheus_queries = prometheus.queries if prometheus is not None else 0
        result.warnings = sum(1 for r in capture.records if r.levelno == logging.WARNING)
        result.errors = sum(1 for r in capture.records if r.levelno >= logging.ERROR)
        result.logged = dict(
            Counter(f"{r.levelname} {r.name}: {r.msg}"[:120] for r in capture.records).most_common()
        )
        result.tracebacks = [
            f"{r.name}: {r.getMessage()}"
            for r in capture.records
            if r.levelno >= logging.ERROR and r.exc_info
        ]
    result.wall_s = round(time.monotonic() - started, 1)
    return result


def _what(kind: str, method: str, path: str) -> str:
    api_path = parse_api_path(path)
    if api_path is None or api_path.plural is None:
        return f"{kind} {method} {path}"
    sub = f"/{api_path.subresource}" if api_path.subresource else ""
    return f"{kind} {method} {api_path.plural}{sub}"


def compare(baseline: RunResult, other: RunResult) -> list[str]:
    """How ``other`` differs from the fault-free ``baseline`` (empty: the same place)."""
    problems = [f"did not converge: {reason}" for reason in other.unconverged]
    if other.operator_error:
        problems.append(f"the operator died: {other.operator_error}")
    problems += [f"traceback logged: {text}" for text in other.tracebacks]
    for key, spend in baseline.spend.items():
        got = other.spend.get(key, Decimal(0))
        if abs(got - spend) > TOLERANCE * spend:
            problems.append(f"{key}: spend {got}, fault-free {spend} (beyond 0.5 %)")
    for key, records in baseline.actions.items():
        if other.actions.get(key) != records:
            problems.append(
                f"{key}: actions {sorted(other.actions.get(key, set()))}, fault-free {sorted(records)}"
            )
    if other.notifications != baseline.notifications:
        problems.append(f"notification states {other.notifications}, fault-free {baseline.notifications}")
    wrong = {key: n for key, n in other.deliveries.items() if n != 1}
    if wrong or set(other.deliveries) != set(baseline.deliveries):
        problems.append(
            f"acknowledged deliveries {other.deliveries}, fault-free {baseline.deliveries} (once each)"
        )
    return problems


def spend_deviation(baseline: RunResult, other: RunResult) -> Decimal:
    """The largest relative spend difference over the budgets, in percent."""
    worst = Decimal(0)
    for key, spend in baseline.spend.items():
        if spend:
            worst = max(worst, abs(other.spend.get(key, Decimal(0)) - spend) / spend * 100)
    return worst
