"""Delivering a ``Notification`` to Slack, a generic webhook and PagerDuty (the shell side).

Each configured channel is tried concurrently with its own retries; one failing never holds
the others back, and ``Notifier.send`` never raises: every channel ends as a ``Delivery``
saying whether it arrived, after how many attempts, and why not. Error texts never contain
the credentials (token, webhook URL, routing key) that were used.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from costwarden.notify.message import (
    Notification,
    pagerduty_event,
    slack_blocks,
    slack_text,
    webhook_payload,
)
from costwarden.notify.retry import Outcome, RetryPolicy, parse_retry_after, with_retries

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
BODY_SNIPPET = 200
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


Attempt = Callable[[], Awaitable[Outcome]]
Post = Callable[[aiohttp.ClientSession], Awaitable[Outcome]]


@dataclass(frozen=True)
class Channels:
    """Where to send, with the credentials already read from the budget's Secrets."""

    slack_token: str | None = None
    slack_channel: str | None = None
    slack_webhook_url: str | None = None
    webhook_url: str | None = None
    pagerduty_routing_key: str | None = None

    def secrets(self) -> tuple[str, ...]:
        values = (self.slack_token, self.slack_webhook_url, self.webhook_url, self.pagerduty_routing_key)
        return tuple(value for value in values if value)


@dataclass(frozen=True)
class Delivery:
    channel: str  # "slack" | "slack-webhook" | "webhook" | "pagerduty"
    ok: bool
    attempts: int
    error: str | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A header by case-insensitive name, from a plain dict or an aiohttp multidict."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Remove credentials, also in the percent-encoded forms that URL errors print."""
    for secret in secrets:
        for form in {secret, quote(secret, safe=":/?#[]@!$&'()*+,;="), quote(secret, safe="")}:
            text = text.replace(form, "***")
    return text


def _describe(exc: BaseException) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _failed(exc: BaseException) -> Outcome:
    """A request that got no HTTP answer: retried, unless the URL itself is unusable."""
    if isinstance(exc, aiohttp.InvalidURL):
        return Outcome(ok=False, error=f"{type(exc).__name__}: the URL is not usable", final=True)
    return Outcome(ok=False, error=_describe(exc))


class Notifier:
    """Sends notifications; ``sleep`` and ``clock`` are injectable so tests never wait."""

    def __init__(
        self,
        *,
        slack_base_url: str | None = None,
        pagerduty_url: str = PAGERDUTY_EVENTS_URL,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timeout_s: float = 10.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._slack_base_url = slack_base_url
        self._pagerduty_url = pagerduty_url
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._timeout_s = timeout_s
        self._clock = clock

    async def send(self, channels: Channels, n: Notification) -> list[Delivery]:
        """Deliver ``n`` to every configured channel; one ``Delivery`` per channel, in a fixed order."""
        planned = self._plan(channels, n)
        secrets = channels.secrets()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_s)) as session:
                results = await asyncio.gather(
                    *(
                        self._deliver(name, functools.partial(post, session), secrets)
                        for name, post in planned
                    )
                )
        except Exception as exc:  # opening or closing the session itself failed
            error = _scrub(_describe(exc), secrets)
            return [Delivery(name, ok=False, attempts=0, error=error) for name, _ in planned]
        return list(results)

    def _plan(self, channels: Channels, n: Notification) -> list[tuple[str, Post]]:
        planned: list[tuple[str, Post]] = []
        if channels.slack_token:
            planned.append(("slack", functools.partial(self._slack_api, channels=channels, n=n)))
        elif channels.slack_webhook_url:
            post = functools.partial(self._slack_webhook, url=channels.slack_webhook_url, n=n)
            planned.append(("slack-webhook", post))
        if channels.webhook_url:
            post = functools.partial(
                self._post_json,
                url=channels.webhook_url,
                payload=webhook_payload(n),
                headers={"Idempotency-Key": n.idempotency_key},
            )
            planned.append(("webhook", post))
        if channels.pagerduty_routing_key:
            event = pagerduty_event(n, channels.pagerduty_routing_key)
            planned.append(
                ("pagerduty", functools.partial(self._post_json, url=self._pagerduty_url, payload=event))
            )
        return planned

    async def _deliver(self, name: str, attempt: Attempt, secrets: tuple[str, ...]) -> Delivery:
        try:
            outcome, tries = await with_retries(attempt, self._retry, self._sleep)
        except Exception as exc:  # a bug or an SDK surprise: reported, never raised
            return Delivery(name, ok=False, attempts=1, error=_scrub(f"unexpected {_describe(exc)}", secrets))
        if outcome.ok:
            return Delivery(name, ok=True, attempts=tries)
        error = outcome.error or "failed"
        if outcome.retryable:
            error = f"gave up after {tries} attempts: {error}"
        return Delivery(name, ok=False, attempts=tries, error=_scrub(error, secrets))

    def _outcome(self, status: int, headers: Mapping[str, Any] | None, body: str, ok: bool) -> Outcome:
        if ok:
            return Outcome(ok=True, status=status)
        snippet = body.strip()[:BODY_SNIPPET]
        error = f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
        retry_after = parse_retry_after(_header(headers, "Retry-After"), self._clock())
        return Outcome(ok=False, status=status, retry_after=retry_after, error=error)

    async def _slack_api(
        self, session: aiohttp.ClientSession, channels: Channels, n: Notification
    ) -> Outcome:
        if not channels.slack_channel:
            return Outcome(ok=False, error="a Slack token needs a channel", final=True)
        options: dict[str, Any] = {"base_url": self._slack_base_url} if self._slack_base_url else {}
        client = AsyncWebClient(
            token=channels.slack_token,
            session=session,
            timeout=math.ceil(self._timeout_s),
            retry_handlers=[],
            **options,
        )
        try:
            await client.chat_postMessage(
                channel=channels.slack_channel, text=slack_text(n), blocks=slack_blocks(n)
            )
        except SlackApiError as exc:
            response = exc.response
            data = response.data
            body = str(data.get("error", "")) if isinstance(data, dict) else str(data)
            return self._outcome(response.status_code, response.headers, body, ok=False)
        except TRANSPORT_ERRORS as exc:
            return _failed(exc)
        return Outcome(ok=True, status=200)

    async def _slack_webhook(self, session: aiohttp.ClientSession, url: str, n: Notification) -> Outcome:
        client = AsyncWebhookClient(
            url, session=session, timeout=math.ceil(self._timeout_s), retry_handlers=[]
        )
        try:
            response = await client.send(text=slack_text(n), blocks=slack_blocks(n))
        except TRANSPORT_ERRORS as exc:
            return _failed(exc)
        ok = response.status_code == 200
        return self._outcome(response.status_code, response.headers, response.body or "", ok)

    async def _post_json(
        self,
        session: aiohttp.ClientSession,
        url: str,
        payload: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> Outcome:
        try:
            async with session.post(url, json=payload, headers=headers) as response:
                body = await response.text(errors="replace")
                return self._outcome(response.status, response.headers, body, 200 <= response.status < 300)
        except TRANSPORT_ERRORS as exc:
            return _failed(exc)
