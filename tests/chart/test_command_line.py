"""The Deployment's arguments are ones `costwarden run` accepts, with the values the chart meant.

The chart is rendered for the operator image of the same appVersion; a flag the CLI does not
know would crash-loop every pod.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from costwarden.cli import build_parser
from tests.chart.helm import Manifest, find, needs_helm, template


def parse_run(manifests: list[Manifest]) -> argparse.Namespace:
    pod = find(manifests, "Deployment")["spec"]["template"]["spec"]
    args = [str(a) for a in pod["containers"][0]["args"]]
    namespace, unknown = build_parser().parse_known_args(["run", *args])
    assert unknown == [], f"`costwarden run` does not accept {unknown}"
    return namespace


def test_default_arguments_parse(default_manifests: list[Manifest]) -> None:
    args = parse_run(default_manifests)
    assert args.command == "run"
    assert args.lease_name == "cw-costwarden"
    assert args.lease_namespace == "$(POD_NAMESPACE)"  # the kubelet expands it (test_leader_election)
    assert args.lease_identity == "$(POD_NAME)"
    assert (args.lease_duration, args.renew_deadline, args.retry_period) == (15.0, 10.0, 2.0)
    assert args.namespaces == []
    assert args.price_overrides is None
    assert args.dry_run is False


def test_every_option_parses(all_manifests: list[Manifest]) -> None:
    args = parse_run(all_manifests)
    assert args.namespaces == ["research", "inference"]
    assert args.interval == 5.0
    assert args.accrual_interval == 2.5
    assert args.metrics_port == 9100
    assert args.price_overrides == Path("/etc/costwarden/config/price-overrides.yaml")
    assert args.dry_run is True
    assert args.verbose is True
    assert args.enforcement == "dry-run"
    assert args.protected == ["kube-system", "monitoring"]
    assert args.operator_namespace == "costwarden"
    assert args.max_destructive_per_minute == 10
    assert args.lease_name == "costwarden-leader"
    assert (args.lease_duration, args.renew_deadline, args.retry_period) == (30.0, 20.0, 2.5)


@needs_helm
def test_standalone_arguments_parse(helm_home: Path) -> None:
    args = parse_run(
        template(values={"replicaCount": "1", "leaderElection.enabled": "false"}, home=helm_home)
    )
    assert args.lease_name is None


def test_managed_webhook_arguments_parse(managed_manifests: list[Manifest]) -> None:
    parse_run(managed_manifests)


def test_an_unknown_flag_fails_the_check(default_manifests: list[Manifest]) -> None:
    deployment = find(default_manifests, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    tampered = {**container, "args": [*container["args"], "--frobnicate=1"]}
    spec = {**deployment["spec"]["template"]["spec"], "containers": [tampered]}
    broken = {**deployment, "spec": {**deployment["spec"], "template": {"spec": spec}}}
    with pytest.raises(AssertionError, match="--frobnicate"):
        parse_run([broken])
