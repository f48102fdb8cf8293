"""Slurm jobs in the chart: the `slurm.*` values rendered into `costwarden run`'s `--slurm` flags
(only when clusters are set), slurmrestd's JWT mounted from a Secret as the file
`--slurmrestd-token-file` names, and what the schema and the templates refuse.

The flags are parsed with the operator's own parser and turned into its settings; the checks the
operator makes at start (operator/costwarden/operator/app.py `job_feed`: slurmrestd serves exactly
one cluster and needs a token file) are made by the chart before anything is rendered.
"""

from __future__ import annotations

import argparse
import json
import stat
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from costwarden.cli import build_parser, operator_settings
from costwarden.models import SlurmSelector
from costwarden.pricing import load_overrides_text
from tests.chart.helm import (
    CHART,
    NAMESPACE,
    RELEASE,
    VALUES_ALL,
    HelmError,
    Manifest,
    Render,
    args_of,
    find,
    helm,
    pod_of,
    require_helm,
    values_renderer,
    with_outside,
)

URL = "http://slurmrestd.slurm.svc:6820"
TOKEN_FILE = "/etc/costwarden/slurmrestd/token"
RESTD: dict[str, Any] = {
    "slurm": {
        "clusters": ["hpc"],
        "interval": 20,
        "staleAfter": 90,
        "restd": {
            "url": URL,
            "user": "costwarden",
            "tokenSecret": {"name": "slurmrestd-token", "key": "jwt"},
        },
    }
}
COMMANDS: dict[str, Any] = {"slurm": {"clusters": ["hpc", "lab"]}}


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory, helm_home: Path) -> Render:
    """Render the chart with these values (written to a values file)."""
    require_helm()
    return values_renderer(tmp_path_factory.mktemp("slurm-values"), helm_home, with_outside)


@pytest.fixture(scope="module")
def restd_manifests(render: Render) -> list[Manifest]:
    return render(RESTD)


@pytest.fixture(scope="module")
def command_manifests(render: Render) -> list[Manifest]:
    return render(COMMANDS)


def slurm_args(manifests: list[Manifest]) -> list[str]:
    return [a for a in args_of(manifests) if a.startswith("--slurm")]


def parse_run(manifests: list[Manifest]) -> argparse.Namespace:
    namespace, unknown = build_parser(load=[]).parse_known_args(["run", *args_of(manifests)])
    assert unknown == [], f"`costwarden run` does not accept {unknown}"
    return namespace


def token_volume(manifests: list[Manifest]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The container's mount of slurmrestd's token and the volume behind it, or None."""
    pod = pod_of(manifests)
    mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "slurmrestd-token"]
    volumes = [v for v in pod["volumes"] if v["name"] == "slurmrestd-token"]
    assert len(mounts) == len(volumes) <= 1
    return (mounts[0], volumes[0]) if mounts else None


# --- rendering ---------------------------------------------------------------------------------


def test_restd_renders_its_flags(restd_manifests: list[Manifest]) -> None:
    assert slurm_args(restd_manifests) == [
        "--slurm=hpc",
        f"--slurmrestd-url={URL}",
        f"--slurmrestd-token-file={TOKEN_FILE}",
        "--slurmrestd-user=costwarden",
        "--slurm-interval=20",
        "--slurm-stale-after=90",
    ]


def test_restd_flags_parse_into_the_operator_settings(restd_manifests: list[Manifest]) -> None:
    args = parse_run(restd_manifests)
    assert args.slurm == ["hpc"]
    assert (args.slurmrestd_url, args.slurmrestd_token_file) == (URL, Path(TOKEN_FILE))
    assert args.slurmrestd_user == "costwarden"
    settings = operator_settings(args)
    assert settings.slurm == ("hpc",)
    assert (settings.slurm_interval, settings.slurm_stale_after) == (20.0, 90.0)
    # What job_feed requires of slurmrestd before it builds the source.
    assert len(settings.slurm) == 1 and settings.slurmrestd_token_file == Path(TOKEN_FILE)


def test_the_token_secret_is_mounted_where_the_flag_points(restd_manifests: list[Manifest]) -> None:
    found = token_volume(restd_manifests)
    assert found is not None
    mount, volume = found
    assert mount["readOnly"] is True
    # A subPath mount is never refreshed by the kubelet: the token could not be rotated in place.
    assert "subPath" not in mount and "subPathExpr" not in mount
    assert volume["secret"]["secretName"] == "slurmrestd-token"
    (item,) = volume["secret"]["items"]
    assert item["key"] == "jwt"
    path = PurePosixPath(mount["mountPath"]) / item["path"]
    assert str(path) == TOKEN_FILE == str(parse_run(restd_manifests).slurmrestd_token_file)
    assert volume["secret"].get("optional") is not True, "a missing Secret stops the pod, visibly"


def test_the_token_file_is_readable_by_the_operator_only_through_its_group(
    restd_manifests: list[Manifest], render: Render
) -> None:
    """0440 and the pod's fsGroup (the kubelet gives the file that group); with no fsGroup the
    file stays root's, so it must be world-readable (0444) for the non-root operator to read it."""
    pod = pod_of(restd_manifests)
    assert pod["securityContext"]["fsGroup"] == pod["containers"][0]["securityContext"]["runAsGroup"]
    found = token_volume(restd_manifests)
    assert found is not None
    assert stat.filemode(found[1]["secret"]["defaultMode"]) == "?r--r-----"
    manifests = render({**RESTD, "podSecurityContext": {"fsGroup": None}})  # null unsets it
    assert "fsGroup" not in pod_of(manifests)["securityContext"]
    without = token_volume(manifests)
    assert without is not None
    assert stat.filemode(without[1]["secret"]["defaultMode"]) == "?r--r--r--"


def test_the_default_secret_key_is_token(render: Render) -> None:
    manifests = render(
        {"slurm": {"clusters": ["hpc"], "restd": {"url": URL, "tokenSecret": {"name": "jwt"}}}}
    )
    found = token_volume(manifests)
    assert found is not None
    assert found[1]["secret"]["items"] == [{"key": "token", "path": "token"}]
    assert [a for a in slurm_args(manifests) if a.startswith("--slurmrestd-user")] == []
    assert parse_run(manifests).slurmrestd_user is None


def test_client_commands_render_one_slurm_flag_per_cluster(command_manifests: list[Manifest]) -> None:
    assert slurm_args(command_manifests) == ["--slurm=hpc", "--slurm=lab", "--slurm-interval=30"]
    args = parse_run(command_manifests)
    assert args.slurm == ["hpc", "lab"]
    assert (args.slurmrestd_url, args.slurmrestd_token_file, args.slurmrestd_user) == (None, None, None)
    assert operator_settings(args).slurm == ("hpc", "lab")
    assert token_volume(command_manifests) is None


def test_defaults_render_no_slurm_flags(default_manifests: list[Manifest]) -> None:
    assert slurm_args(default_manifests) == []
    assert token_volume(default_manifests) is None
    args = parse_run(default_manifests)
    assert args.slurm == []
    assert operator_settings(args).slurm == ()


def test_interval_and_stale_after_alone_render_nothing(render: Render) -> None:
    manifests = render({"slurm": {"clusters": [], "interval": 20, "staleAfter": 90}})
    assert slurm_args(manifests) == []


def test_chart_defaults_are_the_operators(command_manifests: list[Manifest]) -> None:
    """staleAfter 0 passes no flag: the operator's own default (three intervals) applies."""
    defaults = build_parser(load=[]).parse_args(["run"])
    args = parse_run(command_manifests)
    assert args.slurm_interval == defaults.slurm_interval, "values.yaml's slurm.interval is the default"
    assert args.slurm_stale_after is None
    assert operator_settings(args).slurm_stale_after == 0.0  # 0: 3 x --slurm-interval


def test_every_option_parses_with_slurm(all_manifests: list[Manifest]) -> None:
    everything = yaml.safe_load(VALUES_ALL.read_text())["slurm"]
    assert everything["clusters"] and everything["restd"]["url"], "values-all.yaml switches slurmrestd on"
    args = parse_run(all_manifests)
    assert args.slurm == everything["clusters"]
    assert args.slurmrestd_url == everything["restd"]["url"]
    assert args.slurmrestd_user == everything["restd"]["user"]
    assert args.slurmrestd_token_file == Path(TOKEN_FILE)
    assert (args.slurm_interval, args.slurm_stale_after) == (
        float(everything["interval"]),
        float(everything["staleAfter"]),
    )
    found = token_volume(all_manifests)
    assert found is not None
    assert found[1]["secret"]["secretName"] == everything["restd"]["tokenSecret"]["name"]


@pytest.mark.parametrize("values", [RESTD, COMMANDS], ids=["restd", "commands"])
def test_slurm_keeps_the_pod_hardened(
    values: dict[str, Any], render: Render, default_manifests: list[Manifest]
) -> None:
    """Flags, and for slurmrestd one read-only Secret volume: nothing else of the pod changes."""
    pod, default = pod_of(render(values)), pod_of(default_manifests)
    assert pod["securityContext"] == default["securityContext"]
    container, default_container = pod["containers"][0], default["containers"][0]
    assert container["securityContext"] == default_container["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["env"] == default_container["env"]
    added = [m for m in container["volumeMounts"] if m not in default_container["volumeMounts"]]
    assert [(m["name"], m.get("readOnly")) for m in added] == (
        [("slurmrestd-token", True)] if values is RESTD else []
    )
    assert [v["name"] for v in pod["volumes"] if v not in default["volumes"]] == [m["name"] for m in added]
    assert [
        a for a in container["args"] if not a.startswith(("--slurm", "--outside-namespace="))
    ] == default_container["args"]


def test_no_rbac_for_the_token(restd_manifests: list[Manifest], default_manifests: list[Manifest]) -> None:
    """The kubelet mounts the Secret; the operator's ServiceAccount is granted nothing more."""
    for kind in ("ClusterRole", "Role"):
        assert find(restd_manifests, kind)["rules"] == find(default_manifests, kind)["rules"]


def test_slurm_prices_reach_the_operators_loader(render: Render) -> None:
    """`priceOverrides.slurm` (node names, host lists, partitions) is written into the overrides
    file as the operator reads it."""
    prices = {
        "nodes": {
            "gpu-a100-[01-08]": {"gpu": "3.10", "cpu": "0.03", "ramGiB": "0.004"},
            "h100-[01-04]": {"instance": "aws/us-east-1/p5.48xlarge"},
        },
        "partitions": {"gpu": {"gpu": "2.50"}},
    }
    manifests = render({**COMMANDS, "priceOverrides": {"slurm": prices}})
    (path,) = [a.split("=", 1)[1] for a in args_of(manifests) if a.startswith("--price-overrides=")]
    configmap = next(
        m for m in manifests if m["kind"] == "ConfigMap" and Path(path).name in m.get("data", {})
    )
    overrides = load_overrides_text(configmap["data"][Path(path).name], path)
    assert overrides.slurm.nodes["gpu-a100-[01-08]"].gpu == Decimal("3.10")
    assert overrides.slurm.nodes["h100-[01-04]"].instance == "aws/us-east-1/p5.48xlarge"
    assert overrides.slurm.partitions["gpu"].gpu == Decimal("2.50")
    assert overrides.slurm.partitions["gpu"].cpu is None  # unset units take the defaults


@pytest.mark.parametrize(
    ("prices", "complaint"),
    [
        ({"nodes": {"gpu-01": {"gpu": -1}}}, "/priceOverrides/slurm/nodes/gpu-01"),
        ({"nodes": {"gpu-01": {"gpus": 3}}}, "additional properties 'gpus' not allowed"),
        ({"partitions": {"gpu": {"gpu": "2,50"}}}, "/priceOverrides/slurm/partitions/gpu"),
        ({"accounts": {}}, "additional properties 'accounts' not allowed"),
    ],
)
def test_schema_refuses_bad_slurm_prices(render: Render, prices: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmError) as caught:
        render({"priceOverrides": {"slurm": prices}})
    assert complaint in caught.value.stderr


# --- what the chart refuses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (
            {"clusters": [], "restd": {"url": URL, "tokenSecret": {"name": "jwt"}}},
            "slurm.restd.url serves one Slurm cluster: give exactly one name in slurm.clusters (got 0: [])",
        ),
        (
            {"clusters": ["hpc", "lab"], "restd": {"url": URL, "tokenSecret": {"name": "jwt"}}},
            "slurm.restd.url serves one Slurm cluster: give exactly one name in slurm.clusters "
            "(got 2: [hpc lab])",
        ),
        (
            {"clusters": ["hpc"], "restd": {"url": URL}},
            "slurm.restd.url needs slurm.restd.tokenSecret.name",
        ),
        (
            {"clusters": ["hpc"], "restd": {"tokenSecret": {"name": "jwt"}}},
            "slurm.restd.user and slurm.restd.tokenSecret need slurm.restd.url",
        ),
        (
            {"clusters": ["hpc"], "restd": {"user": "costwarden"}},
            "slurm.restd.user and slurm.restd.tokenSecret need slurm.restd.url",
        ),
        (
            {"clusters": ["hpc"], "interval": 30, "staleAfter": 30},
            "slurm.staleAfter must be more than slurm.interval (got 30 <= 30)",
        ),
        (
            {"clusters": ["hpc"], "interval": 30, "staleAfter": 10},
            "slurm.staleAfter must be more than slurm.interval (got 10 <= 30)",
        ),
    ],
)
def test_chart_refuses_slurm_it_cannot_run(render: Render, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmError) as caught:
        render({"slurm": values})
    assert complaint in caught.value.stderr


def test_stale_after_is_checked_only_with_clusters(render: Render) -> None:
    assert slurm_args(render({"slurm": {"clusters": [], "interval": 30, "staleAfter": 10}})) == []


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"clusters": ["HPC"]}, "/slurm/clusters/0"),
        ({"clusters": ["hpc,lab"]}, "/slurm/clusters/0"),  # --clusters would read two
        ({"clusters": ["hpc:a"]}, "/slurm/clusters/0"),  # ledger keys are slurm:<cluster>:<id>
        ({"clusters": ["hpc lab"]}, "/slurm/clusters/0"),
        ({"clusters": ["-hpc"]}, "/slurm/clusters/0"),
        ({"clusters": [""]}, "/slurm/clusters/0"),
        ({"clusters": ["h" * 201]}, "/slurm/clusters/0"),
        ({"clusters": ["hpc", "hpc"]}, "/slurm/clusters"),
        ({"clusters": "hpc"}, "/slurm/clusters"),
        ({"interval": 0}, "/slurm/interval"),
        ({"staleAfter": -1}, "/slurm/staleAfter"),
        ({"restd": {"url": "slurmrestd:6820"}}, "/slurm/restd/url"),
        ({"restd": {"url": "ftp://slurmrestd"}}, "/slurm/restd/url"),
        ({"restd": {"url": "http://user:pass@slurmrestd"}}, "/slurm/restd/url"),
        ({"restd": {"url": "http://slurmrestd/ x"}}, "/slurm/restd/url"),
        ({"restd": {"user": "cost warden"}}, "/slurm/restd/user"),
        ({"restd": {"user": "costwarden\nX-Other: 1"}}, "/slurm/restd/user"),
        ({"restd": {"tokenSecret": {"name": "Slurm_JWT"}}}, "/slurm/restd/tokenSecret/name"),
        ({"restd": {"tokenSecret": {"name": "jwt", "key": "a/b"}}}, "/slurm/restd/tokenSecret/key"),
        ({"restd": {"tokenSecret": {"name": "jwt", "key": ""}}}, "/slurm/restd/tokenSecret/key"),
        (
            {"restd": {"token": "eyJhbGciOi..."}},
            "additional properties 'token' not allowed",
        ),  # never the JWT itself in values
        ({"restd": {"tokenSecret": "jwt"}}, "/slurm/restd/tokenSecret"),
        ({"mungeKey": "secret"}, "additional properties 'mungeKey' not allowed"),
    ],
)
def test_schema_refuses_bad_slurm_values(render: Render, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmError) as caught:
        render({"slurm": values})
    assert complaint in caught.value.stderr


GOOD_NAMES = ["hpc", "cluster-1", "lab_gpu", "a", "eu.hpc-2", "h" * 200]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_accepted_cluster_names_are_ones_budgets_can_give(name: str) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert jsonschema.Draft7Validator(schema).is_valid({"slurm": {"clusters": [name]}})
    assert SlurmSelector.model_validate({"cluster": name}).cluster == name


# --- NOTES ---------------------------------------------------------------------------------------


def notes(helm_home: Path, tmp_path: Path, values: dict[str, Any]) -> str:
    require_helm()
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(with_outside(values)))
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
    return out[out.index("NOTES:") :]


def test_notes_name_slurmrestd_and_the_secret(helm_home: Path, tmp_path: Path) -> None:
    text = notes(helm_home, tmp_path, RESTD)
    assert f"Slurm jobs of hpc, read every 20 s through slurmrestd {URL}" in text
    assert f"Secret {NAMESPACE}/slurmrestd-token (key jwt) for the Slurm user costwarden." in text
    assert "complete read of its cluster in the last 90 s" in text
    assert "SlurmUnavailable" in text


def test_notes_say_the_image_has_no_client_commands(helm_home: Path, tmp_path: Path) -> None:
    text = notes(helm_home, tmp_path, COMMANDS)
    assert "Slurm jobs of hpc, lab, read every 30 s with the client commands" in text
    assert "the costwarden image has none" in text
    assert "in the last 90 s" in text
    default = notes(helm_home, tmp_path, {})
    assert "Slurm" not in default


# --- the documentation says what the chart does ---------------------------------------------------


def values_section() -> str:
    lines = (CHART / "values.yaml").read_text().splitlines()
    start = lines.index("# Slurm jobs (off by default).")
    end = lines.index("webhook:", start)
    return "\n".join(lines[start:end])


def readme_section() -> str:
    text = (CHART / "README.md").read_text()
    start = text.index("## Slurm jobs")
    return text[start : text.index("\n## ", start + 1)]


@pytest.mark.parametrize("section", [values_section, readme_section], ids=["values.yaml", "README.md"])
def test_docs_say_the_image_has_no_slurm_and_where_the_token_goes(section: Callable[[], str]) -> None:
    text = " ".join(section().replace("#", " ").split())
    assert "does NOT carry Slurm" in text or "does not carry Slurm" in text
    assert "login node" in text and "slurmrestd" in text and "munge" in text
    assert TOKEN_FILE in text
    assert "docs/slurm.md" in text
