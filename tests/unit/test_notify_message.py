"""Rendering of notifications: Slack Block Kit, fallback text, generic webhook JSON, PagerDuty events."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from costwarden.notify.message import (
    Notification,
    PodSpend,
    dedup_key,
    pagerduty_event,
    slack_blocks,
    slack_text,
    webhook_payload,
)

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
EXHAUSTS = datetime(2026, 11, 28, 2, 14, tzinfo=UTC)

PODS = (
    PodSpend("llama-sweep-2ea4-worker1", Decimal("61.5"), Decimal("27.52")),
    PodSpend("llama-sweep-2ea4-head", Decimal("120.004"), Decimal("55.04")),
    PodSpend("llama-sweep-2ea4-worker2", Decimal("60"), Decimal("27.52")),
    PodSpend("llama-sweep-2ea4-worker3", Decimal("59.9"), Decimal("27.52")),
    PodSpend("llama-sweep-2ea4-worker4", Decimal("58"), Decimal("27.52")),
    PodSpend("notebook-small", Decimal("1.25"), Decimal("0.526")),
    PodSpend("tiny-cpu", Decimal("0.10"), Decimal("0.03")),
)


def make(**changes: Any) -> Notification:
    base = Notification(
        budget="llama-sweep",
        namespace="research",
        spend=Decimal("412.0749"),
        limit=Decimal("500"),
        percent_used=Decimal("82.41498"),
        hourly_rate=Decimal("220.1634"),
        exhausts_at=EXHAUSTS,
        period="Monthly",
        trigger="spend reached 80% of 500.00 USD",
        action="Notify",
        dry_run=False,
        next_step="At 100% the SkyPilot cluster llama-sweep (4 pods) will be killed",
        top_pods=PODS,
        skypilot_cluster="llama-sweep",
        skypilot_user="alice",
        console_hint="kubectl get costbudget llama-sweep -n research",
        at=AT,
    )
    return dataclasses.replace(base, **changes)


# ---------------------------------------------------------------- Block Kit structure

BLOCK_TYPES = {"header", "section", "context", "divider", "actions", "image", "rich_text"}


def check_text_object(obj: Any, limit: int, kinds: set[str] | None = None) -> None:
    assert isinstance(obj, dict), obj
    assert obj["type"] in (kinds or {"plain_text", "mrkdwn"}), obj
    assert isinstance(obj["text"], str)
    assert 0 < len(obj["text"]) <= limit, obj
    assert set(obj) <= {"type", "text", "emoji", "verbatim"}, obj


def check_blocks(blocks: list[dict[str, Any]]) -> None:
    """The Block Kit rules Slack enforces on a message (it refuses the whole message otherwise)."""
    assert 0 < len(blocks) <= 50
    json.dumps(blocks)  # plain JSON: no Decimal, no datetime
    for block in blocks:
        assert block["type"] in BLOCK_TYPES, block
        if block["type"] == "header":
            check_text_object(block["text"], 150, {"plain_text"})
        elif block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                check_text_object(block["text"], 3000)
            fields = block.get("fields", [])
            assert len(fields) <= 10
            for field in fields:
                check_text_object(field, 2000)
        elif block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            for element in block["elements"]:
                check_text_object(element, 3000)


def all_text(blocks: list[dict[str, Any]]) -> str:
    texts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                texts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return "\n".join(texts)


def test_blocks_are_valid_block_kit() -> None:
    blocks = slack_blocks(make())
    check_blocks(blocks)
    assert blocks[0]["type"] == "header"
    assert [b["type"] for b in blocks].count("header") == 1


def test_blocks_say_what_a_person_needs() -> None:
    text = all_text(slack_blocks(make()))
    for expected in (
        "llama-sweep",
        "research",
        "412.07 USD",
        "500.00 USD",
        "82.4%",
        "220.16 USD/h",
        "2026-11-28 02:14 UTC (in 14h 14m)",
        "spend reached 80% of 500.00 USD",
        "SkyPilot cluster *llama-sweep*",
        "user *alice*",
        "At 100% the SkyPilot cluster llama-sweep (4 pods) will be killed",
        "kubectl get costbudget llama-sweep -n research",
        "Monthly",
    ):
        assert expected in text, expected


def test_figures_are_section_fields() -> None:
    section = slack_blocks(make())[1]
    labels = [field["text"].split("\n")[0] for field in section["fields"]]
    assert labels == ["*Spend*", "*Limit*", "*Used*", "*Rate*", "*Exhausts*", "*Action*"]


def test_top_pods_are_the_five_highest_by_spend_in_order() -> None:
    pods_block = next(b for b in slack_blocks(make()) if "Top pods" in b.get("text", {}).get("text", ""))
    lines = pods_block["text"]["text"].split("\n")[1:]
    assert [line.split("`")[1] for line in lines] == [
        "llama-sweep-2ea4-head",
        "llama-sweep-2ea4-worker1",
        "llama-sweep-2ea4-worker2",
        "llama-sweep-2ea4-worker3",
        "llama-sweep-2ea4-worker4",
    ]
    assert "120.00 USD (55.04 USD/h)" in lines[0]
    assert "notebook-small" not in pods_block["text"]["text"]


def test_no_pods_no_skypilot_no_exhaustion_still_valid() -> None:
    n = make(top_pods=(), skypilot_cluster=None, skypilot_user=None, exhausts_at=None, console_hint="")
    blocks = slack_blocks(n)
    check_blocks(blocks)
    text = all_text(blocks)
    assert "no running pods" in text
    assert "not at the current rate" in text
    assert "SkyPilot cluster *" not in text
    assert "user *" not in text


def test_exhaustion_without_decision_time_and_in_the_past() -> None:
    assert "2026-11-28 02:14 UTC\n" in all_text(slack_blocks(make(at=None))) + "\n"
    past = make(exhausts_at=datetime(2026, 11, 27, 11, 0, tzinfo=UTC))
    assert "2026-11-27 11:00 UTC (now)" in all_text(slack_blocks(past))


def test_dry_run_is_visible() -> None:
    n = make(dry_run=True, action="Kill")
    blocks = slack_blocks(n)
    assert "[dry run]" in blocks[0]["text"]["text"]
    assert "dry run: nothing is changed" in all_text(blocks)
    assert slack_text(n).startswith("[dry run]")


def test_long_names_are_clipped_to_slack_limits() -> None:
    n = make(
        budget="b" * 253,
        namespace="n" * 63,
        trigger="t" * 5000,
        next_step="x" * 5000,
        top_pods=tuple(PodSpend("p" * 253 + str(i), Decimal(i), Decimal(1)) for i in range(5)),
    )
    blocks = slack_blocks(n)
    check_blocks(blocks)
    assert len(blocks[0]["text"]["text"]) == 150
    assert blocks[0]["text"]["text"].endswith("…")


def test_free_text_is_escaped_for_mrkdwn() -> None:
    text = all_text(slack_blocks(make(trigger="<!channel> spend & rate > 2x")))
    assert "<!channel>" not in text
    assert "&lt;!channel&gt; spend &amp; rate &gt; 2x" in text


def test_fallback_text_carries_the_essentials() -> None:
    text = slack_text(make())
    for expected in (
        "research/llama-sweep",
        "412.07 of 500.00 USD",
        "82.4%",
        "220.16 USD/h",
        "will be killed",
    ):
        assert expected in text


# ---------------------------------------------------------------- money at the edge


@pytest.mark.parametrize(
    ("spend", "shown"),
    [
        (Decimal("412.0749"), "412.07"),
        (Decimal("0.005"), "0.00"),
        (Decimal("0.015"), "0.02"),
        (Decimal(7), "7.00"),
    ],
)
def test_money_is_two_decimals_half_even(spend: Decimal, shown: str) -> None:
    assert webhook_payload(make(spend=spend))["spend"] == shown


@pytest.mark.parametrize(
    ("value", "shown"), [(Decimal(80), "80"), (Decimal("82.44"), "82.4"), (Decimal("99.96"), "100")]
)
def test_percent_has_at_most_one_decimal(value: Decimal, shown: str) -> None:
    assert webhook_payload(make(percent_used=value))["percentUsed"] == shown


# ---------------------------------------------------------------- generic webhook

WEBHOOK_KEYS = {
    "kind",
    "version",
    "id",
    "budget",
    "namespace",
    "period",
    "currency",
    "spend",
    "limit",
    "percentUsed",
    "hourlyRate",
    "exhaustsAt",
    "at",
    "trigger",
    "action",
    "dryRun",
    "severity",
    "nextStep",
    "topPods",
    "skypilotCluster",
    "skypilotUser",
    "consoleHint",
}


def test_webhook_payload_is_stable_json() -> None:
    payload = webhook_payload(make())
    assert set(payload) == WEBHOOK_KEYS
    assert json.loads(json.dumps(payload)) == payload
    assert payload["kind"] == "costwarden.dev/notification"
    assert payload["version"] == 1
    assert (payload["spend"], payload["limit"], payload["hourlyRate"]) == ("412.07", "500.00", "220.16")
    assert payload["exhaustsAt"] == "2026-11-28T02:14:00Z"
    assert payload["at"] == "2026-11-27T12:00:00Z"
    assert payload["topPods"][0] == {
        "name": "llama-sweep-2ea4-head",
        "spend": "120.00",
        "hourlyRate": "55.04",
    }
    assert len(payload["topPods"]) == 5
    assert (payload["skypilotCluster"], payload["skypilotUser"]) == ("llama-sweep", "alice")


def test_webhook_payload_keeps_its_keys_when_values_are_missing() -> None:
    payload = webhook_payload(
        make(exhausts_at=None, at=None, skypilot_cluster=None, skypilot_user=None, top_pods=())
    )
    assert set(payload) == WEBHOOK_KEYS
    assert payload["exhaustsAt"] is None
    assert payload["topPods"] == []


# ---------------------------------------------------------------- PagerDuty


@pytest.mark.parametrize(
    ("action", "percent", "severity"),
    [
        ("Notify", Decimal("82"), "warning"),
        ("Notify", Decimal("100"), "critical"),
        ("Notify", Decimal("130"), "critical"),
        ("Kill", Decimal("50"), "critical"),
        ("Scale", Decimal("80"), "critical"),
        ("Suspend", Decimal("80"), "critical"),
    ],
)
def test_pagerduty_severity(action: str, percent: Decimal, severity: str) -> None:
    event = pagerduty_event(make(action=action, percent_used=percent), "R0UTING")
    assert event["payload"]["severity"] == severity


def test_pagerduty_event_shape() -> None:
    event = pagerduty_event(make(), "R0UTING")
    assert event["routing_key"] == "R0UTING"
    assert event["event_action"] == "trigger"
    assert event["payload"]["source"] == "costwarden"
    assert event["payload"]["timestamp"] == "2026-11-27T12:00:00Z"
    assert event["payload"]["custom_details"] == webhook_payload(make())
    assert "research/llama-sweep" in event["payload"]["summary"]
    assert "412.07 of 500.00 USD" in event["payload"]["summary"]
    json.dumps(event)


def test_pagerduty_summary_and_dedup_key_within_limits() -> None:
    event = pagerduty_event(make(trigger="t" * 5000, budget="b" * 253), "R0UTING")
    assert len(event["payload"]["summary"]) <= 1024
    assert len(event["dedup_key"]) <= 255


def test_dedup_key_derives_from_namespace_budget_and_trigger() -> None:
    key = dedup_key(make())
    assert key == dedup_key(make(spend=Decimal(450), at=None))
    assert key.startswith("costwarden/research/llama-sweep/")
    assert key != dedup_key(make(trigger="spend reached 100% of 500.00 USD"))
    assert key != dedup_key(make(namespace="other"))


def test_message_module_imports_no_http_client() -> None:
    code = (
        "import sys, costwarden.notify.message\n"
        "bad = sorted(m for m in ('aiohttp', 'slack_sdk', 'requests', 'httpx', 'kopf', 'kubernetes')"
        " if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
