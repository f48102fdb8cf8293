"""Hypothesis strategies for the fuzz tests: mostly valid inputs, then mutated.

Every strategy draws something shaped like what the operator really reads (a CostBudget spec, a
pod or node body, a price overrides file, a billing export, a Slurm answer, an EC2 instance) and
then, often, breaks it: a value of the wrong type, a number that is negative, huge, NaN or
infinite, a numeric string, odd unicode (a lone surrogate, a bidi override, NUL), an unknown field,
a field removed, a list reordered. ``mutated`` records where it broke the document, so a test can
ask that the error names that place.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SLURM_SAMPLES = ROOT / "tests" / "data" / "slurm"

Path_ = tuple[str | int, ...]

# ---- odd values -------------------------------------------------------------------------------

ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "\ud800",  # a lone surrogate: Python's JSON reads it, Go's never sends it
    "\u202e",  # right-to-left override
    "\ufeff",
    "日本語",
    "🙂",
    "é",
    "a\nb",
    "-",
    "--help",
    "0",
    "-1",
    "null",
    "true",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e3",
    "1e999999999",
    "0x10",
    "1_000",
    "$(rm -rf /)",
    "'",
    '"',
    "\\",
    "a" * 300,
    "cluster-" * 6 + "\ud800",  # long enough for SkyPilot's name hash, and no unicode text
]
ODD_NUMBERS = [
    0,
    -0.0,
    -1,
    1,
    0.5,
    1e-7,
    1e-300,
    1e14,
    1e15,
    1e300,
    10**20,
    2**63,
    -(2**63),
    2**64,
    float("nan"),
    float("inf"),
    float("-inf"),
    0.1,
    0.30000000000000004,
    123456789.1234567,
]

odd_text = st.sampled_from(ODD_STRINGS) | st.text(max_size=12)
# Texts with any code point Python can hold, surrogates included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
odd_numbers = st.sampled_from(ODD_NUMBERS) | st.integers() | st.floats()
scalars = st.none() | st.booleans() | odd_numbers | odd_text | any_text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=8,
)
# What replaces a field: mostly a scalar of the wrong kind, sometimes a structure.
bad_values = st.one_of(scalars, json_values)


# ---- mutation ---------------------------------------------------------------------------------


def walk(value: Any, path: Path_ = ()) -> Iterator[Path_]:
    """Every place in a JSON-like document: dict keys and list indices, depth first."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*path, key)
            yield from walk(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*path, index)
            yield from walk(child, (*path, index))


def _containers(value: Any, path: Path_ = ()) -> Iterator[Path_]:
    if isinstance(value, dict | list):
        yield path
        children = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in children:
            yield from _containers(child, (*path, key))


def _at(document: Any, path: Path_) -> Any:
    for part in path:
        document = document[part]
    return document


def render(path: Path_, prefix: str = "spec") -> str:
    """A place as a field path: ``spec.thresholds[1].percent``."""
    text = prefix
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _shifted(place: Path_, items: Path_, move: Callable[[int], int | None]) -> Path_:
    """``place`` after the items of the list at ``items`` moved: ``move`` maps an old index to
    its new one, or None for an item removed (a place inside it becomes the list)."""
    depth = len(items)
    if len(place) <= depth or place[:depth] != items or not isinstance(place[depth], int):
        return place
    moved = move(place[depth])
    return items if moved is None else (*items, moved, *place[depth + 1 :])


@st.composite
def mutated(
    draw: st.DrawFn,
    base: st.SearchStrategy[Any],
    replacements: st.SearchStrategy[Any] = bad_values,
    max_mutations: int = 3,
    unknown_keys: st.SearchStrategy[str] | None = None,
    min_mutations: int = 0,
) -> tuple[Any, list[Path_]]:
    """A document from ``base`` with up to ``max_mutations`` places broken, and those places.

    A place is replaced by a value from ``replacements``, removed, given an unknown key, or (a
    list) reversed; the paths say where (for an added key, the new key's path)."""
    document = copy.deepcopy(draw(base))
    places: list[Path_] = []
    keys = (
        unknown_keys
        if unknown_keys is not None
        else (st.sampled_from(["x", "Limit", "limits", "spec"]) | odd_text)
    )
    for _ in range(draw(st.integers(min_mutations, max_mutations))):
        kind = draw(st.sampled_from(["replace", "replace", "remove", "add", "reverse"]))
        paths = list(walk(document))
        if kind in ("replace", "remove") and paths:
            path = draw(st.sampled_from(paths))
            parent = _at(document, path[:-1])
            if kind == "replace":
                parent[path[-1]] = copy.deepcopy(draw(replacements))  # never a shared object
            elif isinstance(parent, dict):
                del parent[path[-1]]
            else:
                gone = path[-1]
                parent.pop(gone)
                path = path[:-1]  # the list lost an item: the list is the place
                places = [
                    _shifted(p, path, lambda j, i=gone: None if j == i else (j - 1 if j > i else j))
                    for p in places
                ]
            places.append(path)
        elif kind == "reverse":
            lists = [p for p in _containers(document) if isinstance(_at(document, p), list)]
            if lists:
                path = draw(st.sampled_from(lists))
                size = len(_at(document, path))
                _at(document, path).reverse()
                places = [_shifted(p, path, lambda j, n=size: n - 1 - j) for p in places]
                places.append(path)
        else:
            dicts = [p for p in _containers(document) if isinstance(_at(document, p), dict)]
            if dicts:
                path = draw(st.sampled_from(dicts))
                key = draw(keys)
                _at(document, path)[key] = copy.deepcopy(draw(replacements))
                places.append((*path, key))
    return document, places


# ---- CostBudget specs -------------------------------------------------------------------------

ACTIONS = ["Notify", "Scale", "Suspend", "Kill"]
PERIODS = ["Lifetime", "Daily", "Weekly", "Monthly"]
_NAME = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?", fullmatch=True)
label_keys = st.sampled_from(
    ["app", "team", "costwarden.dev/budget", "skypilot-cluster-name", "parent", "ray-node-type"]
) | st.from_regex(r"([a-z0-9.-]{1,20}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?", fullmatch=True)
label_values = st.from_regex(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?)?", fullmatch=True)


def _money(low: str, high: str) -> st.SearchStrategy[Any]:
    """A JSON number as the API server hands it over: an int, or a float (any repr)."""
    as_float = st.floats(min_value=float(low), max_value=float(high), exclude_max=True).filter(
        lambda f: Decimal(repr(f)) >= Decimal(low)
    )
    return st.integers(max(1, int(float(low)) + 1), int(float(high))) | as_float


def _percent() -> st.SearchStrategy[Any]:
    return st.integers(1, 1000) | st.floats(0.5, 1000, allow_nan=False).map(lambda f: round(f, 2))


@st.composite
def thresholds(draw: st.DrawFn) -> list[dict[str, Any]]:
    percents = sorted(set(draw(st.lists(_percent(), max_size=5))))
    return [{"percent": p, "action": draw(st.sampled_from(ACTIONS))} for p in percents]


def _requirement() -> st.SearchStrategy[dict[str, Any]]:
    with_values = st.fixed_dictionaries(
        {
            "key": label_keys,
            "operator": st.sampled_from(["In", "NotIn"]),
            "values": st.lists(label_values, min_size=1, max_size=3),
        }
    )
    without = st.fixed_dictionaries(
        {"key": label_keys, "operator": st.sampled_from(["Exists", "DoesNotExist"])}
    )
    return with_values | without


selectors = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(label_keys, label_values, max_size=3),
        "matchExpressions": st.lists(_requirement(), max_size=3),
    },
)
_secret = st.fixed_dictionaries({"name": _NAME.filter(bool), "key": _NAME.filter(bool)})
notify = st.fixed_dictionaries(
    {},
    optional={
        "slack": st.fixed_dictionaries({"channel": st.just("#gpu"), "tokenSecretRef": _secret})
        | st.fixed_dictionaries({"webhookSecretRef": _secret}),
        "webhook": st.fixed_dictionaries({"urlSecretRef": _secret}),
        "pagerduty": st.fixed_dictionaries({"routingKeySecretRef": _secret}),
    },
)
skypilot_names = st.sampled_from(["llama-sweep", "My_Cluster.v2", "a" * 60, "x"]) | _NAME.filter(bool)
slurm_filters = st.fixed_dictionaries(
    {},
    optional={
        "cluster": st.sampled_from(["hpc", "gpu-cluster"]),
        "account": _NAME.filter(bool),
        "user": _NAME.filter(bool),
        "partition": st.sampled_from(["gpu", "debug"]),
        "jobName": _NAME.filter(bool),
    },
)


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A CostBudget spec the model and the CRD both accept."""
    spec: dict[str, Any] = {"limit": draw(_money("0.000001", "99999999999999"))}
    if draw(st.booleans()):
        spec["period"] = draw(st.sampled_from(PERIODS))
    if draw(st.booleans()):
        spec["selector"] = draw(selectors)
    if draw(st.booleans()):
        spec["skypilotCluster"] = draw(skypilot_names)
    if draw(st.booleans()):
        spec["thresholds"] = draw(thresholds())
    anomalies: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["expectedHourlyRate"] = draw(_money("0.000001", "1000000"))
        if draw(st.booleans()):
            anomalies["burnRate"] = {
                "multiplier": draw(st.integers(2, 1000)),
                "action": draw(st.sampled_from(ACTIONS)),
            }
    if draw(st.booleans()):
        anomalies["idleGpu"] = {
            "belowPercent": draw(st.integers(0, 100)),
            "forMinutes": draw(st.integers(1, 10080)),
            "action": draw(st.sampled_from(ACTIONS)),
        }
    if anomalies:
        spec["anomalies"] = anomalies
    if draw(st.booleans()):
        spec["notify"] = draw(notify)
    if draw(st.booleans()):
        spec["enforcement"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "dryRun": st.booleans(),
                    "gracePeriodSeconds": st.integers(0, 86400),
                    "blockNewPods": st.booleans(),
                },
            )
        )
    if draw(st.booleans()):
        spec["unitEconomics"] = {"counter": "vllm:generation_tokens_total", "unit": "token"}
    if draw(st.booleans()):
        spec["slurm"] = draw(slurm_filters)
    return spec


spec_values = st.one_of(
    bad_values,
    st.sampled_from([*PERIODS, *ACTIONS, "In", "Exists", "Lifetime ", "kill"]),
    st.sampled_from([[], {}, [{}], [{"percent": 50, "action": "Kill"}] * 2]),
)
# (spec, the places broken in it)
specs = mutated(
    valid_specs(),
    spec_values,
    unknown_keys=st.sampled_from(["x", "Limit", "limits", "dryrun"]) | odd_text,
    min_mutations=1,
)


# ---- nodes and pods ---------------------------------------------------------------------------

quantities = st.one_of(
    st.sampled_from(
        [
            "1",
            "8",
            "0",
            "1e3",
            "0.5Gi",
            "500m",
            "16Gi",
            "2097152Mi",
            "-1",
            "-8",
            "10000000000",
            "9e18",
            "9223372036854775807",
            "1e20",
            "1e999999999",
            "1e-999999999",
            "",
            " ",
            "garbage",
            "1.2.3",
            "...",
            "1Qi",
            "NaN",
            "Infinity",
            "0x10",
            "\uff11",  # a full-width digit
        ]
    ),
    st.integers(-10, 10**12),
    st.floats(),
    st.from_regex(
        r"[+-]?[0-9]{1,12}(\.[0-9]{1,4})?([eE][+-]?[0-9]{1,3})?(m|k|M|G|Ki|Mi|Gi|Ti)?", fullmatch=True
    ),
    st.none(),
    odd_text,
)
PROVIDER_IDS = [
    "aws:///us-east-1a/i-0fea4fd46592d050b",
    "aws:///i-0fea4fd46592d050b",
    "aws://us-east-1a/i-0abc",
    "aws:///",
    "gce://my-project/us-central1-a/gke-ml-a3-spot-7f3c2a1b-x9kq",
    "gce://my-project//name",
    "gce://",
    "azure:///subscriptions/0000/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-gpu/virtualMachines/0",
    "azure://",
    "kind://docker/kind/kind-worker",
    "openstack:///8e1d8f5a",
    "ibm://acct///node",
    "oci://ocid1.instance",
    "",
    "garbage",
    "aws:///us-east-1a/i-0fea/../../etc",
]
provider_ids = st.sampled_from(PROVIDER_IDS) | odd_text
TIMES = [
    "2026-11-26T11:00:00Z",
    "2026-11-26T12:00:00Z",
    "2026-11-26T12:00:00+01:00",
    "2026-11-26T12:00:00.123456Z",
    "2026-11-26",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "yesterday",
    "",
]
times = st.sampled_from(TIMES) | odd_text | st.none() | st.integers()
NODE_LABELS = {
    "node.kubernetes.io/instance-type": st.sampled_from(
        ["p5.48xlarge", "g5.xlarge", "a3-highgpu-8g", "n1-standard-8", "Standard_NC24ads_A100_v4", "x", ""]
    )
    | odd_text,
    "topology.kubernetes.io/region": st.sampled_from(["us-east-1", "us-central1", "eastus", ""]) | odd_text,
    "topology.kubernetes.io/zone": st.sampled_from(["us-east-1a", "us-central1-a", "1", ""]) | odd_text,
    "karpenter.sh/capacity-type": st.sampled_from(["spot", "on-demand", "SPOT", "reserved"]) | odd_text,
    "eks.amazonaws.com/capacityType": st.sampled_from(["SPOT", "ON_DEMAND"]) | odd_text,
    "cloud.google.com/gke-spot": st.sampled_from(["true", "false"]) | odd_text,
    "cloud.google.com/gke-accelerator": st.sampled_from(["nvidia-h100-80gb", "nvidia-tesla-t4"]) | odd_text,
    "nvidia.com/gpu.count": st.sampled_from(["8", "0", "-1", "x", "99999999999999999999"]) | odd_text,
    "nvidia.com/gpu.product": st.sampled_from(["NVIDIA-H100-80GB-HBM3", "Tesla-T4"]) | odd_text,
    "kubernetes.azure.com/scalesetpriority": st.sampled_from(["spot", "regular"]) | odd_text,
    "lifecycle": st.sampled_from(["Ec2Spot", ""]) | odd_text,
}


# Well-formed figures at the edge of what is read: the largest and smallest quantities and prices.
extreme_quantities = st.sampled_from(["9223372036854775807", "9e18", "1n", "1", "16Ei", "0.000000001"])
extreme_prices = st.sampled_from(["999999999999999.9", "0.000000000000001", "0"])


def _resources(amounts: st.SearchStrategy[Any] = quantities) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "cpu": amounts,
            "memory": amounts,
            "nvidia.com/gpu": amounts,
            "amd.com/gpu": amounts,
            "google.com/tpu": amounts,
        },
    )


@st.composite
def node_bodies(draw: st.DrawFn, name: str | None = None, extreme: bool = False) -> dict[str, Any]:
    labels = draw(st.fixed_dictionaries({}, optional=NODE_LABELS))
    annotations = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "costwarden.dev/hourly-price": st.sampled_from(
                    [
                        "12.5",
                        "0",
                        "-3",
                        "NaN",
                        "Infinity",
                        "1e999999",
                        "1e-999999999",
                        "999999999999999.9",
                        "x",
                    ]
                )
                | odd_text,
                "container.googleapis.com/instance_id": st.sampled_from(["1234567890123"]) | odd_text,
            },
        )
    )
    amounts = extreme_quantities if extreme else quantities
    if extreme:
        annotations["costwarden.dev/hourly-price"] = draw(extreme_prices)
    body: dict[str, Any] = {
        "metadata": {"name": name if name is not None else draw(st.sampled_from(["n1", "n2"]) | odd_text)},
        "spec": {"providerID": draw(provider_ids)},
        "status": {"capacity": draw(_resources(amounts)), "allocatable": draw(_resources(amounts))},
    }
    if labels:
        body["metadata"]["labels"] = labels
    if annotations:
        body["metadata"]["annotations"] = annotations
    return body


def _container(amounts: st.SearchStrategy[Any] = quantities) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": st.just("c")},
        optional={
            "resources": st.fixed_dictionaries(
                {}, optional={"requests": _resources(amounts), "limits": _resources(amounts)}
            )
        },
    )


POD_LABELS = {
    "app": label_values,
    "team": st.sampled_from(["research", "infra"]) | odd_text,
    "skypilot-cluster-name": st.sampled_from(["llama-sweep-2ea4", "my-cluster-v2-2ea4", "x"]) | odd_text,
    "parent": st.sampled_from(["skypilot"]) | odd_text,
    "ray-node-type": st.sampled_from(["head", "worker"]) | odd_text,
    "jobset.sigs.k8s.io/jobset-name": st.sampled_from(["js"]) | odd_text,
}
POD_ANNOTATIONS = {
    "costwarden.dev/spend": st.sampled_from(["12.5", "0", "-3", "NaN", "Infinity", "1e999999", "sNaN"])
    | odd_text,
    "costwarden.dev/rate": st.sampled_from(
        ["1.5", "-1", "NaN", "1e999999", "1e-999999999", "999999999999999"]
    )
    | odd_text,
    "costwarden.dev/spend-at": times,
    "costwarden.dev/gpu-utilization": st.sampled_from(["50", "-5", "NaN", "1e999999"]) | odd_text,
    "skypilot-cluster-name": st.sampled_from(["llama-sweep", "My_Cluster.v2"]) | odd_text,
    "skypilot-user": odd_text,
}


@st.composite
def pod_bodies(
    draw: st.DrawFn, nodes: list[str] | None = None, uid: str | None = None, extreme: bool = False
) -> dict[str, Any]:
    phase = draw(
        st.sampled_from(["Running", "Running", "Pending", "Succeeded", "Failed", "Unknown", ""]) | odd_text
    )
    if extreme:
        phase = "Running"
    node_names = nodes or ["n1", "n2"]
    amounts = extreme_quantities if extreme else quantities
    spec: dict[str, Any] = {
        "containers": draw(st.lists(_container(amounts), min_size=int(extreme), max_size=3))
    }
    if extreme or draw(st.integers(0, 4)):
        spec["nodeName"] = draw(st.sampled_from([*node_names, "missing-node"]))
    if draw(st.booleans()):
        spec["initContainers"] = draw(st.lists(_container(amounts), max_size=2))
    status: dict[str, Any] = {"phase": phase}
    if draw(st.booleans()):
        status["startTime"] = draw(times)
    if draw(st.booleans()):
        status["containerStatuses"] = [{"state": {"terminated": {"finishedAt": draw(times)}}}]
    meta: dict[str, Any] = {
        "namespace": "research" if extreme else draw(st.sampled_from(["research", "research", "other"])),
        "name": draw(st.sampled_from(["p", "q"]) | odd_text),
        "uid": uid if uid is not None else draw(st.uuids().map(str) | odd_text),
        "creationTimestamp": "2026-11-26T11:00:00Z" if extreme else draw(times),
    }
    labels = draw(st.fixed_dictionaries({}, optional=POD_LABELS))
    annotations = draw(st.fixed_dictionaries({}, optional=POD_ANNOTATIONS))
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if draw(st.integers(0, 5)) == 0:
        meta["deletionTimestamp"] = draw(times)
    if draw(st.booleans()):
        meta["ownerReferences"] = [{"kind": "Job", "name": "j", "controller": True}]
    return {"metadata": meta, "spec": spec, "status": status}


# A body in the right shape, or with any place broken (the wrong type included).
broken_pods = mutated(pod_bodies(), bad_values, max_mutations=2).map(lambda pair: pair[0])
broken_nodes = mutated(node_bodies(), bad_values, max_mutations=2).map(lambda pair: pair[0])


# ---- price overrides --------------------------------------------------------------------------

_instance_keys = (
    st.sampled_from(
        [
            "p5.48xlarge",
            "aws/us-east-1/p5.48xlarge/spot",
            "gcp/a3-highgpu-8g",
            "azure/eastus/Standard_NC24ads_A100_v4/on-demand",
            "mars/p5",
            "a//b",
            "/",
            "",
            "aws/us/x/y/z",
        ]
    )
    | odd_text
)
_prices = st.one_of(
    st.sampled_from(
        ["40.00", "18.5", "0", "-1", ".inf", ".nan", "1e5", "1.0e+5", "1_000.5", "190:20:30.15", "~"]
    ),
    st.sampled_from(
        ["'12'", "[1]", "{a: 1}", "true", "1e999999", "1.0e+999999", "0x1F", "0o17", "!!float 3"]
    ),
    st.decimals(min_value=0, max_value=10**6, places=4).map(str),
)


@st.composite
def overrides_texts(draw: st.DrawFn) -> str:
    """An overrides file as YAML text: valid, broken YAML, or valid YAML of the wrong shape."""
    lines: list[str] = []
    if draw(st.booleans()):
        lines.append("instances:")
        for key in draw(st.lists(_instance_keys, max_size=3)):
            lines.append(f"  {json.dumps(key)}: {draw(_prices)}")
    if draw(st.booleans()):
        lines.append("defaults:")
        for unit in draw(
            st.lists(
                st.sampled_from(["gpu", "cpu", "ramGiB", "spotCpu", "spotRamGiB", "spotGpu", "tpu"]),
                max_size=3,
                unique=True,
            )
        ):
            lines.append(f"  {unit}: {draw(_prices)}")
    if draw(st.booleans()):
        lines.append("gpuModels:")
        lines.append(f"  {json.dumps(draw(odd_text))}: {draw(_prices)}")
    if draw(st.booleans()):
        lines.append("slurm:")
        lines.append(f"  {draw(st.sampled_from(['nodes', 'partitions', 'queues']))}:")
        key = draw(st.sampled_from(["gpu-[01-04]", "gpu-[", "gpu", "[]"]) | odd_text)
        entry = draw(
            st.sampled_from(
                [
                    "{gpu: 3.1}",
                    "{instance: aws/us-east-1/p5.48xlarge}",
                    "{instance: mars/x}",
                    "{gpu: -1}",
                    "3",
                    "{ram: 1}",
                ]
            )
        )
        lines.append(f"    {json.dumps(key)}: {entry}")
    text = "\n".join(lines) + "\n"
    cut = draw(st.integers(0, len(text)))
    return draw(
        st.sampled_from(
            [
                text,
                text[:cut],
                text.replace("  ", "\t", 1),
                "- a\n- b\n",
                "42\n",
                "{unclosed\n",
                "a: b: c\n",
                "&a [*a]\n",
            ]
        )
        | st.just(text)
        | st.text(max_size=40)
    )


# ---- billing exports --------------------------------------------------------------------------

BILLING_COLUMNS = {
    "focus": [
        "BilledCost",
        "EffectiveCost",
        "ListCost",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "BillingPeriodStart",
        "ChargeCategory",
        "BillingCurrency",
        "ProviderName",
        "ResourceId",
        "Tags",
    ],
    "cur2": [
        "line_item_unblended_cost",
        "line_item_usage_start_date",
        "line_item_usage_end_date",
        "line_item_line_item_type",
        "line_item_resource_id",
        "bill_payer_account_id",
        "bill_billing_period_start_date",
        "savings_plan_savings_plan_effective_cost",
        "reservation_effective_cost",
        "pricing_public_on_demand_cost",
        "resource_tags",
    ],
    "cur-legacy": [
        "lineItem/UnblendedCost",
        "lineItem/UsageStartDate",
        "lineItem/UsageEndDate",
        "lineItem/LineItemType",
        "lineItem/ResourceId",
        "bill/PayerAccountId",
        "resourceTags/user:team",
    ],
    "gcp": [
        "cost",
        "usage_start_time",
        "usage_end_time",
        "sku.id",
        "service.id",
        "billing_account_id",
        "credits",
        "invoice.month",
        "cost_type",
        "labels",
    ],
    "azure": [
        "Date",
        "CostInBillingCurrency",
        "MeterId",
        "MeterCategory",
        "SubscriptionId",
        "ChargeType",
        "InstanceId",
        "Tags",
        "BillingPeriodStartDate",
    ],
}
_GOOD = {
    "money": st.sampled_from(
        ["1.5", "0", "3.06", "-0.25", "1e-3", "12345678901234567890.123456789012345678"]
    ),
    "time": st.sampled_from(
        ["2026-11-01T00:00:00Z", "2026-11-01 01:00:00", "2026-11-01T01:00:00+00:00", "11/01/2026", "20261101"]
    ),
    "text": st.sampled_from(
        ["Usage", "AWS", "i-0abc", "Tax", "SavingsPlanCoveredUsage", "DiscountedUsage", "Credit"]
    ),
    "json": st.sampled_from(
        ['{"team": "research"}', "", '{"skypilot-cluster-name": "x"}', "[{'amount': -1.5}]", '"a": "b"']
    ),
}
_BAD_CELLS = st.sampled_from(
    [
        "",
        "NULL",
        "abc",
        "NaN",
        "Infinity",
        "-infinity",
        "infinity",
        "epoch",
        "1e400",
        "1e30",
        "99999999999999999999999999999999999999",
        "0x10",
        "2026-02-30",
        "294247-01-10 04:00:54",
        "-0044-03-15",
        "0001-01-01 BC",
        "5000-01-01",
        "1/2/3",
        '"',
        "a,b",
        "\x00",
        "日本",
    ]
)


def _kind(column: str) -> str:
    low = column.lower()
    if "cost" in low and "type" not in low and "category" not in low:
        return "money"
    if any(word in low for word in ("date", "start", "end", "time", "month")):
        return "time"
    if "tags" in low or "labels" in low or "credits" in low:
        return "json"
    return "text"


def _csv_cell(value: str) -> str:
    if any(c in value for c in ',"\n\r') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def billing_csvs(draw: st.DrawFn) -> str:
    """A billing export as CSV text: a format's columns (some left out, some unknown added, order
    shuffled), rows of good and bad cells, sometimes cut short."""
    fmt = draw(st.sampled_from(sorted(BILLING_COLUMNS)))
    clean = draw(st.booleans())  # every column, good values only: most such files are stored
    columns = [c for c in BILLING_COLUMNS[fmt] if clean or draw(st.integers(0, 5))]
    if not clean and draw(st.booleans()):
        columns.append(draw(st.sampled_from(["x_Extra", "BilledCost", "cost", "Cost", "", "a b"])))
    columns = draw(st.permutations(columns))
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        cells = []
        for column in columns:
            good = _GOOD[_kind(column)]
            if clean or draw(st.integers(0, 3)):
                cells.append(draw(good))
            else:
                cells.append(draw(st.one_of(_BAD_CELLS, st.text(max_size=6))))
        rows.append(",".join(_csv_cell(c) for c in cells))
    text = "\n".join([",".join(_csv_cell(c) for c in columns), *rows]) + "\n"
    if not clean and draw(st.integers(0, 3)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


# ---- Slurm answers ----------------------------------------------------------------------------

SLURM_FILES = sorted(
    p for p in SLURM_SAMPLES.rglob("*.json") if p.name.startswith(("squeue", "sacct", "jobs"))
)


def _slurm_document(path: Path) -> Any:
    return json.loads(path.read_text())


@st.composite
def slurm_answers(draw: st.DrawFn) -> tuple[str, str, Any]:
    """(``squeue`` or ``sacct``, the sample's name, a recorded answer with places broken)."""
    path = draw(st.sampled_from(SLURM_FILES))
    kind = "sacct" if path.name.startswith("sacct") else "squeue"
    document = _slurm_document(path)
    jobs = document.get("jobs") or []
    if jobs and draw(st.booleans()):
        document = {**document, "jobs": [draw(st.sampled_from(jobs))]}  # one job: mutations hit it more often
    slurm_values = st.one_of(
        bad_values,
        st.sampled_from(
            [{"set": True, "infinite": False, "number": -5}, {"set": True, "number": 2**70}, {"number": {}}]
        ),
        st.sampled_from([["RUNNING", "COMPLETING"], ["BOGUS"], "CANCELLED by 0", "PENDING"]),
        st.sampled_from(
            [
                "cpu=-4,mem=16G",
                "gres/gpu=99999999999999999999",
                "mem=1.5.5G",
                "cpu=4,mem=1E",
                "gpu-[01-",
                "gpu-[01-99999999]",
            ]
        ),
        st.sampled_from([[{"type": "gres", "name": "gpu", "count": -2}], [{"type": "mem", "count": 2**80}]]),
    )
    broken, _ = draw(mutated(st.just(document), slurm_values, max_mutations=4))
    return kind, path.relative_to(SLURM_SAMPLES).as_posix(), broken


# ---- EC2 answers ------------------------------------------------------------------------------


@st.composite
def ec2_instances(draw: st.DrawFn) -> dict[str, Any]:
    instance: dict[str, Any] = {
        "InstanceId": draw(st.sampled_from(["i-0abc", "i-0def"]) | odd_text),
        "InstanceType": draw(st.sampled_from(["p5.48xlarge", "g5.xlarge"]) | odd_text),
        "Placement": {"AvailabilityZone": draw(st.sampled_from(["us-east-1a", ""]) | odd_text)},
        "State": {
            "Name": draw(
                st.sampled_from(["running", "stopped", "terminated", "shutting-down", "pending", "stopping"])
                | odd_text
            )
        },
        "LaunchTime": draw(
            st.sampled_from([datetime(2026, 11, 26, tzinfo=UTC), datetime(2026, 11, 26)]) | times
        ),
        "Tags": [
            {"Key": "skypilot-cluster-name", "Value": draw(st.sampled_from(["llama-sweep-2ea4"]) | odd_text)},
            {"Key": "ray-node-type", "Value": draw(st.sampled_from(["head", "worker"]))},
        ],
    }
    if draw(st.booleans()):
        instance["InstanceLifecycle"] = draw(st.sampled_from(["spot", "scheduled"]) | odd_text)
    broken, _ = draw(mutated(st.just(instance), bad_values, max_mutations=2))
    return broken
