"""Fuzzed pods and nodes: odd labels, quantities ("1e3", "0.5Gi", "-1", "10000000000", empty,
garbage, NaN), providerIDs of every cloud's shape and garbage, odd timestamps and annotations,
missing fields and fields of the wrong type.

``PodRecord.from_body`` and ``NodeRecord.from_body`` never raise and give sane figures (counts and
sizes never negative, no NaN); any node is priced without a negative or NaN figure; a valid
budget evaluated pass after pass over such pods never raises, never shows a negative or NaN
figure, and spends nothing (so crosses nothing) on pods that cost nothing.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.checks import check_evaluation, check_node_body, check_pod_body
from tests.fuzz.profile import fuzz
from tests.fuzz.strategies import broken_nodes, broken_pods, node_bodies, pod_bodies, valid_specs


@fuzz(150)
@given(pod_bodies() | broken_pods)
def test_any_pod_body_is_read(body: Any) -> None:
    check_pod_body(body)


@fuzz(150)
@given(node_bodies() | broken_nodes)
def test_any_node_body_is_read_and_priced(body: Any) -> None:
    check_node_body(body)


@st.composite
def _clusters(draw: st.DrawFn) -> tuple[list[Any], list[Any]]:
    """Two nodes and a few pods on them: odd ones, or well-formed ones at the edge of what is read
    (the largest counts and prices)."""
    extreme = draw(st.booleans())
    nodes = [draw(node_bodies(name, extreme=extreme)) for name in ("n1", "n2")]
    count = draw(st.integers(0, 4))
    pods = [
        draw(pod_bodies(uid=f"00000000-0000-4000-8000-00000000000{i}", extreme=extreme)) for i in range(count)
    ]
    return nodes, pods


@fuzz(60)
@given(
    raw=valid_specs(),
    cluster=_clusters(),
    hours=st.lists(st.floats(0, 24 * 400, allow_nan=False), min_size=1, max_size=3),
)
def test_a_budget_over_odd_pods_and_nodes_evaluates_sanely(
    raw: dict[str, Any], cluster: tuple[list[Any], list[Any]], hours: list[float]
) -> None:
    nodes, pods = cluster
    check_evaluation(raw, nodes, pods, hours)
