"""Prometheus metrics (prefix costwarden_), on a registry owned by the runtime, not a global."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from costwarden.operator.runtime import Runtime


class Metrics:
    """Counters and histograms updated by the loops; gauges are read from the runtime on scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.reconcile_seconds = Histogram(
            "costwarden_reconcile_duration_seconds",
            "Time spent in one evaluation pass",
            ["loop"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
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

    def attach(self, runtime: Runtime) -> None:
        self.registry.register(_RuntimeCollector(runtime))


class _RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self._runtime
        labels = ["namespace", "budget"]
        spend = GaugeMetricFamily("costwarden_budget_spend_usd", "Spend in the current period", labels=labels)
        limit = GaugeMetricFamily("costwarden_budget_limit_usd", "Budget limit", labels=labels)
        rate = GaugeMetricFamily(
            "costwarden_budget_hourly_rate_usd", "Current burn rate, USD/hour", labels=labels
        )
        used = GaugeMetricFamily(
            "costwarden_budget_used_percent", "Spend as a percent of the limit", labels=labels
        )
        for (namespace, name), fig in sorted(rt.budgets.items()):
            spend.add_metric([namespace, name], float(fig.spend))
            limit.add_metric([namespace, name], float(fig.limit))
            rate.add_metric([namespace, name], float(fig.hourly_rate))
            used.add_metric([namespace, name], float(fig.percent_used))
        yield from (spend, limit, rate, used)

        pod_cost = GaugeMetricFamily(
            "costwarden_pod_hourly_cost_usd", "Pod cost rate, USD/hour", labels=["namespace", "pod", "node"]
        )
        for uid, (namespace, name, node) in sorted(rt.pod_names.items(), key=lambda item: item[1]):
            pod_rate = rt.book.rate(uid)
            if pod_rate is not None:
                pod_cost.add_metric([namespace, name, node], float(pod_rate.total))
        yield pod_cost

        node_cost = GaugeMetricFamily(
            "costwarden_node_hourly_cost_usd",
            "Node price, USD/hour, and which rule priced it",
            labels=["node", "instance_type", "capacity_type", "source"],
        )
        idle = GaugeMetricFamily(
            "costwarden_node_idle_hourly_cost_usd", "Node cost not used by pods", labels=["node"]
        )
        for node, price in sorted(rt.node_prices.items()):
            facts = price.facts
            node_cost.add_metric(
                [node, facts.instance_type or "", facts.capacity_type, price.source], float(price.hourly)
            )
            idle.add_metric([node], float(rt.idle_costs.get(node, 0)))
        yield node_cost
        yield idle
