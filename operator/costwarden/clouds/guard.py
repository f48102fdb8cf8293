"""The check every adapter makes on a VM it has just re-read, before stopping or deleting it."""

from __future__ import annotations

from costwarden.clouds.base import VMActionResult
from costwarden.engine.vms import CLUSTER_TAGS, VMRecord


def refusal(live: VMRecord, claimed: str | None, word: str = "tag") -> VMActionResult | None:
    """None when the VM as re-read carries SkyPilot's cluster ``word`` (tag, label) of the claimed
    cluster and no other value of it; otherwise why it is left alone."""
    values = {value for key, value in live.tags if key in CLUSTER_TAGS and value}
    if not values:
        return VMActionResult(live.vm_id, False, f"no SkyPilot cluster {word} on the VM: left alone")
    if values != {claimed}:
        names = ", ".join(sorted(values))
        return VMActionResult(live.vm_id, False, f"its cluster {word} is {names}, not {claimed}: left alone")
    return None
