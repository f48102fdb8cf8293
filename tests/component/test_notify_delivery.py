"""Delivery to Slack (Web API and incoming webhook), a generic webhook and PagerDuty.

Local aiohttp servers on 127.0.0.1 stand in for the real services; slack-sdk is pointed at them
through its ``base_url``. Retries wait through an injected ``sleep`` that only records the delay,
so no test ever waits.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from costwarden.notify.delivery import Channels, Delivery, Notifier
from costwarden.notify.message import (
    Notification,
    PodSpend,
    pagerduty_event,
    slack_blocks,
    slack_text,
    webhook_payload,
)
from costwarden.notify.retry import Outcome, RetryPolicy, parse_retry_after

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TOKEN = "xoxb-test-token"
ROUTING_KEY = "R0UTINGKEY0000000000000000000000"

NOTE = Notification(
    budget="llama-sweep",
    namespace="research",
    spend=Decimal("412.0749"),
    limit=Decimal(500),
    percent_used=Decimal("82.4"),
    hourly_rate=Decimal("220.16"),
    exhausts_at=datetime(2026, 11, 28, 2, 14, tzinfo=UTC),
    period="Monthly",
    trigger="spend reached 80% of 500.00 USD",
    action="Notify",
    dry_run=False,
    next_step="At 100% the SkyPilot cluster llama-sweep (4 pods) will be killed",
    top_pods=(PodSpend("llama-sweep-2ea4-head", Decimal(120), Decimal("55.04")),),
    skypilot_cluster="llama-sweep",
    skypilot_user="alice",
    console_hint="kubectl get costbudget llama-sweep -n research",
    at=NOW,
)

DEFAULT_ANSWERS: dict[str, tuple[int, str]] = {
    "/api/chat.postMessage": (200, '{"ok": true, "channel": "C1", "ts": "1.2"}'),
    "/slack-hook/T0/B0/secret": (200, "ok"),
    "/hook": (200, '{"received": true}'),
    "/v2/enqueue": (202, '{"status": "success", "message": "Event processed", "dedup_key": "k"}'),
}


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """One local HTTP server for every stand-in; scripted answers per path, then the defaults."""

    base: str = ""
    seen: list[Seen] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict[str, str], str]]] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # "/hang" answers once set

    def answer(self, path: str, *answers: tuple[int, dict[str, str], str]) -> None:
        self.script.setdefault(path, []).extend(answers)

    def at(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.text()
        body: Any = json.loads(raw) if request.content_type == "application/json" else raw
        self.seen.append(Seen(request.path, dict(request.headers), body))
        if request.path == "/hang":
            await self.release.wait()
        queued = self.script.get(request.path)
        if queued:
            status, headers, text = queued.pop(0)
        else:
            status, text = DEFAULT_ANSWERS.get(request.path, (404, "no such path"))
            headers = {}
        content_type = "application/json" if text.startswith("{") else "text/plain"
        return web.Response(status=status, headers=headers, text=text, content_type=content_type)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    recv.base = f"http://127.0.0.1:{port}"
    yield recv
    recv.release.set()
    await runner.cleanup()


@dataclass
class FakeSleep:
    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


def notifier(receiver: Receiver, sleep: FakeSleep, **options: Any) -> Notifier:
    return Notifier(
        slack_base_url=f"{receiver.base}/api/",
        pagerduty_url=f"{receiver.base}/v2/enqueue",
        sleep=sleep,
        clock=lambda: NOW,
        **options,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- each channel


async def test_slack_web_api_gets_token_channel_and_blocks(receiver: Receiver, sleep: FakeSleep) -> None:
    channels = Channels(slack_token=TOKEN, slack_channel="#gpu-spend")
    result = await notifier(receiver, sleep).send(channels, NOTE)
    assert result == [Delivery("slack", ok=True, attempts=1)]
    (seen,) = receiver.at("/api/chat.postMessage")
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.body["channel"] == "#gpu-spend"
    assert seen.body["blocks"] == slack_blocks(NOTE)
    assert seen.body["text"] == slack_text(NOTE)
    assert sleep.delays == []


async def test_slack_incoming_webhook(receiver: Receiver, sleep: FakeSleep) -> None:
    channels = Channels(slack_webhook_url=f"{receiver.base}/slack-hook/T0/B0/secret")
    result = await notifier(receiver, sleep).send(channels, NOTE)
    assert result == [Delivery("slack-webhook", ok=True, attempts=1)]
    (seen,) = receiver.at("/slack-hook/T0/B0/secret")
    assert seen.body == {"text": slack_text(NOTE), "blocks": slack_blocks(NOTE)}


async def test_generic_webhook_gets_the_stable_payload(receiver: Receiver, sleep: FakeSleep) -> None:
    result = await notifier(receiver, sleep).send(Channels(webhook_url=f"{receiver.base}/hook"), NOTE)
    assert result == [Delivery("webhook", ok=True, attempts=1)]
    (seen,) = receiver.at("/hook")
    assert seen.headers["Content-Type"].startswith("application/json")
    assert seen.body == webhook_payload(NOTE)
    assert seen.body["spend"] == "412.07"


async def test_pagerduty_gets_an_events_v2_trigger(receiver: Receiver, sleep: FakeSleep) -> None:
    result = await notifier(receiver, sleep).send(Channels(pagerduty_routing_key=ROUTING_KEY), NOTE)
    assert result == [Delivery("pagerduty", ok=True, attempts=1)]
    (seen,) = receiver.at("/v2/enqueue")
    assert seen.body == pagerduty_event(NOTE, ROUTING_KEY)
    assert seen.body["event_action"] == "trigger"


async def test_every_configured_channel_in_a_fixed_order(receiver: Receiver, sleep: FakeSleep) -> None:
    channels = Channels(
        slack_token=TOKEN,
        slack_channel="#gpu-spend",
        webhook_url=f"{receiver.base}/hook",
        pagerduty_routing_key=ROUTING_KEY,
    )
    result = await notifier(receiver, sleep).send(channels, NOTE)
    assert [(d.channel, d.ok) for d in result] == [("slack", True), ("webhook", True), ("pagerduty", True)]
    assert sorted(s.path for s in receiver.seen) == ["/api/chat.postMessage", "/hook", "/v2/enqueue"]


async def test_no_channels_sends_nothing(receiver: Receiver, sleep: FakeSleep) -> None:
    assert await notifier(receiver, sleep).send(Channels(), NOTE) == []
    assert receiver.seen == []


# ---------------------------------------------------------------- retries


def slack_api(receiver: Receiver) -> tuple[Channels, str]:
    return Channels(slack_token=TOKEN, slack_channel="#gpu-spend"), "/api/chat.postMessage"


def slack_hook(receiver: Receiver) -> tuple[Channels, str]:
    path = "/slack-hook/T0/B0/secret"
    return Channels(slack_webhook_url=receiver.base + path), path


def generic(receiver: Receiver) -> tuple[Channels, str]:
    return Channels(webhook_url=f"{receiver.base}/hook"), "/hook"


def pagerduty(receiver: Receiver) -> tuple[Channels, str]:
    return Channels(pagerduty_routing_key=ROUTING_KEY), "/v2/enqueue"


CHANNELS = pytest.mark.parametrize("target", [slack_api, slack_hook, generic, pagerduty])


@CHANNELS
async def test_429_waits_for_retry_after_then_succeeds(
    receiver: Receiver, sleep: FakeSleep, target: Any
) -> None:
    channels, path = target(receiver)
    receiver.answer(path, (429, {"Retry-After": "2"}, '{"ok": false, "error": "ratelimited"}'))
    (delivery,) = await notifier(receiver, sleep).send(channels, NOTE)
    assert delivery.ok, delivery
    assert delivery.attempts == 2
    assert sleep.delays == [2.0]
    assert len(receiver.at(path)) == 2


@CHANNELS
async def test_500_four_times_fails_after_four_attempts(
    receiver: Receiver, sleep: FakeSleep, target: Any
) -> None:
    channels, path = target(receiver)
    receiver.answer(path, *[(500, {}, "boom")] * 4)
    (delivery,) = await notifier(receiver, sleep).send(channels, NOTE)
    assert not delivery.ok
    assert delivery.attempts == 4
    assert delivery.error is not None
    assert "after 4 attempts: HTTP 500" in delivery.error
    assert sleep.delays == [1.0, 2.0, 4.0]
    assert len(receiver.at(path)) == 4


@CHANNELS
async def test_400_is_not_retried(receiver: Receiver, sleep: FakeSleep, target: Any) -> None:
    channels, path = target(receiver)
    receiver.answer(path, (400, {}, '{"ok": false, "error": "invalid_blocks"}'))
    (delivery,) = await notifier(receiver, sleep).send(channels, NOTE)
    assert not delivery.ok
    assert delivery.attempts == 1
    assert delivery.error is not None
    assert delivery.error.startswith("HTTP 400")
    assert sleep.delays == []
    assert len(receiver.at(path)) == 1


async def test_503_with_retry_after_as_http_date(receiver: Receiver, sleep: FakeSleep) -> None:
    channels, path = generic(receiver)
    receiver.answer(path, (503, {"Retry-After": "Fri, 27 Nov 2026 12:00:07 GMT"}, "later"))
    (delivery,) = await notifier(receiver, sleep).send(channels, NOTE)
    assert delivery.ok
    assert sleep.delays == [7.0]


async def test_slack_api_error_with_ok_false_is_final(receiver: Receiver, sleep: FakeSleep) -> None:
    channels, path = slack_api(receiver)
    receiver.answer(path, (200, {}, '{"ok": false, "error": "channel_not_found"}'))
    (delivery,) = await notifier(receiver, sleep).send(channels, NOTE)
    assert (delivery.ok, delivery.attempts) == (False, 1)
    assert delivery.error == "HTTP 200: channel_not_found"


async def test_custom_policy_is_used(receiver: Receiver, sleep: FakeSleep) -> None:
    channels, path = generic(receiver)
    receiver.answer(path, *[(502, {}, "")] * 2)
    policy = RetryPolicy(max_attempts=2, base_delay=0.5, factor=3)
    (delivery,) = await notifier(receiver, sleep, retry=policy).send(channels, NOTE)
    assert (delivery.ok, delivery.attempts, delivery.error) == (
        False,
        2,
        "gave up after 2 attempts: HTTP 502",
    )
    assert sleep.delays == [0.5]


# ---------------------------------------------------------------- failures stay contained


async def test_unreachable_receiver_fails_cleanly(receiver: Receiver, sleep: FakeSleep) -> None:
    port = closed_port()
    channels = Channels(
        slack_token=TOKEN,
        slack_channel="#gpu-spend",
        webhook_url=f"http://127.0.0.1:{port}/hook-secret",
    )
    slack = Notifier(slack_base_url=f"http://127.0.0.1:{port}/api/", sleep=sleep, clock=lambda: NOW)
    result = await slack.send(channels, NOTE)
    assert [(d.channel, d.ok, d.attempts) for d in result] == [("slack", False, 4), ("webhook", False, 4)]
    for delivery in result:
        assert delivery.error is not None
        assert "gave up after 4 attempts" in delivery.error
        assert "hook-secret" not in delivery.error
        assert TOKEN not in delivery.error


async def test_a_receiver_that_never_answers_times_out(receiver: Receiver, sleep: FakeSleep) -> None:
    policy = RetryPolicy(max_attempts=2)
    hanging = notifier(receiver, sleep, retry=policy, timeout_s=0.2)
    (delivery,) = await hanging.send(Channels(webhook_url=f"{receiver.base}/hang"), NOTE)
    assert (delivery.ok, delivery.attempts) == (False, 2)
    assert delivery.error is not None
    assert "Timeout" in delivery.error
    assert len(receiver.at("/hang")) == 2


async def test_one_failing_channel_does_not_stop_the_others(receiver: Receiver, sleep: FakeSleep) -> None:
    channels = Channels(
        slack_webhook_url=f"http://127.0.0.1:{closed_port()}/slack-hook",
        webhook_url=f"{receiver.base}/hook",
        pagerduty_routing_key=ROUTING_KEY,
    )
    receiver.answer("/hook", (403, {}, "forbidden"))
    result = await notifier(receiver, sleep).send(channels, NOTE)
    assert [(d.channel, d.ok) for d in result] == [
        ("slack-webhook", False),
        ("webhook", False),
        ("pagerduty", True),
    ]
    assert len(receiver.at("/v2/enqueue")) == 1


async def test_malformed_url_is_not_retried_and_not_echoed(receiver: Receiver, sleep: FakeSleep) -> None:
    (delivery,) = await notifier(receiver, sleep).send(Channels(webhook_url="not a url s3cr3t"), NOTE)
    assert (delivery.ok, delivery.attempts) == (False, 1)
    assert delivery.error is not None
    assert "s3cr3t" not in delivery.error
    assert sleep.delays == []


async def test_slack_token_without_channel_is_reported(receiver: Receiver, sleep: FakeSleep) -> None:
    (delivery,) = await notifier(receiver, sleep).send(Channels(slack_token=TOKEN), NOTE)
    assert delivery == Delivery("slack", ok=False, attempts=1, error="a Slack token needs a channel")
    assert receiver.seen == []


# ---------------------------------------------------------------- the policy itself


@pytest.mark.parametrize(
    ("attempt", "outcome", "delay"),
    [
        (1, Outcome(ok=False, status=500), 1.0),
        (3, Outcome(ok=False, status=500), 4.0),
        (9, Outcome(ok=False, status=500), 60.0),
        (1, Outcome(ok=False, status=429, retry_after=2.0), 2.0),
        (1, Outcome(ok=False, status=503, retry_after=0.0), 0.0),
        (1, Outcome(ok=False, status=429, retry_after=3600.0), 60.0),
        (2, Outcome(ok=False, status=500, retry_after=30.0), 2.0),
    ],
)
def test_policy_delays(attempt: int, outcome: Outcome, delay: float) -> None:
    assert RetryPolicy().delay(attempt, outcome) == delay


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("Fri, 27 Nov 2026 12:01:00 GMT", 60.0),
        ("Fri, 27 Nov 2026 11:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_policy_needs_one_attempt() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)
