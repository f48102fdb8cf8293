"""The chart's two replicas with kopf peering: only works if they do not share a priority.

kopf pauses every peer when it sees another live peer of the same priority ("Possibly conflicting
operators with the same priority"), so two pods of one Deployment both stand by unless the
operator gives each process its own priority. The chart cannot: every pod of a Deployment gets
the same arguments.
"""

from __future__ import annotations

from costwarden.operator.app import kopf_settings
from costwarden.operator.settings import OperatorSettings


def test_peers_of_one_deployment_do_not_all_get_the_default_priority() -> None:
    settings = OperatorSettings(peering="cw-costwarden")
    priorities = [kopf_settings(settings).peering.priority for _ in range(5)]
    assert all(isinstance(p, int) and p > 0 for p in priorities)
    assert len(set(priorities)) > 1  # each process draws its own
    pinned = OperatorSettings(peering="cw-costwarden", peering_priority=7)
    assert kopf_settings(pinned).peering.priority == 7
    assert kopf_settings(OperatorSettings()).peering.standalone
