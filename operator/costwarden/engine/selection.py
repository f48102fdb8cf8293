"""Which pods a budget covers: its namespace, its label selector, and optionally a SkyPilot cluster.

SkyPilot labels every pod of a cluster ``skypilot-cluster-name=<name_on_cloud>``, where
``name_on_cloud`` is the name the user typed, lowercased, with ``.`` and ``_`` turned into ``-``,
followed by ``-`` and a short user hash (4 hex digits; 8 in some releases). A name too long for
Kubernetes' 42-character limit is cut and gets a 2-character base36 hash of the typed name before
the user hash (``sky/utils/common_utils.make_cluster_name_on_cloud``). The pod's annotation of the
same key holds the name as typed, which ``PodRecord.skypilot_cluster`` prefers.

``budget_covers`` answers for one pod; ``Coverage`` (from ``coverage``) is the same test compiled
once per budget, with a memo per label set, for the many pods of a pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping

from costwarden.models import CostBudgetSpec, LabelSelector, LabelSelectorRequirement
from costwarden.records import SKYPILOT_CLUSTER_LABEL, PodRecord

K8S_NAME_LIMIT = 42
_NAME_HASH_LENGTH = 2
_USER_HASH_LENGTHS = (4, 8)
_HEX = frozenset("0123456789abcdef")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_MEMO_LIMIT = 4096

_LabelKey = tuple[tuple[str, str], ...]


def _requirement_holds(requirement: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    value = labels.get(requirement.key)
    if requirement.operator == "In":
        return value is not None and value in requirement.values
    if requirement.operator == "NotIn":
        return value is None or value not in requirement.values
    if requirement.operator == "Exists":
        return requirement.key in labels
    return requirement.key not in labels


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: matchLabels AND every matchExpression; NotIn and
    DoesNotExist match a pod without the key; the empty selector matches everything."""
    for key, value in selector.match_labels.items():
        if labels.get(key) != value:
            return False
    return all(_requirement_holds(requirement, labels) for requirement in selector.match_expressions)


def name_on_cloud_prefix(typed_name: str) -> str:
    """The typed SkyPilot cluster name as SkyPilot renders it for the cloud, before any hash."""
    return typed_name.replace(".", "-").replace("_", "-").lower()


def _base36(number: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 36)
        digits = _BASE36[rest] + digits
    return digits or "0"


def _cloud_name_heads(typed_name: str, limit: int) -> dict[int, str]:
    """What precedes ``-<user hash>`` in the cloud name, per user-hash length."""
    prefix = name_on_cloud_prefix(typed_name)
    heads: dict[int, str] = {}
    name_hash = ""
    for length in _USER_HASH_LENGTHS:
        if len(prefix) <= limit - length - 1:
            heads[length] = prefix
            continue
        if not name_hash:
            digest = hashlib.md5(typed_name.encode(), usedforsecurity=False).hexdigest()
            name_hash = _base36(int(digest, 16))[:_NAME_HASH_LENGTH]
        cut = prefix[: limit - _NAME_HASH_LENGTH - 2 - length].rstrip("-")
        heads[length] = f"{cut}-{name_hash}"
    return heads


def cloud_name_test(typed_name: str, limit: int = K8S_NAME_LIMIT) -> Callable[[str], bool]:
    """A predicate: is a ``skypilot-cluster-name`` label value the cloud name of cluster ``typed_name``?

    The label may also be the typed name itself or its rendering without a hash. ``limit`` is
    the cloud's longest name on cloud (``_MAX_CLUSTER_NAME_LEN_LIMIT`` of SkyPilot's cloud class):
    42 on Kubernetes, other values for cloud VMs (``engine.vms.NAME_LIMITS``).
    """
    exact = {typed_name, name_on_cloud_prefix(typed_name)}
    heads = _cloud_name_heads(typed_name, limit)

    def matches(label_value: str) -> bool:
        if label_value in exact:
            return True
        for length, head in heads.items():
            split = len(label_value) - length - 1
            if (
                split == len(head)
                and label_value[split] == "-"
                and label_value.startswith(head)
                and set(label_value[split + 1 :]) <= _HEX
            ):
                return True
        return False

    return matches


def skypilot_label_matches(typed_name: str, label_value: str) -> bool:
    """Whether a ``skypilot-cluster-name`` label value is the cloud name of cluster ``typed_name``."""
    return cloud_name_test(typed_name)(label_value)


def budget_covers(spec: CostBudgetSpec, budget_namespace: str, pod: PodRecord) -> bool:
    """Same namespace, selector matches, and (if ``skypilotCluster`` is set) the pod is in that
    cluster: its typed name (annotation) equals it, or its cloud-name label is that cluster's."""
    if pod.namespace != budget_namespace:
        return False
    labels = dict(pod.labels)
    if not selector_matches(spec.selector, labels):
        return False
    typed_name = spec.skypilot_cluster
    if not typed_name or pod.skypilot_cluster == typed_name:
        return True
    cluster_label = labels.get(SKYPILOT_CLUSTER_LABEL)
    return cluster_label is not None and skypilot_label_matches(typed_name, cluster_label)


class Coverage:
    """``budget_covers`` for one budget, compiled once and applied to many pods.

    The label part of the verdict (selector, SkyPilot cluster label) is remembered per distinct
    label set, since the pods of one workload share theirs; the memo is private to this object
    and cleared when it grows large. Keep one per budget generation to reuse it across passes.
    """

    __slots__ = ("_cluster_label_test", "_memo", "_namespace", "_selector", "_typed_name")

    def __init__(self, spec: CostBudgetSpec, budget_namespace: str) -> None:
        self._namespace = budget_namespace
        self._selector = spec.selector
        self._typed_name = spec.skypilot_cluster or None
        self._cluster_label_test = cloud_name_test(self._typed_name) if self._typed_name else None
        self._memo: dict[_LabelKey, tuple[bool, bool]] = {}

    def _judge(self, labels: _LabelKey) -> tuple[bool, bool]:
        label_map = dict(labels)
        selected = selector_matches(self._selector, label_map)
        cluster_label = label_map.get(SKYPILOT_CLUSTER_LABEL)
        in_cluster = bool(
            selected
            and self._cluster_label_test is not None
            and cluster_label is not None
            and self._cluster_label_test(cluster_label)
        )
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        verdict = self._memo[labels] = (selected, in_cluster)
        return verdict

    def __call__(self, pod: PodRecord) -> bool:
        if pod.namespace != self._namespace:
            return False
        selected, in_cluster = self._memo.get(pod.labels) or self._judge(pod.labels)
        typed_name = self._typed_name
        return selected and (typed_name is None or in_cluster or pod.skypilot_cluster == typed_name)

    def select(self, pods: Iterable[PodRecord]) -> list[PodRecord]:
        """The covered pods among ``pods``, in their order (the loop of ``__call__``, inlined)."""
        memo, judge, namespace, typed_name = self._memo, self._judge, self._namespace, self._typed_name
        chosen = []
        for pod in pods:
            if pod.namespace != namespace:
                continue
            selected, in_cluster = memo.get(pod.labels) or judge(pod.labels)
            if selected and (typed_name is None or in_cluster or pod.skypilot_cluster == typed_name):
                chosen.append(pod)
        return chosen


def coverage(spec: CostBudgetSpec, budget_namespace: str) -> Coverage:
    """The budget's compiled coverage test (see ``Coverage``)."""
    return Coverage(spec, budget_namespace)


def covered_pods(spec: CostBudgetSpec, budget_namespace: str, pods: Iterable[PodRecord]) -> list[PodRecord]:
    """The pods among ``pods`` that the budget covers, in their order."""
    return Coverage(spec, budget_namespace).select(pods)
