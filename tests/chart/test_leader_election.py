"""The chart's replicas elect one leader: the Lease arguments parse, and every pod holds the Lease
under its own name.

All pods of a Deployment get the same arguments, so the chart passes ``--lease-identity=$(POD_NAME)``
and lets the kubelet expand it from the downward API. Were the identities equal (a fixed flag, or
``$(POD_NAME)`` left unexpanded because the env var is missing), every replica would see itself as
the holder and renew the Lease: all of them would act. Here the kubelet's ``$(VAR)`` expansion is
replayed for a few pods, the results go through ``costwarden run``'s parser and the operator's own
Lease settings, and replicas built from them elect over an in-memory Lease API.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from costwarden.cli import build_parser, operator_settings
from costwarden.operator.app import lease_settings
from costwarden.operator.leader import LeaderElector, LeaseSettings
from tests.chart.helm import NAMESPACE, Manifest, find, needs_helm, template
from tests.leases import Leases

PODS = ("cw-costwarden-7d9c6b5f4-2xkqp", "cw-costwarden-7d9c6b5f4-h8mzv", "cw-costwarden-7d9c6b5f4-qq4rn")
DOWNWARD = {"metadata.name", "metadata.namespace"}
REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """The kubelet's expansion of ``$(VAR)`` in args: defined variables are replaced, ``$$`` is a
    literal ``$``, and a reference to an undefined variable is left as it is."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return env.get(match[1], match[0])

    return REFERENCE.sub(one, text)


def container(manifests: list[Manifest]) -> dict[str, Any]:
    return dict(find(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0])


def pod_env(manifests: list[Manifest], pod: str) -> dict[str, str]:
    """The container's environment in pod ``pod`` (literal values and downward-API fields)."""
    fields = {
        "metadata.name": pod,
        "metadata.namespace": find(manifests, "Deployment")["metadata"]["namespace"],
    }
    env: dict[str, str] = {}
    for entry in container(manifests).get("env", []):
        if "value" in entry:
            env[entry["name"]] = expand(str(entry["value"]), env)
        else:
            path = entry["valueFrom"]["fieldRef"]["fieldPath"]
            assert path in DOWNWARD, f"{entry['name']} comes from {path}, not known to this test"
            env[entry["name"]] = fields[path]
    return env


def pod_args(manifests: list[Manifest], pod: str) -> list[str]:
    env = pod_env(manifests, pod)
    args = [expand(str(a), env) for a in container(manifests)["args"]]
    left = [a for a in args if "$(" in a]
    assert not left, f"the kubelet would pass {left} literally: the env var is not defined"
    return args


def settings_in(manifests: list[Manifest], pod: str) -> LeaseSettings:
    """What the operator in ``pod`` elects with (`costwarden run`'s parser, then the operator's own
    conversion, which refuses timings without a fencing margin)."""
    namespace, unknown = build_parser().parse_known_args(["run", *pod_args(manifests, pod)])
    assert unknown == []
    return lease_settings(operator_settings(namespace))


@pytest.mark.parametrize(
    ("render", "lease", "timings"),
    [
        ("default_manifests", "cw-costwarden", (15, 10, 2)),
        ("all_manifests", "costwarden-leader", (30, 20, 2.5)),
    ],
)
def test_every_pod_holds_the_chart_lease_under_its_own_name(
    render: str, lease: str, timings: tuple[float, float, float], request: pytest.FixtureRequest
) -> None:
    manifests = request.getfixturevalue(render)
    settings = [settings_in(manifests, pod) for pod in PODS]
    assert {(s.name, s.namespace) for s in settings} == {(lease, NAMESPACE)}
    assert [s.identity for s in settings] == list(PODS)
    assert {(s.lease_duration, s.renew_deadline, s.retry_period) for s in settings} == {timings}


@needs_helm
def test_without_leader_election_there_is_no_lease(helm_home: Path) -> None:
    manifests = template(values={"replicaCount": "1", "leaderElection.enabled": "false"}, home=helm_home)
    namespace, unknown = build_parser().parse_known_args(["run", *pod_args(manifests, PODS[0])])
    assert unknown == [] and namespace.lease_name is None
    assert not [a for a in container(manifests)["args"] if a.startswith("--lease")]


def test_expansion_follows_the_kubelet() -> None:
    env = {"POD_NAME": "p-1", "EMPTY": ""}
    assert expand("--lease-identity=$(POD_NAME)", env) == "--lease-identity=p-1"
    assert expand("$(MISSING)-$$(POD_NAME)-$(EMPTY)x", env) == "$(MISSING)-$(POD_NAME)-x"


def acting_after_a_while(settings: list[LeaseSettings]) -> list[bool]:
    """Replicas with these settings take turns at the Lease for a minute of fake time."""
    now = [0.0]
    leases = Leases()
    electors = [
        LeaderElector(
            leases,
            s,
            clock=lambda: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=now[0]),
            monotonic=lambda: now[0],
        )
        for s in settings
    ]

    async def rounds() -> None:
        while now[0] < 60:
            for elector in electors:
                await elector.try_once()
            now[0] += settings[0].retry_period

    asyncio.run(rounds())
    return [e.acting() for e in electors]


def test_the_chart_replicas_elect_exactly_one(default_manifests: list[Manifest]) -> None:
    settings = [settings_in(default_manifests, pod) for pod in PODS]
    assert sorted(acting_after_a_while(settings)) == [False, False, True]


def test_shared_identities_would_let_every_replica_act(default_manifests: list[Manifest]) -> None:
    """Why the identity must differ per pod: what the check above guards against."""
    same = dataclasses.replace(settings_in(default_manifests, PODS[0]), identity="operator")
    assert acting_after_a_while([same] * len(PODS)) == [True] * len(PODS)
