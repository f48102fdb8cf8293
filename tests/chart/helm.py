"""Rendering the chart with the real helm (from `make tools`, path in $HELM)."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "costwarden"
VALUES_ALL = Path(__file__).with_name("values-all.yaml")
RELEASE = "cw"
NAMESPACE = "costwarden"

HELM = os.environ.get("HELM", "")


def helm_missing() -> str | None:
    """Why helm cannot run here, or None."""
    if not HELM or not Path(HELM).is_file():
        return "HELM is not set to a helm binary (`make tools`)"
    return None


def require_helm() -> None:
    reason = helm_missing()
    if reason is not None:
        pytest.skip(reason)


needs_helm = pytest.mark.skipif(helm_missing() is not None, reason=str(helm_missing()))

Manifest = dict[str, Any]


class HelmError(AssertionError):
    def __init__(self, args: Iterable[str], proc: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        self.stderr = proc.stderr


def helm(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm with its caches under ``home`` (tests never touch the user's helm config)."""
    env = dict(os.environ)
    if home is not None:
        env.update(
            HELM_CACHE_HOME=str(home / "cache"),
            HELM_CONFIG_HOME=str(home / "config"),
            HELM_DATA_HOME=str(home / "data"),
        )
    proc = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60, env=env, check=False)
    if proc.returncode != 0:
        raise HelmError(args, proc)
    return proc


def template(
    *value_files: Path,
    values: Mapping[str, str] | None = None,
    include_crds: bool = False,
    home: Path | None = None,
) -> list[Manifest]:
    """``helm template`` of the chart as a list of objects (empty documents dropped)."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in value_files:
        args += ["-f", str(path)]
    for key, value in (values or {}).items():
        args += ["--set", f"{key}={value}"]
    if include_crds:
        args.append("--include-crds")
    out = helm(*args, home=home).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(manifests: Iterable[Manifest]) -> list[str]:
    return sorted(m["kind"] for m in manifests)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


Render = Callable[[dict[str, Any]], list[Manifest]]
# The chart needs operator.outsideNamespaces with clouds or Slurm (tests/chart/test_chart_security.py
# holds that and what the flag does); the tests of those values name one namespace unless they set it.
OUTSIDE_NAMESPACES = ["research"]


def with_outside(values: dict[str, Any]) -> dict[str, Any]:
    operator = {"outsideNamespaces": OUTSIDE_NAMESPACES, **values.get("operator", {})}
    return {**values, "operator": operator}


def values_renderer(
    folder: Path, home: Path, prepare: Callable[[dict[str, Any]], dict[str, Any]] = dict
) -> Render:
    """Render the chart with a values mapping written to a values file in ``folder`` (lists,
    dotted keys and commas survive a file, not ``--set``), after ``prepare``."""
    numbers = itertools.count()

    def render(values: dict[str, Any]) -> list[Manifest]:
        path = folder / f"values-{next(numbers)}.yaml"
        path.write_text(yaml.safe_dump(prepare(values)))
        return template(path, home=home)

    return render


def pod_of(manifests: list[Manifest]) -> dict[str, Any]:
    return dict(find(manifests, "Deployment")["spec"]["template"]["spec"])


def args_of(manifests: list[Manifest]) -> list[str]:
    return [str(a) for a in pod_of(manifests)["containers"][0]["args"]]
