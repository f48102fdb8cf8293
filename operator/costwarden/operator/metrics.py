"""Prometheus metrics (prefix costwarden_), on a registry owned by the runtime, not a global.

The scrape runs on prometheus-client's own thread: it reads only immutable snapshots that the
passes publish (a reference swap), never the dicts the event loop mutates. The per-pod and
per-node rows are built from the published snapshot when first read (by a scrape, usually), not
by the pass: a pass over 10,000 pods does not sort 10,000 rows that nobody may read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from costwarden.engine.rates import PodRate
from costwarden.pricing import NodePrice
from costwarden.records import PodRecord

_PASS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True, slots=True)
class BudgetRow:
    namespace: str
    name: str
    spend: float
    limit: float
    hourly_rate: float
    percent_used: float
    gpu_utilization: float | None = None
    wasted_spend: float = 0.0
    cost_per_million: tuple[str, float] | None = None  # (unit, USD per million units)


@dataclass(frozen=True, slots=True)
class PodRow:
    namespace: str
    name: str
    node: str
    hourly: float


@dataclass(frozen=True, slots=True)
class NodeRow:
    name: str
    instance_type: str
    capacity_type: str
    source: str
    hourly: float
    idle_hourly: float


PodRates = tuple[tuple[PodRecord, PodRate], ...]


@dataclass(frozen=True, slots=True)
class _PodSnapshot:
    """What the accrual pass published: immutable (frozen records, maps it replaces, never edits)."""

    pods: PodRates = ()
    prices: Mapping[str, NodePrice] | None = None
    idle: Mapping[str, Decimal] | None = None


class Metrics:
    """Counters and histograms updated by the loops; gauges read from published snapshots."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.budget_rows: tuple[BudgetRow, ...] = ()
        self.gpu_rows: tuple[tuple[str, str, float], ...] = ()  # (namespace, pod, percent), replaced whole
        self.wasted_rows: tuple[tuple[str, str, float], ...] = ()  # (namespace, pod, USD), replaced whole
        self.tracked: Mapping[str, int] = {}  # entries per table the operator holds, replaced whole
        self._pods = _PodSnapshot()
        self._rows: tuple[_PodSnapshot, tuple[PodRow, ...], tuple[NodeRow, ...]] = (self._pods, (), ())
        self.reconcile_seconds = Histogram(
            "costwarden_reconcile_duration_seconds",
            "Time spent in one pass",
            ["loop"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.pass_cpu_seconds = Histogram(
            "costwarden_pass_cpu_seconds",
            "CPU time of one pass's own steps (not of other tasks that ran while it awaited)",
            ["loop"],
            registry=self.registry,
            buckets=_PASS_BUCKETS,
        )
        self.pass_longest_step_seconds = Histogram(
            "costwarden_pass_longest_step_seconds",
            "The longest a pass held the event loop between two awaits, in one pass",
            ["loop"],
            registry=self.registry,
            buckets=_PASS_BUCKETS,
        )
        self.api_writes = Counter(
            "costwarden_api_writes",
            "Writes sent to the Kubernetes API, by kind and result",
            ["kind", "result"],
            registry=self.registry,
        )
        self.evaluations = Counter(
            "costwarden_budget_evaluations", "CostBudget evaluations carried out", registry=self.registry
        )
        self.actions = Counter(
            "costwarden_actions",
            "Enforcement and notification actions carried out, by result (Done, DryRun, Failed, Skipped)",
            ["result"],
            registry=self.registry,
        )
        self.action_retries = Counter(
            "costwarden_action_retries",
            "Tries of a destructive action held up and left Pending for the next pass, by action and "
            "reason (throttled: a 429 or a stale cloud/Slurm answer; transient: 408, 5xx, unreachable)",
            ["action", "reason"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "costwarden_leader",
            "1 while this replica holds the leader Lease and acts",
            registry=self.registry,
        )
        self.queued = Gauge(
            "costwarden_work_queued", "Jobs waiting in a background queue", ["queue"], registry=self.registry
        )
        self.billing_syncs = Counter(
            "costwarden_billing_syncs",
            "Syncs of a billing source, by result (ok, partial: a delivery failed, error: unreadable)",
            ["source", "result"],
            registry=self.registry,
        )
        self.billing_anomalies = Counter(
            "costwarden_billing_anomalies",
            "Billing windows billed more than the anomaly factor times their estimate, by budget",
            ["namespace", "budget"],
            registry=self.registry,
        )
        self.billing_newest = Gauge(
            "costwarden_billing_newest_line_timestamp_seconds",
            "End of the newest billing line in the store (Unix time)",
            registry=self.registry,
        )
        self.effective_rate_factor = Gauge(
            "costwarden_effective_rate_factor",
            "Billed / list-price estimate learned from reconciled node-hours",
            ["cloud", "instance_type", "capacity_type"],
            registry=self.registry,
        )
        self.price_feed_up = Gauge(
            "costwarden_price_feed_up",
            "1 when the live price feed's last refresh succeeded",
            ["feed"],
            registry=self.registry,
        )
        self.price_feed_prices = Gauge(
            "costwarden_price_feed_prices", "Live prices held from the feed", ["feed"], registry=self.registry
        )
        self.cloud_polls = Counter(
            "costwarden_cloud_polls",
            "Polls of a --cloud scope for SkyPilot VMs, by result (complete, failed)",
            ["scope", "result"],
            registry=self.registry,
        )
        self.cloud_vms = Gauge(
            "costwarden_cloud_vms",
            "SkyPilot VMs known in a --cloud scope (from its last complete poll, plus any read since)",
            ["scope"],
            registry=self.registry,
        )
        self.cloud_up = Gauge(
            "costwarden_cloud_up",
            "1 when the --cloud scope's last poll was complete and recent enough to act on",
            ["scope"],
            registry=self.registry,
        )
        self.slurm_polls = Counter(
            "costwarden_slurm_polls",
            "Reads of a --slurm cluster's jobs, by result (complete, failed)",
            ["cluster", "result"],
            registry=self.registry,
        )
        self.slurm_jobs = Gauge(
            "costwarden_slurm_jobs",
            "Slurm jobs known in a --slurm cluster (its last complete read, plus jobs looked up since)",
            ["cluster"],
            registry=self.registry,
        )
        self.slurm_up = Gauge(
            "costwarden_slurm_up",
            "1 when the --slurm cluster's last read was complete and recent enough to act on",
            ["cluster"],
            registry=self.registry,
        )
        self.registry.register(_SnapshotCollector(self))

    def publish_pods(
        self, pods: PodRates, prices: Mapping[str, NodePrice], idle: Mapping[str, Decimal]
    ) -> None:
        """The accrual pass's figures: each pod with its rate, node prices, idle node costs.
        The caller never changes them afterwards."""
        self._pods = _PodSnapshot(pods, prices, idle)

    @property
    def pod_rows(self) -> tuple[PodRow, ...]:
        """Every priced pod's rate, by namespace and name, as of the last accrual pass."""
        return self._built()[1]

    @property
    def node_rows(self) -> tuple[NodeRow, ...]:
        """Every node's price and idle cost, by name, as of the last accrual pass."""
        return self._built()[2]

    def _built(self) -> tuple[_PodSnapshot, tuple[PodRow, ...], tuple[NodeRow, ...]]:
        built, snapshot = self._rows, self._pods  # any thread: reference reads and one swap
        if built[0] is snapshot:
            return built
        pods = sorted(
            (
                PodRow(pod.namespace, pod.name, pod.node_name or "", float(rate.total))
                for pod, rate in snapshot.pods
            ),
            key=lambda row: (row.namespace, row.name),
        )
        idle = snapshot.idle or {}
        nodes = [
            NodeRow(
                name,
                price.facts.instance_type or "",
                price.facts.capacity_type,
                price.source,
                float(price.hourly),
                float(idle.get(name, 0)),
            )
            for name, price in sorted((snapshot.prices or {}).items())
        ]
        built = self._rows = (snapshot, tuple(pods), tuple(nodes))
        return built


class _SnapshotCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        budgets, pods, nodes = self._metrics.budget_rows, self._metrics.pod_rows, self._metrics.node_rows
        labels = ["namespace", "budget"]
        spend = GaugeMetricFamily("costwarden_budget_spend_usd", "Spend in the current period", labels=labels)
        limit = GaugeMetricFamily("costwarden_budget_limit_usd", "Budget limit", labels=labels)
        rate = GaugeMetricFamily(
            "costwarden_budget_hourly_rate_usd", "Current burn rate, USD/hour", labels=labels
        )
        used = GaugeMetricFamily(
            "costwarden_budget_used_percent", "Spend as a percent of the limit", labels=labels
        )
        utilization = GaugeMetricFamily(
            "costwarden_budget_gpu_utilization_percent",
            "GPU utilisation of the covered pods with a fresh sample, GPU-weighted",
            labels=labels,
        )
        wasted = GaugeMetricFamily(
            "costwarden_budget_wasted_spend_usd",
            "Spend this period on GPUs below the idle threshold",
            labels=labels,
        )
        unit_cost = GaugeMetricFamily(
            "costwarden_budget_cost_per_million_units_usd",
            "Spend this period per million units of work (spec.unitEconomics)",
            labels=[*labels, "unit"],
        )
        for row in budgets:
            spend.add_metric([row.namespace, row.name], row.spend)
            limit.add_metric([row.namespace, row.name], row.limit)
            rate.add_metric([row.namespace, row.name], row.hourly_rate)
            used.add_metric([row.namespace, row.name], row.percent_used)
            wasted.add_metric([row.namespace, row.name], row.wasted_spend)
            if row.gpu_utilization is not None:
                utilization.add_metric([row.namespace, row.name], row.gpu_utilization)
            if row.cost_per_million is not None:
                unit_cost.add_metric(
                    [row.namespace, row.name, row.cost_per_million[0]], row.cost_per_million[1]
                )
        yield from (spend, limit, rate, used, utilization, wasted, unit_cost)

        pod_cost = GaugeMetricFamily(
            "costwarden_pod_hourly_cost_usd", "Pod cost rate, USD/hour", labels=["namespace", "pod", "node"]
        )
        for pod in pods:
            pod_cost.add_metric([pod.namespace, pod.name, pod.node], pod.hourly)
        yield pod_cost

        yield _per_pod(
            "costwarden_pod_gpu_utilization_percent",
            "A pod's GPU utilisation from telemetry (mean over its GPUs), as of the last sample",
            self._metrics.gpu_rows,
        )
        yield _per_pod(
            "costwarden_pod_wasted_spend_usd",
            "What a pod spent while its GPUs read below 5 % (since this replica began leading)",
            self._metrics.wasted_rows,
        )

        node_cost = GaugeMetricFamily(
            "costwarden_node_hourly_cost_usd",
            "Node price, USD/hour, and which rule priced it",
            labels=["node", "instance_type", "capacity_type", "source"],
        )
        idle = GaugeMetricFamily(
            "costwarden_node_idle_hourly_cost_usd", "Node cost not used by pods", labels=["node"]
        )
        for node in nodes:
            node_cost.add_metric(
                [node.name, node.instance_type, node.capacity_type, node.source], node.hourly
            )
            idle.add_metric([node.name], node.idle_hourly)
        yield node_cost
        yield idle

        tracked = GaugeMetricFamily(
            "costwarden_tracked_objects",
            "Entries the operator holds, by table (informer, spend book, budgets, queues), as of "
            "the last accrual pass: per-pod tables follow the live pods, never the pods that came and went",
            labels=["table"],
        )
        for table, count in sorted(self._metrics.tracked.items()):
            tracked.add_metric([table], count)
        yield tracked


def _per_pod(name: str, documentation: str, rows: tuple[tuple[str, str, float], ...]) -> Metric:
    """A gauge of (namespace, pod, value) rows."""
    family = GaugeMetricFamily(name, documentation, labels=["namespace", "pod"])
    for namespace, pod, value in rows:
        family.add_metric([namespace, pod], value)
    return family
