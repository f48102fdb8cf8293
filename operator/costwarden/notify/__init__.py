"""Telling people: what a notification says (``message``, pure) and how it is delivered (``delivery``)."""

from costwarden.notify.message import (
    Notification,
    PodSpend,
    pagerduty_event,
    slack_blocks,
    slack_text,
    webhook_payload,
)

__all__ = [
    "Notification",
    "PodSpend",
    "pagerduty_event",
    "slack_blocks",
    "slack_text",
    "webhook_payload",
]
