"""The chart's documentation and monitoring content: README generated from values, every value
documented and typed, alerts and dashboard naming metrics the operator exports."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import jsonschema
import pytest
import yaml

from costwarden.models import CostBudgetSpec
from tests.chart.helm import CHART, NAMESPACE, RELEASE, ROOT, VALUES_ALL, Manifest, find, helm, require_helm

OPERATOR_SOURCE = ROOT / "operator" / "costwarden"
# Metrics the chart names ahead of the code that exports them (an expected failure while missing).
PENDING_METRICS = frozenset({"costwarden_actions_total"})


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_readme", ROOT / "tools" / "chart_readme.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


def test_readme_is_generated_from_values(generator: ModuleType) -> None:
    assert (CHART / "README.md").read_text() == generator.render(CHART), "run `make chart-docs`"


def test_every_value_is_documented(generator: ModuleType) -> None:
    assert generator.undocumented((CHART / "values.yaml").read_text()) == []


def test_generator_reads_helm_docs_comments(generator: ModuleType) -> None:
    text = """# -- top
top: 1
group:
  # -- first line
  # second line
  inner: "x"
  # @default -- computed
  # -- shown
  computed: ""
  plain: 3

# a header, not documentation
other: []
"""
    docs = generator.parse_values(text)
    assert [(d.path, d.type, d.default, d.description) for d in docs] == [
        ("top", "int", "`1`", "top"),
        ("group.inner", "string", '`"x"`', "first line second line"),
        ("group.computed", "string", '`""`', "shown"),
    ]
    assert generator.undocumented(text) == ["group.plain", "other"]


def test_schema_accepts_the_shipped_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    for path in (CHART / "values.yaml", VALUES_ALL):
        errors = [
            f"{list(e.path)}: {e.message}" for e in validator.iter_errors(yaml.safe_load(path.read_text()))
        ]
        assert errors == [], path


def test_schema_covers_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"])
    for key, value in values.items():
        if isinstance(value, dict) and schema["properties"][key].get("additionalProperties") is False:
            assert set(value) <= set(schema["properties"][key]["properties"]), key


def exported_metric_names() -> set[str]:
    """Metric names the operator's source defines (Counter samples also get their _total)."""
    names: set[str] = set()
    for path in OPERATOR_SOURCE.rglob("*.py"):
        names.update(re.findall(r"\"(costwarden_[a-z0-9_]+)\"", path.read_text()))
    return names


def named_metrics(text: str) -> set[str]:
    found = set(re.findall(r"\b(costwarden_[a-z0-9_]+)", text))
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in found}


def check_metrics(text: str) -> None:
    exported = exported_metric_names()
    missing = {
        name
        for name in named_metrics(text)
        if name not in exported and name.removesuffix("_total") not in exported
    }
    assert missing <= PENDING_METRICS, f"the operator exports no {sorted(missing - PENDING_METRICS)}"
    if missing:
        pytest.xfail(f"the operator does not export {sorted(missing)} yet")


def test_alerts_name_exported_metrics(all_manifests: list[Manifest]) -> None:
    rule = find(all_manifests, "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "CostwardenBudgetHigh",
        "CostwardenBudgetExhausted",
        "CostwardenActionsTaken",
        "CostwardenActionsFailing",
        "CostwardenOperatorDown",
    }
    assert alerts["CostwardenBudgetHigh"]["expr"].endswith("(costwarden_budget_used_percent) > 75")
    service = find(all_manifests, "Service", "cw")["metadata"]["name"]
    assert f'up{{job="{service}"' in alerts["CostwardenOperatorDown"]["expr"]
    check_metrics(json.dumps(rule))


def test_dashboard_names_exported_metrics(all_manifests: list[Manifest]) -> None:
    configmap = find(all_manifests, "ConfigMap", "cw-dashboard")
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["costwarden.json"])
    assert dashboard["uid"] == "costwarden"
    assert len(dashboard["panels"]) >= 10
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert all(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    check_metrics(json.dumps(dashboard))


def test_service_monitor_scrapes_the_metrics_port(all_manifests: list[Manifest]) -> None:
    monitor = find(all_manifests, "ServiceMonitor")
    service = find(all_manifests, "Service", "cw")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def install_notes(helm_home: Path, *values: str) -> str:
    out = helm(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *values, home=helm_home
    ).stdout
    return out[out.index("NOTES:") :]


def test_notes_show_a_valid_first_budget(helm_home: Path) -> None:
    require_helm()
    notes = install_notes(helm_home)
    assert "2 replicas elect a leader through the Lease costwarden/cw-costwarden" in notes
    assert "kubectl -n costwarden get lease cw-costwarden -o jsonpath='{.spec.holderIdentity}'" in notes
    assert "Never acting in: costwarden, kube-system." in notes
    assert "The admission guard is on (failurePolicy Ignore)" in notes
    heredoc = re.search(r"<<'YAML'[^\n]*\n(.*?)\n\s*YAML\n", notes, re.S)
    assert heredoc is not None
    example = yaml.safe_load(textwrap.dedent(heredoc[1]))
    assert example["kind"] == "CostBudget"
    CostBudgetSpec.model_validate(example["spec"])


def test_notes_warn_about_switched_off_guards(helm_home: Path) -> None:
    require_helm()
    notes = install_notes(
        helm_home,
        "--set",
        "webhook.enabled=false",
        "--set",
        "operator.dryRun=true",
        "--set",
        "crds.enabled=false",
    )
    assert "DRY RUN" in notes
    assert "The admission guard is off" in notes
    assert "install the CostBudget CRD yourself" in notes


@pytest.mark.parametrize(
    ("values", "line"),
    [
        (["--set", "replicaCount=1"], "1 replica, holding the Lease costwarden/cw-costwarden"),
        (
            ["--set", "replicaCount=1", "--set", "leaderElection.enabled=false"],
            "1 replica, standalone (leaderElection.enabled=false).",
        ),
    ],
)
def test_notes_say_how_the_leader_is_chosen(helm_home: Path, values: list[str], line: str) -> None:
    require_helm()
    notes = install_notes(helm_home, *values)
    assert line in notes
    assert ("get lease" in notes) == ("leaderElection.enabled=false" not in values)
