"""The cluster as the passes see it: pods, nodes and CostBudgets kept current by one informer.

``WatchedCluster`` is the ``ClusterView`` the passes read. A budget's candidate pods come from
the inverted label index: its ``matchLabels`` (the rarest label first), else SkyPilot's
``skypilot-cluster-name`` label for a ``skypilotCluster`` budget (SkyPilot puts that label on
every pod it launches), else its namespace. The coverage test then decides exactly; the index
only keeps a budget from scanning pods it cannot cover.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from costwarden.models import CostBudgetSpec
from costwarden.operator.budgets import BudgetObject
from costwarden.operator.clusterindex import ClusterIndex
from costwarden.operator.informer import Informer
from costwarden.operator.runtime import Runtime
from costwarden.records import SKYPILOT_CLUSTER_LABEL, NodeRecord, PodRecord


def _budget_key(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


class BudgetStore:
    """CostBudgets by ``namespace/name``, as small records; a tuple of them rebuilt on change."""

    def __init__(self) -> None:
        self._by_key: dict[str, BudgetObject] = {}
        self._view: tuple[BudgetObject, ...] | None = ()

    def upsert_budget(self, body: Mapping[str, Any]) -> str:
        key = _budget_key(body)
        self._by_key[key] = BudgetObject.from_body(body)
        self._view = None
        return key

    def delete_budget(self, body: Mapping[str, Any]) -> None:
        self.forget_budget(_budget_key(body))

    def forget_budget(self, key: str) -> None:
        if self._by_key.pop(key, None) is not None:
            self._view = None

    def budget_keys(self, namespace: str | None) -> set[str]:
        if namespace is None:
            return set(self._by_key)
        return {key for key, budget in self._by_key.items() if budget.namespace == namespace}

    def __len__(self) -> int:
        return len(self._by_key)

    def budgets(self) -> tuple[BudgetObject, ...]:
        if self._view is None:
            self._view = tuple(self._by_key[key] for key in sorted(self._by_key))
        return self._view


class WatchedCluster:
    def __init__(self, index: ClusterIndex, budgets: BudgetStore, informer: Informer) -> None:
        self.index = index
        self.budget_store = budgets
        self.informer = informer

    def synced(self) -> bool:
        return self.informer.synced.is_set()

    async def wait_synced(self) -> None:
        await self.informer.synced.wait()

    def budgets(self) -> tuple[BudgetObject, ...]:
        return self.budget_store.budgets()

    def pods(self) -> Iterable[PodRecord]:
        return self.index.pods()

    def pods_in(self, namespace: str) -> tuple[PodRecord, ...]:
        return self.index.pods_in(namespace)

    def nodes(self) -> Mapping[str, NodeRecord]:
        return self.index.nodes()

    def candidates(self, namespace: str, spec: CostBudgetSpec) -> Iterable[PodRecord]:
        if spec.selector.match_labels:
            return self.index.records(self.index.candidates(namespace, spec.selector.match_labels))
        if spec.skypilot_cluster:
            return self.index.records(self.index.with_label_key(namespace, SKYPILOT_CLUSTER_LABEL))
        return self.index.pods_in(namespace)

    def sizes(self) -> dict[str, int]:
        """Entries of the index's tables and the budgets held (``costwarden_tracked_objects``)."""
        return {**self.index.sizes(), "budgets": len(self.budget_store)}

    async def stop(self) -> None:
        await self.informer.stop()


async def start_watches(runtime: Runtime) -> WatchedCluster:
    """Start the informer over pods, nodes and CostBudgets (within ``--namespace`` if given)."""
    index, budgets = ClusterIndex(), BudgetStore()
    informer = Informer(runtime.kube, index, namespaces=runtime.settings.namespaces, budgets=budgets)
    return WatchedCluster(index, budgets, informer.start())
