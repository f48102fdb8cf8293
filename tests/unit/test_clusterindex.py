"""The cluster index against a brute-force model: random upserts, deletes and relists."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from costwarden.operator.clusterindex import ClusterIndex, pod_key
from costwarden.records import NodeRecord, PodRecord

NAMESPACES = ("research", "prod", "ops")
LABELS = {"app": ("web", "train"), "team": ("a", "b"), "skypilot-cluster-name": ("sweep", "tune")}


def pod(namespace: str, name: str, labels: Mapping[str, str] = {}, phase: str = "Running") -> PodRecord:
    return PodRecord(
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        phase=phase,
        labels=tuple(sorted(labels.items())),
    )


def node(name: str, gpus: int = 0) -> NodeRecord:
    return NodeRecord(name=name, gpus=gpus, cpu_cores=Decimal(8))


label_sets = st.dictionaries(
    st.sampled_from(sorted(LABELS)), st.sampled_from(("web", "train", "a", "b", "sweep", "tune")), max_size=3
)
pods = st.builds(
    pod,
    st.sampled_from(NAMESPACES),
    st.sampled_from([f"p{i}" for i in range(6)]),
    label_sets,
    st.sampled_from(("Pending", "Running", "Succeeded")),
)
nodes = st.builds(node, st.sampled_from([f"n{i}" for i in range(4)]), st.integers(0, 2))


def brute_candidates(
    model: Mapping[str, PodRecord], namespace: str, equalities: Mapping[str, str]
) -> set[str]:
    return {
        key
        for key, p in model.items()
        if p.namespace == namespace and all(p.label_map.get(k) == v for k, v in equalities.items())
    }


class IndexMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.index = ClusterIndex()
        self.pods: dict[str, PodRecord] = {}
        self.nodes: dict[str, NodeRecord] = {}

    def _expect(self, changed: bool, before: int) -> None:
        assert (self.index.generation != before) == changed
        assert self.index.generation >= before

    @rule(p=pods)
    def upsert_pod(self, p: PodRecord) -> None:
        before = self.index.generation
        expected = self.pods.get(pod_key(p)) != p
        assert self.index.upsert_pod(p) is expected
        self.pods[pod_key(p)] = p
        self._expect(expected, before)

    @precondition(lambda self: bool(self.pods))
    @rule(data=st.data())
    def delete_pod(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.pods)))
        assert self.index.delete_pod(key) == self.pods.pop(key)
        assert self.index.delete_pod(key) is None

    @rule(listed=st.lists(pods, max_size=8), scope=st.none() | st.sampled_from(NAMESPACES))
    def relist(self, listed: list[PodRecord], scope: str | None) -> None:
        listed = [p for p in listed if scope is None or p.namespace == scope]
        fresh = {pod_key(p): p for p in listed}  # the last of a duplicated key wins, as in a list
        expected = {k: p for k, p in self.pods.items() if scope is not None and p.namespace != scope}
        expected.update(fresh)
        changed_keys = {k for k in expected.keys() | self.pods.keys() if expected.get(k) != self.pods.get(k)}
        before = self.index.generation
        assert self.index.replace_pods(list(fresh.values()), scope) == len(changed_keys)
        self.pods = expected
        self._expect(bool(changed_keys), before)

    @rule(n=nodes)
    def upsert_node(self, n: NodeRecord) -> None:
        assert self.index.upsert_node(n) is (self.nodes.get(n.name) != n)
        self.nodes[n.name] = n

    @rule(name=st.sampled_from([f"n{i}" for i in range(4)]))
    def delete_node(self, name: str) -> None:
        assert self.index.delete_node(name) == self.nodes.pop(name, None)

    @rule(listed=st.lists(nodes, max_size=4))
    def relist_nodes(self, listed: list[NodeRecord]) -> None:
        fresh = {n.name: n for n in listed}
        changed = {k for k in fresh.keys() | self.nodes.keys() if fresh.get(k) != self.nodes.get(k)}
        assert self.index.replace_nodes(fresh.values()) == len(changed)
        self.nodes = fresh

    @invariant()
    def same_pods_and_nodes(self) -> None:
        assert {pod_key(p): p for p in self.index.pods()} == self.pods
        assert len(self.index.pods()) == self.index.pod_count == len(self.pods)
        assert dict(self.index.nodes()) == self.nodes
        snapshot = self.index.snapshot()
        assert set(snapshot.pods) == set(self.pods.values()) and dict(snapshot.nodes) == self.nodes
        for namespace in NAMESPACES:
            assert set(self.index.pods_in(namespace)) == {
                p for p in self.pods.values() if p.namespace == namespace
            }
            assert self.index.pod_keys(namespace) == {
                k for k, p in self.pods.items() if p.namespace == namespace
            }
        assert self.index.namespaces() == sorted({p.namespace for p in self.pods.values()})

    @invariant()
    def label_queries_match_brute_force(self) -> None:
        for namespace in NAMESPACES:
            assert self.index.candidates(namespace, {}) == brute_candidates(self.pods, namespace, {})
            for key, values in LABELS.items():
                assert self.index.with_label_key(namespace, key) == {
                    k for k, p in self.pods.items() if p.namespace == namespace and key in p.label_map
                }
                for value in values:
                    equalities = {key: value}
                    assert self.index.candidates(namespace, equalities) == brute_candidates(
                        self.pods, namespace, equalities
                    )
            for (k1, v1s), (k2, v2s) in itertools.combinations(LABELS.items(), 2):
                equalities = {k1: v1s[0], k2: v2s[-1]}
                assert self.index.candidates(namespace, equalities) == brute_candidates(
                    self.pods, namespace, equalities
                )

    @invariant()
    def nothing_outlives_its_pods(self) -> None:
        sizes = self.index.sizes()
        triples = {(p.namespace, k, v) for p in self.pods.values() for k, v in p.labels}
        assert sizes["labels"] == len(triples)
        assert sizes["label_keys"] == len({(ns, k) for ns, k, _ in triples})
        assert sizes["label_memberships"] == sum(len(p.labels) for p in self.pods.values())
        assert sizes["namespaces"] == len({p.namespace for p in self.pods.values()})


TestIndexAgainstModel = IndexMachine.TestCase
TestIndexAgainstModel.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


def test_candidates_intersect_labels_and_stay_in_the_namespace() -> None:
    index = ClusterIndex()
    index.upsert_pod(pod("research", "a", {"app": "train", "team": "a"}))
    index.upsert_pod(pod("research", "b", {"app": "train", "team": "b"}))
    index.upsert_pod(pod("prod", "c", {"app": "train", "team": "a"}))
    assert index.candidates("research", {"app": "train", "team": "a"}) == {"uid-research-a"}
    assert index.candidates("research", {"app": "train"}) == {"uid-research-a", "uid-research-b"}
    assert index.candidates("research", {"app": "web"}) == set()
    assert index.candidates("elsewhere", {}) == set()
    assert [p.name for p in index.records(["uid-research-b", "gone", "uid-prod-c"])] == ["b", "c"]


def test_returned_sets_and_snapshots_are_the_callers() -> None:
    index = ClusterIndex()
    index.upsert_pod(pod("research", "a", {"app": "train"}))
    found = index.candidates("research", {"app": "train"})
    everyone = index.candidates("research", {})
    keyed = index.with_label_key("research", "app")
    snapshot = index.snapshot()
    for returned in (found, everyone, keyed):
        returned.clear()
    index.upsert_pod(pod("research", "b", {"app": "train"}))
    assert index.candidates("research", {"app": "train"}) == {"uid-research-a", "uid-research-b"}
    assert [p.name for p in snapshot.pods] == ["a"]  # taken before b arrived, and stays so


def test_views_are_rebuilt_only_after_a_change() -> None:
    index = ClusterIndex()
    index.replace_nodes([node("n1")])
    index.replace_pods([pod("research", "a")])
    pods, nodes, snapshot = index.pods(), index.nodes(), index.snapshot()
    assert index.upsert_pod(pod("research", "a")) is False  # equal: not a change
    assert index.pods() is pods and index.nodes() is nodes and index.snapshot() is snapshot
    index.upsert_pod(pod("research", "a", phase="Succeeded"))
    assert index.pods() is not pods and index.nodes() is nodes and index.snapshot() is not snapshot
    assert index.pods()[0].phase == "Succeeded"


def test_a_label_change_moves_the_pod_between_label_sets_only() -> None:
    index = ClusterIndex()
    index.upsert_pod(pod("research", "a", {"app": "train", "team": "a"}))
    index.upsert_pod(pod("research", "a", {"app": "web", "team": "a"}))
    assert index.candidates("research", {"app": "train"}) == set()
    assert index.candidates("research", {"app": "web", "team": "a"}) == {"uid-research-a"}
    assert index.sizes()["labels"] == 2


def test_a_namespaced_relist_leaves_other_namespaces_alone() -> None:
    index = ClusterIndex()
    index.replace_pods([pod("research", "a"), pod("research", "b"), pod("prod", "c")])
    assert index.replace_pods([pod("research", "b", phase="Failed")], "research") == 2
    assert sorted(p.name for p in index.pods()) == ["b", "c"]
    with pytest.raises(ValueError, match="pod prod/c is not in namespace research"):
        index.replace_pods([pod("prod", "c")], "research")


def test_a_pod_without_a_uid_is_keyed_by_name() -> None:
    index = ClusterIndex()
    anonymous = PodRecord(namespace="research", name="x", uid="")
    index.upsert_pod(anonymous)
    assert pod_key(anonymous) == "research/x" and index.pod("research/x") == anonymous


@settings(max_examples=50, deadline=None)
@given(st.lists(pods, max_size=30))
def test_relisting_the_same_pods_changes_nothing(listed: list[PodRecord]) -> None:
    index = ClusterIndex()
    index.replace_pods(listed)
    generation = index.generation
    assert index.replace_pods(list(reversed(index.pods()))) == 0
    assert index.generation == generation
