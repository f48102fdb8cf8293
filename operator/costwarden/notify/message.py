"""What a notification says, rendered for Slack (Block Kit), a generic JSON webhook and PagerDuty.

Pure: no I/O and no clock. Money stays ``Decimal`` up to here and is rounded to cents only in
these renderings. Slack's documented limits (header 150 characters, section text 3,000, field
2,000, 10 fields, 50 blocks) are respected by clipping, so a long pod or budget name can never
make Slack refuse the whole message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from costwarden.engine.money import MONEY_CONTEXT, usd

KIND = "costwarden.dev/notification"
VERSION = 1
SOURCE = "costwarden"
TOP_PODS = 5
DESTRUCTIVE_ACTIONS = frozenset({"Scale", "Suspend", "Kill"})

HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
SLACK_FALLBACK_MAX = 3000
PAGERDUTY_SUMMARY_MAX = 1024
PAGERDUTY_DEDUP_MAX = 255


class PodSpend(NamedTuple):
    name: str
    spend: Decimal  # USD in the budget's period
    rate: Decimal  # USD/hour now


@dataclass(frozen=True, kw_only=True)
class Notification:
    """Everything a person needs to understand one threshold crossing or anomaly.

    ``at`` (optional) is when the decision was taken, by the ledger's clock: with it the
    exhaustion is also shown as a remaining duration and PagerDuty gets a timestamp.
    """

    budget: str
    namespace: str
    spend: Decimal
    limit: Decimal
    percent_used: Decimal
    hourly_rate: Decimal
    exhausts_at: datetime | None
    period: str
    trigger: str
    action: str
    dry_run: bool
    next_step: str
    top_pods: tuple[PodSpend, ...] = ()
    skypilot_cluster: str | None = None
    skypilot_user: str | None = None
    console_hint: str = ""
    at: datetime | None = None
    record_id: str = ""  # the action record's id: receivers may deduplicate on it

    @property
    def idempotency_key(self) -> str:
        """The same for every resend of one record's notification (after a restart, a handover)."""
        return f"{self.namespace}/{self.budget}/{self.record_id or self.trigger}"

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.budget}"

    def pods_by_spend(self) -> tuple[PodSpend, ...]:
        """At most ``TOP_PODS`` pods, highest spend first (name breaks ties, so output is stable)."""
        ordered = sorted(self.top_pods, key=lambda pod: (-pod.spend, pod.name))
        return tuple(ordered[:TOP_PODS])


def is_critical(n: Notification) -> bool:
    """Critical when something is (or would be) stopped, or the limit is reached."""
    return str(n.action) in DESTRUCTIVE_ACTIONS or n.percent_used >= 100


# ---------------------------------------------------------------- text pieces


def percent(value: Decimal) -> str:
    """``82.44`` → ``"82.4"``, ``80`` → ``"80"``: one decimal place at most."""
    rounded = value.quantize(Decimal("0.1"), context=MONEY_CONTEXT)
    text = f"{rounded:f}"
    return text[:-2] if text.endswith(".0") else text


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def duration_text(seconds: int) -> str:
    """A coarse human duration: ``2d 3h``, ``13h 40m``, ``5m``."""
    minutes = max(seconds, 0) // 60
    days, rem = divmod(minutes, 1440)
    hours, mins = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"


def exhaustion_text(n: Notification) -> str:
    if n.exhausts_at is None:
        return "not at the current rate"
    when = utc_text(n.exhausts_at)
    if n.at is None:
        return when
    left = int((n.exhausts_at - n.at).total_seconds())
    return f"{when} (now)" if left <= 0 else f"{when} (in {duration_text(left)})"


def action_text(n: Notification) -> str:
    return f"{n.action} (dry run: nothing is changed)" if n.dry_run else str(n.action)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mrkdwn_escape(text: str) -> str:
    """Slack's required escaping for free text inside mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def summary_line(n: Notification) -> str:
    prefix = "[dry run] " if n.dry_run else ""
    return (
        f"{prefix}CostBudget {n.ref}: {usd(n.spend)} of {usd(n.limit)} USD ({percent(n.percent_used)}%)"
        f" at {usd(n.hourly_rate)} USD/h: {n.trigger}; action {n.action}"
    )


# ---------------------------------------------------------------- Slack


def _mrkdwn(text: str, limit: int = SECTION_TEXT_MAX) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit)}


def _header(n: Notification) -> dict[str, Any]:
    icon = ":rotating_light:" if is_critical(n) else ":warning:"
    dry = " [dry run]" if n.dry_run else ""
    title = f"{icon}{dry} {n.ref} at {percent(n.percent_used)}% of its budget"
    return {"type": "header", "text": {"type": "plain_text", "text": clip(title, HEADER_MAX), "emoji": True}}


def _figures(n: Notification) -> dict[str, Any]:
    fields = [
        f"*Spend*\n{usd(n.spend)} USD",
        f"*Limit*\n{usd(n.limit)} USD ({mrkdwn_escape(n.period)})",
        f"*Used*\n{percent(n.percent_used)}%",
        f"*Rate*\n{usd(n.hourly_rate)} USD/h",
        f"*Exhausts*\n{exhaustion_text(n)}",
        f"*Action*\n{mrkdwn_escape(action_text(n))}",
    ]
    return {
        "type": "section",
        "text": _mrkdwn(f"*Trigger:* {mrkdwn_escape(n.trigger)}"),
        "fields": [_mrkdwn(field, FIELD_TEXT_MAX) for field in fields],
    }


def _where(n: Notification) -> dict[str, Any]:
    parts = [f"Budget *{mrkdwn_escape(n.budget)}*", f"namespace *{mrkdwn_escape(n.namespace)}*"]
    if n.skypilot_cluster:
        parts.append(f"SkyPilot cluster *{mrkdwn_escape(n.skypilot_cluster)}*")
    if n.skypilot_user:
        parts.append(f"user *{mrkdwn_escape(n.skypilot_user)}*")
    return {"type": "context", "elements": [_mrkdwn(" · ".join(parts))]}


def _pods(n: Notification) -> dict[str, Any]:
    pods = n.pods_by_spend()
    lines = [f"• `{mrkdwn_escape(pod.name)}` {usd(pod.spend)} USD ({usd(pod.rate)} USD/h)" for pod in pods]
    body = "\n".join(lines) if lines else "_no running pods_"
    return {"type": "section", "text": _mrkdwn(f"*Top pods by spend*\n{body}")}


def _next(n: Notification) -> dict[str, Any]:
    elements = [_mrkdwn(f"*What happens next:* {mrkdwn_escape(n.next_step)}")]
    if n.console_hint:
        elements.append(_mrkdwn(f"`{mrkdwn_escape(n.console_hint)}`"))
    return {"type": "context", "elements": elements}


def slack_blocks(n: Notification) -> list[dict[str, Any]]:
    """Block Kit: header, figures, where (budget / SkyPilot), top pods, what happens next."""
    return [_header(n), _figures(n), _where(n), {"type": "divider"}, _pods(n), _next(n)]


def slack_text(n: Notification) -> str:
    """The fallback text Slack shows in notifications and to clients without Block Kit."""
    return clip(f"{summary_line(n)}. Next: {n.next_step}", SLACK_FALLBACK_MAX)


# ---------------------------------------------------------------- generic webhook


def webhook_payload(n: Notification) -> dict[str, Any]:
    """Stable JSON for receivers we do not know: money as decimal strings with two places."""
    return {
        "kind": KIND,
        "version": VERSION,
        "id": n.idempotency_key,
        "budget": n.budget,
        "namespace": n.namespace,
        "period": n.period,
        "currency": "USD",
        "spend": usd(n.spend),
        "limit": usd(n.limit),
        "percentUsed": percent(n.percent_used),
        "hourlyRate": usd(n.hourly_rate),
        "exhaustsAt": rfc3339(n.exhausts_at) if n.exhausts_at is not None else None,
        "at": rfc3339(n.at) if n.at is not None else None,
        "trigger": n.trigger,
        "action": str(n.action),
        "dryRun": n.dry_run,
        "severity": "critical" if is_critical(n) else "warning",
        "nextStep": n.next_step,
        "topPods": [
            {"name": pod.name, "spend": usd(pod.spend), "hourlyRate": usd(pod.rate)}
            for pod in n.pods_by_spend()
        ],
        "skypilotCluster": n.skypilot_cluster,
        "skypilotUser": n.skypilot_user,
        "consoleHint": n.console_hint,
    }


# ---------------------------------------------------------------- PagerDuty


def dedup_key(n: Notification) -> str:
    """Same budget and action record → same PagerDuty incident, so a notification resent after a
    restart or a handover does not open a second one; readable when it fits in 255 characters."""
    digest = hashlib.sha256(n.idempotency_key.encode()).hexdigest()
    readable = f"{SOURCE}/{n.ref}/{digest[:16]}"
    return readable if len(readable) <= PAGERDUTY_DEDUP_MAX else f"{SOURCE}/{digest}"


def pagerduty_event(n: Notification, routing_key: str) -> dict[str, Any]:
    """A PagerDuty Events API v2 ``trigger`` event."""
    payload: dict[str, Any] = {
        "summary": clip(summary_line(n), PAGERDUTY_SUMMARY_MAX),
        "source": SOURCE,
        "severity": "critical" if is_critical(n) else "warning",
        "component": n.ref,
        "group": n.namespace,
        "class": str(n.action),
        "custom_details": webhook_payload(n),
    }
    if n.at is not None:
        payload["timestamp"] = rfc3339(n.at)
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(n),
        "client": SOURCE,
        "payload": payload,
    }
