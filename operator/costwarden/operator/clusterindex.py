"""The in-memory picture of the cluster's pods and nodes that the informer keeps current.

Every pass reads from here instead of asking the API server, so reads must stay cheap at
10,000 pods: a budget's selection starts from an inverted label index (the pods of a namespace
carrying ``key=value``) instead of scanning its namespace, and whole-cluster snapshots are built
once per change, not once per reader. Writes cost what changed: an update that leaves a pod's
labels alone touches two dicts; a relist compares records and touches only those that differ.

Pure data: no I/O, no awaits, so each call is atomic for the event loop that owns the index.
Records are frozen, so readers may keep them; the containers returned are copies or read-only
views that later changes never alter under the reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TypeVar

from costwarden.records import ClusterSnapshot, NodeRecord, PodRecord

LabelKey = tuple[str, str, str]  # (namespace, label key, label value)
K = TypeVar("K")


def pod_key(pod: PodRecord) -> str:
    """A pod's identity in the index: its uid (``namespace/name`` for a body without one)."""
    return pod.uid or f"{pod.namespace}/{pod.name}"


class ClusterIndex:
    """Pods by key (uid) and by namespace, a label index, nodes by name, and change counters.

    ``generation`` grows with every change that altered something (an upsert of an equal
    record is not a change), so a caller can cache anything derived from the index and
    rebuild it only when the generation moved; ``pod_generation``/``node_generation`` say which.
    """

    def __init__(self) -> None:
        self._pods: dict[str, PodRecord] = {}
        self._by_namespace: dict[str, dict[str, PodRecord]] = {}
        self._by_label: dict[LabelKey, set[str]] = {}
        self._by_label_key: dict[tuple[str, str], set[str]] = {}
        self._nodes: dict[str, NodeRecord] = {}
        self._pod_generation = 0
        self._node_generation = 0
        self._pods_view: tuple[int, tuple[PodRecord, ...]] = (0, ())
        self._nodes_view: tuple[int, Mapping[str, NodeRecord]] = (0, MappingProxyType({}))
        self._snapshot: tuple[int, ClusterSnapshot] = (0, ClusterSnapshot())

    # ---- change counters

    @property
    def pod_generation(self) -> int:
        return self._pod_generation

    @property
    def node_generation(self) -> int:
        return self._node_generation

    @property
    def generation(self) -> int:
        return self._pod_generation + self._node_generation

    # ---- pods: writes

    def upsert_pod(self, pod: PodRecord) -> bool:
        """Add or update a pod; False (and nothing touched) when the stored record is equal."""
        key = pod_key(pod)
        old = self._pods.get(key)
        if old == pod:
            return False
        self._pods[key] = pod
        if old is not None and old.namespace != pod.namespace:  # not possible for one uid; be safe
            self._leave_namespace(key, old)
            old = None
        self._by_namespace.setdefault(pod.namespace, {})[key] = pod
        if old is None:
            self._label(key, pod.namespace, pod.labels)
        elif old.labels != pod.labels:
            before, after = set(old.labels), set(pod.labels)
            self._unlabel(key, pod.namespace, before - after)
            self._label(key, pod.namespace, after - before)
        self._pod_generation += 1
        return True

    def delete_pod(self, key: str) -> PodRecord | None:
        """Forget a pod by its key; the record it had, or None if it was not known."""
        old = self._pods.pop(key, None)
        if old is None:
            return None
        self._leave_namespace(key, old)
        self._pod_generation += 1
        return old

    def replace_pods(self, pods: Iterable[PodRecord], namespace: str | None = None) -> int:
        """Make the stored pods (of ``namespace``, or all) exactly ``pods``, as after a relist.

        Compares each record with the stored one and writes only what differs; returns how many
        pods changed. A pod outside ``namespace`` is a caller's error (ValueError).
        """
        seen: set[str] = set()
        changed = 0
        for pod in pods:
            if namespace is not None and pod.namespace != namespace:
                raise ValueError(
                    f"pod {pod.namespace}/{pod.name} is not in namespace {namespace}, the one being replaced"
                )
            seen.add(pod_key(pod))
            changed += self.upsert_pod(pod)
        for key in self.pod_keys(namespace) - seen:
            self.delete_pod(key)
            changed += 1
        return changed

    def _label(self, key: str, namespace: str, labels: Iterable[tuple[str, str]]) -> None:
        for label, value in labels:
            self._by_label.setdefault((namespace, label, value), set()).add(key)
            self._by_label_key.setdefault((namespace, label), set()).add(key)

    def _unlabel(self, key: str, namespace: str, labels: Iterable[tuple[str, str]]) -> None:
        """Empty sets are dropped, so the index never outgrows the pods it holds."""
        for label, value in labels:
            _discard(self._by_label, (namespace, label, value), key)
            _discard(self._by_label_key, (namespace, label), key)

    def _leave_namespace(self, key: str, old: PodRecord) -> None:
        self._unlabel(key, old.namespace, old.labels)
        members = self._by_namespace.get(old.namespace)
        if members is not None:
            members.pop(key, None)
            if not members:
                del self._by_namespace[old.namespace]

    # ---- pods: reads

    def pod(self, key: str) -> PodRecord | None:
        return self._pods.get(key)

    def records(self, keys: Iterable[str]) -> list[PodRecord]:
        """The pods of ``keys`` (e.g. from ``candidates``) that are still stored."""
        pods = self._pods
        return [pod for key in keys if (pod := pods.get(key)) is not None]

    @property
    def pod_count(self) -> int:
        return len(self._pods)

    def pod_keys(self, namespace: str | None = None) -> set[str]:
        """A copy of the keys of all pods, or of one namespace's."""
        if namespace is None:
            return set(self._pods)
        return set(self._by_namespace.get(namespace, ()))

    def namespaces(self) -> list[str]:
        """Namespaces with at least one pod, sorted."""
        return sorted(self._by_namespace)

    def pods(self) -> tuple[PodRecord, ...]:
        """Every pod, in the order first stored.

        Built once per ``pod_generation``: O(pods) after a change, free until the next one; the
        tuple never changes after it is returned, so a pass may iterate it across awaits.
        """
        generation, pods = self._pods_view
        if generation != self._pod_generation:
            pods = tuple(self._pods.values())
            self._pods_view = (self._pod_generation, pods)
        return pods

    def pods_in(self, namespace: str) -> tuple[PodRecord, ...]:
        """One namespace's pods, copied on each call: O(pods in the namespace)."""
        return tuple(self._by_namespace.get(namespace, {}).values())

    def candidates(self, namespace: str, equalities: Mapping[str, str]) -> set[str]:
        """Keys of the pods in ``namespace`` that carry every ``key=value`` of ``equalities``.

        Intersects the label index's sets, smallest first, so the cost follows the rarest label,
        not the namespace's size. No equalities: every pod of the namespace. A fresh set.
        """
        if not equalities:
            return set(self._by_namespace.get(namespace, ()))
        sets: list[set[str]] = []
        for label, value in equalities.items():
            members = self._by_label.get((namespace, label, value))
            if not members:
                return set()
            sets.append(members)
        sets.sort(key=len)
        return sets[0].intersection(*sets[1:])

    def with_label_key(self, namespace: str, key: str) -> set[str]:
        """Keys of the pods in ``namespace`` that carry label ``key`` with any value (e.g. SkyPilot's
        ``skypilot-cluster-name``). A fresh set."""
        return set(self._by_label_key.get((namespace, key), ()))

    # ---- nodes

    def upsert_node(self, node: NodeRecord) -> bool:
        """Add or update a node; False when the stored record is equal."""
        if self._nodes.get(node.name) == node:
            return False
        self._nodes[node.name] = node
        self._node_generation += 1
        return True

    def delete_node(self, name: str) -> NodeRecord | None:
        old = self._nodes.pop(name, None)
        if old is not None:
            self._node_generation += 1
        return old

    def replace_nodes(self, nodes: Iterable[NodeRecord]) -> int:
        """Make the stored nodes exactly ``nodes``; returns how many changed."""
        seen: set[str] = set()
        changed = 0
        for node in nodes:
            seen.add(node.name)
            changed += self.upsert_node(node)
        for name in set(self._nodes) - seen:
            self.delete_node(name)
            changed += 1
        return changed

    def node(self, name: str) -> NodeRecord | None:
        return self._nodes.get(name)

    @property
    def node_count(self) -> int:
        return len(self._nodes)

    def nodes(self) -> Mapping[str, NodeRecord]:
        """Nodes by name: a read-only copy built once per ``node_generation`` (O(nodes) after a
        change, free until the next), which later changes never alter."""
        generation, nodes = self._nodes_view
        if generation != self._node_generation:
            nodes = MappingProxyType(dict(self._nodes))
            self._nodes_view = (self._node_generation, nodes)
        return nodes

    # ---- both

    def snapshot(self) -> ClusterSnapshot:
        """Pods and nodes as the engine reads them, rebuilt only when something changed."""
        generation, snapshot = self._snapshot
        if generation != self.generation:
            snapshot = ClusterSnapshot(nodes=self.nodes(), pods=self.pods())
            self._snapshot = (self.generation, snapshot)
        return snapshot

    def sizes(self) -> dict[str, int]:
        """Entry counts of each internal table (tests check nothing outlives its pods)."""
        return {
            "pods": len(self._pods),
            "namespaces": len(self._by_namespace),
            "labels": len(self._by_label),
            "label_keys": len(self._by_label_key),
            "label_memberships": sum(len(s) for s in self._by_label.values()),
            "nodes": len(self._nodes),
        }


def _discard(table: dict[K, set[str]], entry: K, key: str) -> None:
    members = table.get(entry)
    if members is not None:
        members.discard(key)
        if not members:
            del table[entry]
