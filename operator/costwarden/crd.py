"""The CostBudget CRD as shipped in ``crds/costbudget.yaml`` (the schema's source of truth).

Read on demand, never at import. Outside a source checkout pass the file's path explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from costwarden.models import VERSION


def crd_path() -> Path:
    """``crds/costbudget.yaml`` of the checkout this package is imported from."""
    return Path(__file__).resolve().parents[2] / "crds" / "costbudget.yaml"


def load_crd(path: Path | None = None) -> dict[str, Any]:
    """The CRD document; YAML anchors are expanded into independent copies."""
    with (path or crd_path()).open(encoding="utf-8") as stream:
        document = yaml.safe_load(stream)
    result: dict[str, Any] = json.loads(json.dumps(document))
    return result


def version_schema(crd: Mapping[str, Any], version: str = VERSION) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of one served version of ``crd``."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")
