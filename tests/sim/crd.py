"""A small CostBudget-like CRD of the tests' own (group testing.costwarden.dev), and helpers."""

from __future__ import annotations

import copy
from typing import Any

GROUP = "testing.costwarden.dev"
API_VERSION = f"{GROUP}/v1"
PLURAL = "budgets"

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["limit"],
            "properties": {
                "limit": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                "period": {"type": "string", "enum": ["Lifetime", "Daily"], "default": "Lifetime"},
                "thresholds": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"percent": {"type": "integer"}, "action": {"type": "string"}},
                    },
                },
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "spend": {"type": "number"},
                "phase": {"type": "string"},
                "seen": {"type": "boolean"},
                "ticks": {"type": "integer"},
            },
        },
    },
}

BUDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": PLURAL,
            "singular": "budget",
            "kind": "Budget",
            "shortNames": ["bu"],
            "categories": ["costs"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Spend", "type": "number", "jsonPath": ".status.spend"},
                    {"name": "Limit", "type": "number", "jsonPath": ".spec.limit"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": _SCHEMA},
            }
        ],
    },
}


def budget_crd() -> dict[str, Any]:
    return copy.deepcopy(BUDGET_CRD)


def budget(name: str, limit: Any = 100, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Budget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"limit": limit, **spec},
    }


def pod(
    name: str, namespace: str = "default", labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec},
    }
