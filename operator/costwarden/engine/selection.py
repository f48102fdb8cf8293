"""Which pods a budget covers: its namespace, its label selector, and optionally a SkyPilot cluster.

SkyPilot labels every pod of a cluster ``skypilot-cluster-name=<name_on_cloud>``, where
``name_on_cloud`` is the name the user typed, lowercased, with ``.`` and ``_`` turned into ``-``,
followed by ``-`` and a short user hash (4 hex digits; 8 in some releases). A name too long for
Kubernetes' 42-character limit is cut and gets a 2-character base36 hash of the typed name before
the user hash (``sky/utils/common_utils.make_cluster_name_on_cloud``). The pod's annotation of the
same key holds the name as typed, which ``PodRecord.skypilot_cluster`` prefers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping

from costwarden.models import CostBudgetSpec, LabelSelector
from costwarden.records import SKYPILOT_CLUSTER_LABEL, PodRecord

_K8S_NAME_LIMIT = 42
_NAME_HASH_LENGTH = 2
_USER_HASH_LENGTHS = (4, 8)
_HEX = frozenset("0123456789abcdef")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"

LabelTest = Callable[[Mapping[str, str]], bool]


def _requirement(key: str, operator: str, values: frozenset[str]) -> LabelTest:
    if operator == "In":
        return lambda labels: labels.get(key) in values
    if operator == "NotIn":
        return lambda labels: labels.get(key) not in values
    if operator == "Exists":
        return lambda labels: key in labels
    return lambda labels: key not in labels


def compile_selector(selector: LabelSelector) -> LabelTest:
    """A predicate over a label map with metav1.LabelSelector semantics (compile once, test many).

    matchLabels AND every matchExpression; NotIn and DoesNotExist match a pod without the key;
    the empty selector matches everything.
    """
    wanted = tuple(selector.match_labels.items())
    tests = tuple(
        _requirement(req.key, req.operator, frozenset(req.values)) for req in selector.match_expressions
    )

    def matches(labels: Mapping[str, str]) -> bool:
        for key, value in wanted:
            if labels.get(key) != value:
                return False
        return all(test(labels) for test in tests)

    return matches


def selector_matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: matchLabels AND matchExpressions; empty matches all."""
    return compile_selector(selector)(labels)


def name_on_cloud_prefix(typed_name: str) -> str:
    """The typed SkyPilot cluster name as SkyPilot renders it for the cloud, before any hash."""
    return re.sub(r"[._]", "-", typed_name).lower()


def _base36(number: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 36)
        digits = _BASE36[rest] + digits
    return digits or "0"


def cloud_name_test(typed_name: str) -> Callable[[str], bool]:
    """A predicate: is a ``skypilot-cluster-name`` label value the cloud name of cluster ``typed_name``?"""
    prefix = name_on_cloud_prefix(typed_name)
    digest = hashlib.md5(typed_name.encode(), usedforsecurity=False).hexdigest()
    name_hash = _base36(int(digest, 16))[:_NAME_HASH_LENGTH]
    heads: dict[int, str] = {}
    for length in _USER_HASH_LENGTHS:
        if len(prefix) <= _K8S_NAME_LIMIT - length - 1:
            heads[length] = prefix
        else:
            cut = prefix[: _K8S_NAME_LIMIT - _NAME_HASH_LENGTH - 2 - length].rstrip("-")
            heads[length] = f"{cut}-{name_hash}"
    exact = {typed_name, prefix}

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


def _skypilot_test(typed_name: str) -> Callable[[PodRecord, Mapping[str, str]], bool]:
    label_matches = cloud_name_test(typed_name)

    def belongs(pod: PodRecord, labels: Mapping[str, str]) -> bool:
        if pod.skypilot_cluster == typed_name:
            return True
        label = labels.get(SKYPILOT_CLUSTER_LABEL)
        return label is not None and label_matches(label)

    return belongs


def coverage(spec: CostBudgetSpec, budget_namespace: str) -> Callable[[PodRecord], bool]:
    """A predicate telling whether the budget covers a pod (compile once per budget, test many pods)."""
    labels_match = compile_selector(spec.selector)
    cluster_test = _skypilot_test(spec.skypilot_cluster) if spec.skypilot_cluster else None

    def covers(pod: PodRecord) -> bool:
        if pod.namespace != budget_namespace:
            return False
        labels = dict(pod.labels)
        if not labels_match(labels):
            return False
        return cluster_test is None or cluster_test(pod, labels)

    return covers


def budget_covers(spec: CostBudgetSpec, budget_namespace: str, pod: PodRecord) -> bool:
    """Same namespace, selector matches, and (if ``skypilotCluster`` is set) the pod is in that cluster."""
    return coverage(spec, budget_namespace)(pod)


def covered_pods(spec: CostBudgetSpec, budget_namespace: str, pods: Iterable[PodRecord]) -> list[PodRecord]:
    """The pods among ``pods`` that the budget covers, in their order."""
    covers = coverage(spec, budget_namespace)
    return [pod for pod in pods if covers(pod)]
