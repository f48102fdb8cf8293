"""Pod records share the strings many pods repeat, so a record costs the same whether its body
came from a list page or from a watch event (the soak saw memory rise with pod churn before)."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

from costwarden.records import PodRecord
from tests import shapes


def _body(i: int) -> dict[str, Any]:
    body = shapes.skypilot_pod(
        f"sky-{i // 4}-2ea4", f"sky-{i // 4}", namespace="team-01", node=f"node-{i // 8}", gpus=1
    )
    body["metadata"]["name"] += f"-{i}"
    body["metadata"]["uid"] = f"5f0c6d3e-{i:04d}-4b9a-9c0e-0242ac120002"
    body["metadata"]["annotations"]["costwarden.dev/budgets"] = "team-budget"
    body["status"] = {"phase": "Running", "startTime": "2026-12-01T06:00:00Z"}
    return body


def test_records_decoded_one_by_one_share_the_strings_pods_repeat() -> None:
    a, b = (PodRecord.from_body(json.loads(json.dumps(_body(i)))) for i in (0, 1))
    assert a.namespace is b.namespace
    assert a.node_name is b.node_name
    assert a.phase is b.phase
    assert a.skypilot_cluster is b.skypilot_cluster
    assert a.budgets_annotation is b.budgets_annotation
    for (key_a, value_a), (key_b, value_b) in zip(a.labels, b.labels, strict=True):
        assert key_a is key_b
        assert value_a is value_b
    assert a.uid != b.uid


def test_a_record_from_a_watch_event_costs_no_more_than_one_from_a_list() -> None:
    bodies = [_body(i) for i in range(400)]
    page, events = json.dumps({"items": bodies}), [json.dumps(body) for body in bodies]

    def held(make: Any) -> int:
        tracemalloc.start()
        try:
            records = make()
            return int(tracemalloc.get_traced_memory()[0] / len(records))
        finally:
            tracemalloc.stop()

    from_list = held(lambda: [PodRecord.from_body(body) for body in json.loads(page)["items"]])
    from_watch = held(lambda: [PodRecord.from_body(json.loads(event)) for event in events])
    assert from_watch <= from_list * 1.05
