"""The CostBudget CRD. ``crds/costbudget.yaml`` is the source of truth; the package carries a copy
(``costwarden/data/costbudget.yaml``, kept equal by ``make crd-copies`` and a test), so an installed
wheel has it too.

Read on demand, never at import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import yaml

from costwarden.models import VERSION


def crd_path() -> Traversable:
    """The CRD shipped in this package."""
    return resources.files("costwarden") / "data" / "costbudget.yaml"


def load_crd(path: Traversable | None = None) -> dict[str, Any]:
    """The CRD document (``path``'s, else the packaged one); YAML anchors are expanded into
    independent copies."""
    document = yaml.safe_load((path or crd_path()).read_text(encoding="utf-8"))
    result: dict[str, Any] = json.loads(json.dumps(document))
    return result


def version_schema(crd: Mapping[str, Any], version: str = VERSION) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of one served version of ``crd``."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema: dict[str, Any] = entry["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")
