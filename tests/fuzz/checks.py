"""The properties the fuzz tests hold every input to, as plain functions.

The hypothesis tests (test_fuzz_*.py) call them on drawn inputs; test_corpus.py calls them on
the inputs kept in tests/data/corpus, without any search. Each function raises AssertionError
(or the unexpected exception itself) when the property does not hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from costwarden.billing.estimates import EstimateStore, ReconcileQuery
from costwarden.billing.store import BillingImportError, BillingStore
from costwarden.clouds.aws import AwsInventory
from costwarden.crd import load_crd, version_schema
from costwarden.engine.conditions import READY
from costwarden.engine.evaluation import BudgetDecision, BudgetInput, evaluate_budget, invalid_decision
from costwarden.engine.ledger import CoveredPod, PodAccrual, accrue
from costwarden.engine.rates import pod_rate
from costwarden.engine.reconcile import future_dated
from costwarden.engine.selection import coverage
from costwarden.engine.slurm import STATES as JOB_STATES
from costwarden.engine.slurm import SlurmJob, covered_jobs
from costwarden.engine.vms import STATES as VM_STATES
from costwarden.engine.vms import VMRecord, covered_vms, vm_node
from costwarden.models import (
    Action,
    ActionRecord,
    ActionResult,
    BudgetLedger,
    CostBudgetSpec,
    CostBudgetStatus,
    Phase,
    PodLedgerEntry,
    explain,
    parse_spec,
)
from costwarden.pricing import OverridesError, PriceBook, PriceOverrides, load_bundled_catalog
from costwarden.pricing.catalog import Catalog
from costwarden.pricing.overrides import load_overrides_text, parse_overrides
from costwarden.pricing.resolve import NodePrice
from costwarden.pricing.slurm import slurm_unit_price
from costwarden.records import NodeRecord, PodRecord
from costwarden.sim.crdvalidation import validate_custom_object
from costwarden.sim.schema import process
from costwarden.slurm.parse import action_id, sacct_entries, squeue_entries
from tests.fuzz.strategies import Path_, render

NS = "research"
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ORIGIN = "prices.yaml"


@cache
def catalog() -> Catalog:
    return load_bundled_catalog()


@cache
def book() -> PriceBook:
    return PriceBook(catalog())


@cache
def crd_schema() -> dict[str, Any]:
    return version_schema(load_crd())


def finite(value: Decimal | None, *, nonnegative: bool = True) -> bool:
    return value is None or (value.is_finite() and (not nonnegative or value >= 0))


# ---- CostBudget specs -------------------------------------------------------------------------

# A budget that was valid and had acted: an Invalid spec must leave all of this alone.
PRIOR = CostBudgetStatus(
    phase=Phase.EXCEEDED,
    spend=Decimal("120"),
    actions=[
        ActionRecord(
            id="threshold/100/lifetime",
            time="2026-11-26T11:00:00Z",
            trigger="spend 120.00 reached 100% of 120",
            action=Action.KILL,
            result=ActionResult.PENDING,
        )
    ],
    ledger=BudgetLedger(
        closed_spend=Decimal("100"),
        pods={
            "0b6f1c3e-8f43-4c55-9d5e-2a1f0c9e7d11": PodLedgerEntry(
                spend=Decimal(20), at="2026-11-26T11:00:00Z"
            )
        },
    ),
)
_PATHS = re.compile(r"spec(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*")


def _related(a: str, b: str) -> bool:
    """``a`` and ``b`` are the same field path, or one lies inside the other."""
    if a == b:
        return True
    outer, inner = (a, b) if len(a) < len(b) else (b, a)
    return inner.startswith(outer) and inner[len(outer)] in ".["


def _encodable(part: str | int) -> bool:
    try:
        str(part).encode()
    except UnicodeEncodeError:
        return False
    return True


def names_a_place(lines: Sequence[str], places: Sequence[Path_]) -> bool:
    """Some problem line names one of the broken places: its own path (not the bare ``spec``)
    lies on it, or its message names a ``spec.`` path on it."""
    wanted = [render(place) for place in places]
    # A key that is no unicode text (a lone surrogate: Python's JSON reads one, the API server
    # never sends one) is refused at the object that holds it, or named in a mangled form.
    holders = set()
    for place in places:
        odd = next((k for k, part in enumerate(place) if not _encodable(part)), None)
        if odd is not None:
            holders.add(render(place[:odd]))
    for line in lines:
        path, _, message = line.partition(": ")
        if any(path == h or path.startswith((f"{h}.", f"{h}[")) for h in holders):
            return True
        named = [path] if path != "spec" else []
        named += [m.group(0) for m in _PATHS.finditer(message) if m.group(0) != "spec"]
        if any(_related(n, w) for n in named for w in wanted):
            return True
    return False


def check_invalid_decision(
    decision: BudgetDecision, problems: Sequence[str], prior: CostBudgetStatus
) -> None:
    """Phase Invalid, Ready False/InvalidSpec naming the problems, and nothing else decided."""
    status = decision.status
    assert status.phase is Phase.INVALID
    ready = next(c for c in status.conditions if c.type == READY)
    assert (ready.status, ready.reason) == ("False", "InvalidSpec")
    assert all(problem in ready.message for problem in problems)
    assert decision.crossings == ()
    assert decision.anomalies == ()
    assert status.actions == prior.actions  # nothing new to act on, nothing forgotten
    assert status.ledger == prior.ledger
    assert status.spend == prior.spend
    assert [e.reason for e in decision.events] == ["InvalidSpec"]
    json.dumps(status.to_k8s(), allow_nan=False)


def check_spec(raw: Any, places: Sequence[Path_] = ()) -> CostBudgetSpec | None:
    """The model reads ``raw`` or refuses it with a ValidationError naming the broken place;
    a refused spec makes an Invalid decision; an accepted one holds sane figures and compiles
    into a coverage test that reads any pod, VM and job."""
    try:
        spec = parse_spec(raw)
    except ValidationError as exc:
        problems = explain(exc)
        assert problems
        assert all(line.startswith("spec") and ": " in line for line in problems), problems
        assert places, f"an unbroken spec was refused: {problems}"
        assert names_a_place(problems, places), (problems, [render(p) for p in places])
        decision = invalid_decision(BudgetInput(NS, "fuzzed", 7, None, PRIOR), problems, T0)
        check_invalid_decision(decision, problems, PRIOR)
        return None
    assert spec.limit.is_finite() and 0 < spec.limit < Decimal("1e14")
    percents = [t.percent for t in spec.thresholds]
    assert all(p.is_finite() and 0 < p <= 1000 for p in percents)
    assert percents == sorted(set(percents))
    assert finite(spec.expected_hourly_rate)
    if spec.anomalies.idle_gpu is not None:
        assert finite(spec.anomalies.idle_gpu.below_percent)
    if spec.anomalies.burn_rate is not None:
        assert spec.expected_hourly_rate is not None and finite(spec.anomalies.burn_rate.multiplier)
    coverage(spec, NS).select(sample_pods())
    covered_vms(spec, sample_vms())
    covered_jobs(spec, sample_jobs())
    return spec


@cache
def sample_pods() -> tuple[PodRecord, ...]:
    labels = [
        {},
        {"skypilot-cluster-name": "llama-sweep-2ea4", "team": "research"},
        {"skypilot-cluster-name": "x" * 30 + "-ab-2ea4"},
        {"app": "a", "parent": "skypilot"},
    ]
    return tuple(
        PodRecord(namespace=NS, name=f"p{i}", uid=f"u{i}", labels=tuple(sorted(found.items())))
        for i, found in enumerate(labels)
    )


@cache
def sample_vms() -> tuple[VMRecord, ...]:
    return tuple(
        VMRecord(cloud, cloud, f"vm-{cloud}", "vm", "r", None, "t", "on-demand", "running", None, tags)
        for cloud in ("aws", "gcp", "azure")
        for tags in ((("skypilot-cluster-name", "llama-sweep-2ea4"),), (("ray-cluster-name", "y" * 60),))
    )


@cache
def sample_jobs() -> tuple[SlurmJob, ...]:
    return (
        SlurmJob("hpc", "7", "llama-sweep-2ea4", "alice", "nlp", "gpu", "running", "RUNNING", gpus=1),
        SlurmJob("hpc", "8", "z" * 80, "bob", None, "debug", "pending", "PENDING"),
    )


def json_text(value: Any) -> bool:
    """Whether ``value`` can travel as JSON to the API server: no NaN or infinite number, no
    lone surrogate (Python's JSON reads both; Go's, the API server's, refuses or replaces them)."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode()
    except (ValueError, UnicodeEncodeError):
        return False
    return True


class StandInCrash(Exception):
    """The stand-in's CRD validation raised instead of answering (a fault of costwarden.sim)."""


def admitted(raw: Any) -> tuple[Any, list[str], list[str]]:
    """What the API server makes of a CostBudget with spec ``raw``: the spec it stores (unknown
    fields pruned, nulls dropped, defaults filled), the unknown fields (kubectl's default strict
    field validation refuses those) and the other problems."""
    body = {
        "apiVersion": "costwarden.dev/v1alpha1",
        "kind": "CostBudget",
        "metadata": {"name": "b"},
        "spec": raw,
    }
    try:
        stored, unknown, problems = process(crd_schema(), body, validate_custom_object)
    except Exception as exc:
        raise StandInCrash(f"{type(exc).__name__}: {exc}") from exc
    return stored.get("spec"), unknown, [str(p) for p in problems]


def _model_problems(raw: Any) -> list[str]:
    try:
        parse_spec(raw)
    except ValidationError as exc:
        return explain(exc)
    return []


def check_crd_and_model_agree(raw: Any) -> None:
    """A spec the API server admits is read by the operator (never Invalid after a successful
    ``kubectl apply``), and the operator reads no spec the API server refuses. The operator reads
    the stored form; an unknown field is refused by both (strict field validation, extra=forbid)."""
    stored, unknown, crd = admitted(raw)
    if unknown:
        assert _model_problems(raw), f"the model took unknown fields {unknown}"
        return
    model = _model_problems(stored)
    assert bool(crd) == bool(model), f"CRD: {crd or 'accepted'}; model: {model or 'accepted'}"


# ---- pods, nodes, and the evaluation over them ------------------------------------------------


def check_pod_body(body: Any) -> PodRecord:
    """``PodRecord.from_body`` reads any body without raising, into sane figures."""
    pod = PodRecord.from_body(body)
    assert isinstance(pod.gpus, int) and pod.gpus >= 0
    assert finite(pod.cpu_request) and finite(pod.memory_request_gib)
    for moment in (pod.created, pod.started, pod.finished):
        assert moment is None or moment.tzinfo is not None
    if pod.spend_mark is not None:
        assert finite(pod.spend_mark.spend) and finite(pod.spend_mark.rate)
    assert finite(pod.gpu_utilization, nonnegative=False)
    return pod


def check_price(price: NodePrice) -> None:
    for figure in (price.hourly, price.per_gpu, price.per_vcpu, price.per_gib):
        assert finite(figure), price


def check_node_body(body: Any, overrides: PriceOverrides | None = None) -> NodeRecord:
    """``NodeRecord.from_body`` reads any body without raising, into sane figures, and any node
    is priced (never negative, never NaN)."""
    node = NodeRecord.from_body(body)
    assert isinstance(node.gpus, int) and node.gpus >= 0
    assert finite(node.cpu_cores) and finite(node.memory_gib)
    assert finite(node.price_override)
    assert (node.price_override_error is None) or node.price_override is None
    prices = book() if overrides is None else PriceBook(catalog(), overrides)
    check_price(prices.price(node))
    return node


def check_evaluation(
    raw_spec: Any, nodes: Sequence[Any], pods: Sequence[Any], hours: Sequence[float]
) -> None:
    """A valid budget over fuzzed nodes and pods, evaluated pass after pass (through the stored
    form each time, as after a restart): never raises, never a negative or NaN figure, and bad
    data spends nothing, so it crosses no threshold."""
    spec = parse_spec(raw_spec)
    node_records = {record.name: record for record in (check_node_body(body) for body in nodes)}
    cover = coverage(spec, NS)
    status = CostBudgetStatus()
    accruals: dict[str, PodAccrual] = {}
    for step, offset in enumerate(hours):
        now = T0 + timedelta(hours=offset)
        covered = []
        for pod in cover.select([check_pod_body(body) for body in pods]):
            node = node_records.get(pod.node_name) if pod.node_name else None
            price = book().price(node) if node is not None else None
            rate = pod_rate(pod, price)
            assert rate.total.is_finite()
            accrual = accrue(pod, rate.total, now, accruals.get(pod.uid))
            assert finite(accrual.spend) and finite(accrual.rate)
            accruals[pod.uid] = accrual
            covered.append(CoveredPod(pod, accrual))
        decision = evaluate_budget(BudgetInput(NS, "fuzzed", 1, spec, status), covered, now)
        new = decision.status
        for figure in (new.spend, new.hourly_rate, new.percent_used, new.ledger.closed_spend):
            assert figure is not None and finite(figure), new
        assert new.phase in (Phase.OK, Phase.WARNING, Phase.EXCEEDED, Phase.ENFORCED)
        for crossing in decision.crossings:
            assert new.percent_used is not None and crossing.percent <= new.percent_used
        if step == 0 and all(c.accrual.spend == 0 and c.pod.spend_mark is None for c in covered):
            assert new.spend == 0 and decision.crossings == (), "spend from pods that cost nothing"
        stored = new.to_k8s()
        json.dumps(stored, allow_nan=False)
        status = CostBudgetStatus.model_validate(stored)


# ---- price overrides --------------------------------------------------------------------------

_OVERRIDES_ERROR = re.compile(
    rf"^{re.escape(ORIGIN)}: (line \d+, column \d+: not valid YAML: .+"
    r"|the top level must be a mapping, not \w+"
    r"|(\(top level\)|'[^']*'|\"[^\"]*\"|[^\s;'\"][^;]*?)(\.|\[|: ).*)$",
    re.DOTALL,
)


def check_overrides(overrides: PriceOverrides) -> None:
    """Usable overrides price every kind of node and Slurm job without a negative or NaN figure."""
    assert overrides.origin == ORIGIN
    for price in overrides.instances.values():
        assert finite(price) and price > 0
    prices = PriceBook(catalog(), overrides)
    for name, labels, provider in (
        ("p5", {"node.kubernetes.io/instance-type": "p5.48xlarge"}, "aws:///us-east-1a/i-1"),
        ("none", {}, ""),
        ("gpu", {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "gce://p/us-central1-a/n"),
    ):
        node = NodeRecord(name, tuple(sorted(labels.items())), provider, Decimal(8), Decimal(64), 2)
        check_price(prices.price(node))
    for nodes, partition in ((("gpu-01",), "gpu"), ((), "debug"), (("x",), "")):
        unit = slurm_unit_price(prices, nodes, partition)
        assert finite(unit.hourly(2, 8, Decimal(64)))


def check_overrides_text(text: str) -> None:
    """``load_overrides_text`` reads a file or raises OverridesError naming the file and the
    field (or the line, for YAML that does not parse)."""
    try:
        overrides = load_overrides_text(text, ORIGIN)
    except OverridesError as exc:
        assert _OVERRIDES_ERROR.match(str(exc)), str(exc)
        return
    check_overrides(overrides)


def check_overrides_mapping(data: Any) -> None:
    """``parse_overrides`` (a mapping from JSON or Helm values) likewise."""
    try:
        overrides = parse_overrides(data, ORIGIN)
    except OverridesError as exc:
        assert _OVERRIDES_ERROR.match(str(exc)), str(exc)
        return
    check_overrides(overrides)


# ---- billing files ----------------------------------------------------------------------------


BILLING_NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)  # the operator's clock for billing freshness


def check_billing_file(path: Path, content: bytes) -> None:
    """A file is stored, or refused with BillingImportError naming it (and the column, when one
    is at fault) with nothing stored; what is stored reads back with a charge period each, and
    the store's freshness is the newest line not dated in the future (``future_dated``), the
    others counted."""
    path.write_bytes(content)
    with BillingStore(":memory:") as store:
        try:
            results = store.import_files([path])
        except BillingImportError as exc:
            assert str(exc).startswith(f"{path}: ") and exc.path == str(path)
            if exc.column is not None:
                assert exc.column in str(exc)
            assert store.summary().total.rows == 0
            return
        summary = store.summary()
        assert summary.total.rows == sum(r.rows for r in results)
        rows = store.connection.execute(
            "SELECT ChargePeriodStart, BillingPeriodStart, ChargePeriodEnd, BilledCost, EffectiveCost "
            "FROM billing_lines"
        ).fetchall()
        for start, period, end, billed, effective in rows:
            for moment in (start, period, *([end] if end is not None else [])):
                assert isinstance(moment, datetime) and moment.tzinfo is not None, (start, period, end)
            assert billed is None or Decimal(billed).is_finite()
            assert effective is None or Decimal(effective).is_finite()
        found = EstimateStore(store.connection).reconcile(
            ReconcileQuery(BILLING_NOW, timedelta(days=93), Decimal(2), timedelta(days=7))
        )
        evidence = [end or start for start, _, end, *_ in rows if not future_dated(start, end, BILLING_NOW)]
        assert found.newest == max(evidence, default=None), (found.newest, rows)
        assert found.future_lines == len(rows) - len(evidence), (found.future_lines, rows)
        assert sum(lines for _, lines, _ in found.future) == found.future_lines


def check_billing_bad_cell(path: Path, header: Sequence[str], row: Sequence[str], column: str) -> None:
    """A file that is fine but for one value of a money or time column is refused naming that column."""
    lines = [",".join(header), ",".join(row)]
    path.write_text("\n".join(lines) + "\n")
    with BillingStore(":memory:") as store:
        try:
            store.import_files([path])
        except BillingImportError as exc:
            assert exc.column == column, str(exc)
            assert str(exc).startswith(f"{path}: ") and column in str(exc)
            return
    raise AssertionError(f"{row[header.index(column)]!r} in {column} was stored")


# ---- Slurm answers ----------------------------------------------------------------------------


def check_slurm_answer(kind: str, document: Any) -> None:
    """The parsers never raise, and every job they return is sane and priced sanely."""
    read = sacct_entries if kind == "sacct" else squeue_entries
    for given in (json.dumps(document), document if isinstance(document, Mapping) else json.dumps(document)):
        entries, errors = read(given, "hpc")
        assert all(isinstance(e, str) and e and "\n" not in e for e in errors), errors
        for entry in entries:
            job = entry.job
            assert job.state in JOB_STATES and job.job_id
            assert job.gpus >= 0 and job.cpus >= 0 and finite(job.memory_gib), job
            if job.started is not None and job.ended is not None:
                assert job.started.tzinfo is not None and job.ended.tzinfo is not None
            assert action_id(entry.action_id) is not None, entry.action_id  # a job id, never an option
            unit = slurm_unit_price(book(), job.nodes, job.partition)
            assert finite(unit.hourly(job.gpus, job.cpus, job.memory_gib))


# ---- EC2 answers ------------------------------------------------------------------------------


class _Pages:
    def __init__(self, pages: list[Any]) -> None:
        self._pages = pages

    def paginate(self, **_: Any) -> list[Any]:
        return self._pages


class FakeEc2:
    """An EC2 client whose describe_instances answers the given pages."""

    def __init__(self, pages: list[Any]) -> None:
        self._pages = pages

    def get_paginator(self, name: str) -> _Pages:
        assert name == "describe_instances"
        return _Pages(self._pages)


def check_ec2_instances(instances: list[Any]) -> None:
    """Discovery never raises: odd instances are read or make the discovery incomplete (the
    operator then neither closes nor acts on its VMs); read VMs are sane and priced sanely."""
    inventory = AwsInventory("us-east-1", client=FakeEc2([{"Reservations": [{"Instances": instances}]}]))
    found = inventory.discover()
    if not found.complete:
        assert found.error and "\n" not in found.error
    for vm in found.vms:
        assert vm.vm_id and vm.state in VM_STATES
        assert vm.launched is None or vm.launched.tzinfo is not None
        check_price(book().price(vm_node(vm)))


def decode(value: Any) -> Any:
    """Corpus JSON back into inputs: ``{"$datetime": iso}`` is a datetime."""
    if isinstance(value, dict):
        if set(value) == {"$datetime"}:
            return datetime.fromisoformat(value["$datetime"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
