"""SkyPilot clusters on cloud VMs in the chart: the `clouds.*` values rendered into `costwarden run`'s
`--cloud` flags (only when scopes are set), what the schema and the templates refuse, and the
least-privilege policies the values file and the chart README hand out for each cloud.

The flags are parsed with the operator's own parser, and the scope pattern of values.schema.json is
checked against the operator's `--cloud` parser; the permissions are checked against the ones the
adapters (operator/costwarden/clouds/{aws,gcp,azure}.py) say they call.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from costwarden.cli import build_parser, operator_settings
from costwarden.clouds.factory import parse_cloud_spec
from tests.chart.helm import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    VALUES_ALL,
    HelmError,
    Manifest,
    Render,
    args_of,
    helm,
    pod_of,
    require_helm,
    values_renderer,
    with_outside,
)

ADAPTERS = ROOT / "operator" / "costwarden" / "clouds"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
SCOPES = ["aws:us-east-1,us-west-2", "gcp:ml-research", f"azure:{SUBSCRIPTION}"]
CLOUDS: dict[str, Any] = {"clouds": {"scopes": SCOPES, "interval": 30, "staleAfter": 120}}


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory, helm_home: Path) -> Render:
    """Render the chart with these values (written to a values file)."""
    require_helm()
    return values_renderer(tmp_path_factory.mktemp("cloud-values"), helm_home, with_outside)


@pytest.fixture(scope="module")
def cloud_manifests(render: Render) -> list[Manifest]:
    return render(CLOUDS)


def cloud_args(manifests: list[Manifest]) -> list[str]:
    return [a for a in args_of(manifests) if a.startswith("--cloud")]


def parse_run(manifests: list[Manifest]) -> argparse.Namespace:
    namespace, unknown = build_parser(load=[]).parse_known_args(["run", *args_of(manifests)])
    assert unknown == [], f"`costwarden run` does not accept {unknown}"
    return namespace


# --- rendering ---------------------------------------------------------------------------------


def test_each_scope_is_one_cloud_flag(cloud_manifests: list[Manifest]) -> None:
    assert cloud_args(cloud_manifests) == [
        "--cloud=aws:us-east-1,us-west-2",
        "--cloud=gcp:ml-research",
        f"--cloud=azure:{SUBSCRIPTION}",
        "--cloud-interval=30",
        "--cloud-stale-after=120",
    ]


def test_cloud_flags_parse_into_the_operator_settings(cloud_manifests: list[Manifest]) -> None:
    args = parse_run(cloud_manifests)
    assert args.clouds == SCOPES
    assert (args.cloud_interval, args.cloud_stale_after) == (30.0, 120.0)
    settings = operator_settings(args)
    assert settings.clouds == tuple(SCOPES)
    assert (settings.cloud_interval, settings.cloud_stale_after) == (30.0, 120.0)
    specs = [parse_cloud_spec(text) for text in settings.clouds]
    assert [(s.cloud, s.scopes) for s in specs] == [
        ("aws", ("us-east-1", "us-west-2")),
        ("gcp", ("ml-research",)),
        ("azure", (SUBSCRIPTION,)),
    ]


def test_defaults_render_no_cloud_flags(default_manifests: list[Manifest]) -> None:
    assert cloud_args(default_manifests) == []
    args = parse_run(default_manifests)
    assert args.clouds == []
    assert operator_settings(args).clouds == ()


def test_interval_and_stale_after_alone_render_nothing(render: Render) -> None:
    manifests = render({"clouds": {"scopes": [], "interval": 30, "staleAfter": 120}})
    assert cloud_args(manifests) == []


def test_chart_defaults_are_the_operators(render: Render) -> None:
    """staleAfter 0 passes no flag: the operator's own default (three intervals) applies."""
    manifests = render({"clouds": {"scopes": ["gcp:ml-research"]}})
    assert cloud_args(manifests) == ["--cloud=gcp:ml-research", "--cloud-interval=60"]
    defaults = build_parser(load=[]).parse_args(["run"])
    args = parse_run(manifests)
    assert args.cloud_interval == defaults.cloud_interval, "values.yaml's clouds.interval is the default"
    assert args.cloud_stale_after is None
    assert operator_settings(args).cloud_stale_after == 0.0  # 0: 3 x --cloud-interval


def test_every_option_parses_with_clouds(all_manifests: list[Manifest]) -> None:
    everything = yaml.safe_load(VALUES_ALL.read_text())["clouds"]
    assert everything["scopes"], "values-all.yaml switches clouds on"
    args = parse_run(all_manifests)
    assert args.clouds == everything["scopes"]
    assert (args.cloud_interval, args.cloud_stale_after) == (
        float(everything["interval"]),
        float(everything["staleAfter"]),
    )


def test_clouds_keep_the_pod_hardened(
    cloud_manifests: list[Manifest], default_manifests: list[Manifest]
) -> None:
    """Cloud scopes add flags only: no credentials, no volume, no change to the pod's hardening."""
    pod, default = pod_of(cloud_manifests), pod_of(default_manifests)
    assert pod["securityContext"] == default["securityContext"]
    container, default_container = pod["containers"][0], default["containers"][0]
    assert container["securityContext"] == default_container["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["env"] == default_container["env"]
    assert container["volumeMounts"] == default_container["volumeMounts"]
    assert pod["volumes"] == default["volumes"]
    assert [
        a for a in container["args"] if not a.startswith(("--cloud", "--outside-namespace="))
    ] == default_container["args"]


# --- what the chart refuses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "scope",
    [
        "aws:useast1",
        "aws:",
        "oracle:us-east-1",
        "aws:us-east-1,,us-west-2",
        "gcp:ML_Research",
        f"azure:{SUBSCRIPTION[:-1]}",
    ],
)
def test_schema_refuses_a_malformed_scope(render: Render, scope: str) -> None:
    with pytest.raises(HelmError) as caught:
        render({"clouds": {"scopes": ["gcp:ml-research", scope]}})
    assert "/clouds/scopes/1" in caught.value.stderr


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"interval": 0}, "/clouds/interval"),
        ({"staleAfter": -1}, "/clouds/staleAfter"),
        ({"scopes": ["gcp:ml-research", "gcp:ml-research"]}, "/clouds/scopes"),
        ({"scopes": "gcp:ml-research"}, "/clouds/scopes"),
        ({"awsSecretAccessKey": "secret"}, "awsSecretAccessKey"),
        ({"credentials": {"azure": "secret"}}, "credentials"),
    ],
)
def test_schema_refuses_bad_cloud_values(render: Render, values: dict[str, Any], complaint: str) -> None:
    """Including credentials: the values have no place for them (the pod's cloud identity acts)."""
    with pytest.raises(HelmError) as caught:
        render({"clouds": {"scopes": ["gcp:ml-research"], **values}})
    assert complaint in caught.value.stderr


@pytest.mark.parametrize("stale_after", [10, 30])
def test_stale_after_must_exceed_the_interval(render: Render, stale_after: int) -> None:
    with pytest.raises(HelmError) as caught:
        render({"clouds": {"scopes": ["gcp:ml-research"], "interval": 30, "staleAfter": stale_after}})
    assert (
        f"clouds.staleAfter must be more than clouds.interval (got {stale_after} <= 30)"
        in caught.value.stderr
    )
    assert cloud_args(render({"clouds": {"scopes": [], "interval": 30, "staleAfter": stale_after}})) == []


GOOD_SCOPES = [
    "aws:us-east-1",
    "aws:us-east-1,us-west-2,eu-central-2",
    "aws:us-gov-west-1",
    "aws:cn-north-1",
    "gcp:ml-research",
    "gcp:example.com:my-project",
    "gcp:project-one,project-two",
    f"azure:{SUBSCRIPTION}",
    f"azure:{SUBSCRIPTION.replace('0', 'A')},{SUBSCRIPTION}",
]
BAD_SCOPES = [
    "aws",
    "aws:",
    "aws:useast1",
    "aws:us-east-1,",
    "aws:us-east-1,,us-west-2",
    "aws:us-east-1,gcp:ml-research",
    "oracle:us-east-1",
    "gcp:abc",
    "gcp:ML_Research",
    "gcp:ml-research-",
    "azure:not-a-guid",
    f"azure:{SUBSCRIPTION[:-1]}",
    # The operator would take these (it lowercases and strips); the chart asks for the plain form.
    "AWS:us-east-1",
    " aws:us-east-1",
    "aws:us-east-1, us-west-2",
]


def schema_accepts(scope: str) -> bool:
    schema = json.loads((CHART / "values.schema.json").read_text())
    return jsonschema.Draft7Validator(schema).is_valid({"clouds": {"scopes": [scope]}})


def operator_accepts(scope: str) -> bool:
    try:
        parse_cloud_spec(scope)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("scope", GOOD_SCOPES + BAD_SCOPES)
def test_schema_accepts_only_what_the_operator_takes(scope: str) -> None:
    """A scope the chart renders never crash-loops the pod; the good forms all pass both."""
    accepted = schema_accepts(scope)
    assert accepted == (scope in GOOD_SCOPES)
    if accepted:
        assert operator_accepts(scope)
    if scope in GOOD_SCOPES:
        assert operator_accepts(scope)


# --- NOTES ---------------------------------------------------------------------------------------


def test_notes_list_the_scopes(helm_home: Path, tmp_path: Path) -> None:
    require_helm()
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump(with_outside({"clouds": {"scopes": SCOPES, "interval": 30}})))
    out = helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
        "-f",
        str(path),
        home=helm_home,
    ).stdout
    notes = out[out.index("NOTES:") :]
    assert "Cloud VMs of SkyPilot clusters, polled every 30 s" in notes
    for scope in SCOPES:
        assert f"  --cloud={scope}\n" in notes
    assert "without a complete poll of its scope in the last 90 s" in notes
    default = helm(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", home=helm_home
    ).stdout
    assert "Cloud VMs" not in default


# --- the permissions each cloud needs, as the values file and the chart README hand them out ---------


def adapter_permissions(cloud: str, start: str, item: str) -> set[str]:
    """The permissions the adapter's docstring names, in its sentence that begins with ``start``."""
    docstring = ast.get_docstring(ast.parse((ADAPTERS / f"{cloud}.py").read_text())) or ""
    sentence = docstring[docstring.index(start) :].split("\n\n", 1)[0]
    if cloud == "aws":  # "IAM: ``a``, ``b``, ``c`` (the last two may be limited ... ``ec2:ResourceTag``)"
        sentence = sentence.split("(", 1)[0]
    return set(re.findall(rf"``({item})``", sentence))


AWS = adapter_permissions("aws", "IAM:", r"ec2:\w+")
GCP = adapter_permissions("gcp", "Permissions:", r"compute\.[\w.]+")
AZURE = adapter_permissions("azure", "Permissions", r"Microsoft\.[\w./]+")
TAG_CONDITION = {"Null": {"aws:ResourceTag/skypilot-cluster-name": "false"}}
IDENTITIES = (
    "eks.amazonaws.com/role-arn",
    "iam.gke.io/gcp-service-account",
    "azure.workload.identity/client-id",
    'azure.workload.identity/use: "true"',
)


def test_adapters_name_their_permissions() -> None:
    assert {"ec2:DescribeInstances", "ec2:StopInstances", "ec2:TerminateInstances"} == AWS
    assert {p.rsplit(".", 1)[1] for p in GCP} == {"list", "get", "stop", "delete"}
    assert {p.split("/", 1)[1] for p in AZURE} == {
        "virtualMachines/read",
        "virtualMachines/instanceView/read",
        "virtualMachines/deallocate/action",
        "virtualMachines/delete",
    }


def values_section() -> str:
    """The comment block above `clouds:` in values.yaml, without the `# ` prefixes."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    start = lines.index("# SkyPilot clusters on cloud VMs (off by default).")
    end = lines.index("clouds:")
    assert start < end
    return "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines[start:end])


def readme_section() -> str:
    text = (CHART / "README.md").read_text()
    start = text.index("## SkyPilot clusters on cloud VMs")
    return text[start : text.index("\n## ", start + 1)]


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object that starts on a line of its own, outermost only."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    end = 0
    for match in re.finditer(r"^[ \t]*(\{)[ \t]*$", text, re.M):
        if match.start(1) < end:
            continue
        obj, end = decoder.raw_decode(text, match.start(1))
        found.append(obj)
    return found


def check_permissions(text: str) -> None:
    """The AWS policy, the GCP role's permissions and the Azure role's actions in ``text`` are
    exactly what the adapters call, with the AWS tag condition on stop and terminate."""
    (policy,) = [o for o in json_objects(text) if "Statement" in o]
    assert policy["Version"] == "2012-10-17"
    allowed: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        actions = {actions} if isinstance(actions, str) else set(actions)
        allowed |= actions
        if actions & {"ec2:StopInstances", "ec2:TerminateInstances"}:
            assert statement["Condition"] == TAG_CONDITION, "stop and terminate only SkyPilot's instances"
            assert statement["Resource"] == "arn:aws:ec2:*:*:instance/*"
        else:
            assert actions == {"ec2:DescribeInstances"} and statement["Resource"] == "*"
    assert allowed == AWS

    (permissions,) = re.findall(r"--permissions=(\S+)", text)
    assert set(permissions.split(",")) == GCP
    assert "roles/compute.instanceAdmin.v1" in text

    (role,) = [o for o in json_objects(text) if "Actions" in o]
    assert set(role["Actions"]) == AZURE
    assert role["NotActions"] == [] and "DataActions" not in role
    assert role["IsCustom"] is True
    assert [s.split("/")[1] for s in role["AssignableScopes"]] == ["subscriptions"]

    missing = [name for name in IDENTITIES if name not in text]
    assert missing == [], "each cloud's identity annotation (and Azure's pod label) is named"


@pytest.mark.parametrize("section", [values_section, readme_section], ids=["values.yaml", "README.md"])
def test_chart_hands_out_least_privilege_for_every_cloud(section: Callable[[], str]) -> None:
    check_permissions(section())


@pytest.mark.parametrize("permission", sorted(AWS | GCP | AZURE | {"skypilot-cluster-name"}))
def test_a_permission_missing_from_the_values_fails(permission: str) -> None:
    text = values_section()
    assert permission in text
    with pytest.raises((AssertionError, ValueError)):
        check_permissions(text.replace(permission, "removed"))
