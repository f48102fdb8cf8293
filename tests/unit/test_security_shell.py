"""The shell keeps the engine's fences (docs/security.md): every Kubernetes call an action, a
resume, a notification or the admission guard makes stays in the budget's namespace; Secrets are
read only where and as the docs say; the outside fence reaches the runtime from the flag.

A recording stand-in for ``KubeClient`` notes each call with its namespace; the plans come from
the engine's own properties (tests/unit/test_security_fences.py).
"""

from __future__ import annotations

import ast
import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.cli import build_parser, operator_settings
from costwarden.engine.enforcement import EnforcementPolicy, plan_record
from costwarden.engine.ledger import PodAccrual
from costwarden.engine.outside import NOT_ALLOWED, CoveredOutside, OutsideFence
from costwarden.engine.selection import covered_pods
from costwarden.models import Action, CostBudgetSpec, CostBudgetStatus, Phase
from costwarden.operator import admission, budgets, enforce, resume
from costwarden.operator.kube import METHOD_PERMISSIONS, SecretError, WriteResult
from costwarden.operator.runtime import Limits
from costwarden.operator.settings import OperatorSettings
from costwarden.records import PodRecord
from tests.unit.test_security_fences import (
    DESTRUCTIVE,
    JOBS,
    NAMESPACES,
    PROTECTED,
    VMS,
    A,
    B,
    pods,
    record,
    spec,
)
from tests.unit.test_security_fences import (
    budgets as budget_specs,
)

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "costwarden"
NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


@dataclass
class RecordingKube:
    """The ``KubeClient`` methods enforcement, resume and notifications call, noting
    ``(method, namespace, name)``; workloads exist, Secrets hold one key ``k``."""

    dry_run: bool = False
    last_retry_after: float | None = None
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    async def delete_pod(self, namespace: str, name: str, grace: int, **_: Any) -> WriteResult:
        self.calls.append(("delete_pod", namespace, name))
        return WriteResult.DONE

    async def get_owner(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        self.calls.append(("get_owner", namespace, f"{kind}/{name}"))
        owners = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "controller": True}]
        metadata: dict[str, Any] = {"name": name, "resourceVersion": "7"}
        if kind == "ReplicaSet":
            metadata["ownerReferences"] = owners
        if kind in ("Deployment", "StatefulSet"):
            metadata["annotations"] = {"costwarden.dev/replicas-before": "2"}
        return {"metadata": metadata, "spec": {"replicas": 2}}

    async def scale(self, namespace: str, kind: str, name: str, *_: Any, **__: Any) -> WriteResult:
        self.calls.append(("scale", namespace, f"{kind}/{name}"))
        return WriteResult.DONE

    async def suspend_job(self, namespace: str, name: str, suspend: bool = True) -> WriteResult:
        self.calls.append(("suspend_job", namespace, name))
        return WriteResult.DONE

    async def suspend_jobset(self, namespace: str, name: str, suspend: bool = True) -> WriteResult:
        self.calls.append(("suspend_jobset", namespace, name))
        return WriteResult.DONE

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        self.calls.append(("read_secret_key", namespace, f"{name}/{key}"))
        if key != "k":
            raise SecretError(f"Secret {namespace}/{name} has no key '{key}'")
        return "https://hooks.example.com/x"


def runtime_with(kube: RecordingKube, **more: Any) -> Any:
    return SimpleNamespace(kube=kube, vms=None, slurm=None, acting=lambda: True, **more)


# --- actions: every call in the budget's namespace -----------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    all_pods=pods(),
    budget=budget_specs,
    namespace=st.sampled_from([A, B]),
    action=st.sampled_from(DESTRUCTIVE),
)
def test_carrying_out_any_plan_calls_the_api_only_in_the_budgets_namespace(
    all_pods: list[PodRecord], budget: CostBudgetSpec, namespace: str, action: Action
) -> None:
    covered = covered_pods(budget, namespace, all_pods)
    plan = plan_record(
        namespace, budget, record(action), (covered, all_pods), EnforcementPolicy(), vms=VMS, jobs=JOBS
    )
    kube = RecordingKube()
    results = asyncio.run(enforce.execute(runtime_with(kube), plan))
    assert {ns for _, ns, _ in kube.calls} <= {namespace}
    if plan.targets and action is Action.KILL:
        pod_targets = [t.name for t in plan.targets if t.kind == "Pod"]
        assert [name for method, _, name in kube.calls if method == "delete_pod"] == pod_targets
    # VM and job targets never reach the Kubernetes API; without --cloud/--slurm they are skipped.
    outside = [r for r in results if r.target.startswith(("VM ", "SlurmJob "))]
    assert all(r.result == "Skipped" for r in outside)


def test_resume_acts_in_the_budgets_namespace_whatever_a_stored_target_says() -> None:
    """Resume reads its targets back from status.actions (``Kind/name``): a target written by
    someone who may patch the status still resolves in the budget's own namespace."""
    kube = RecordingKube()
    runtime = runtime_with(kube)
    for action, target in (
        (Action.SCALE, "Deployment/api"),
        (Action.SCALE, f"Deployment/{B}/api"),
        (Action.SUSPEND, "Job/train"),
        (Action.SUSPEND, f"JobSet/../{B}/sweep"),
    ):
        asyncio.run(resume._resume_target(runtime, A, action, target))
    assert kube.calls and {ns for _, ns, _ in kube.calls} == {A}


# --- Secrets: only the ones a budget names, in its own namespace ----------------------------------

secret_refs = st.builds(
    lambda name, key: {"name": name, "key": key},
    st.sampled_from(["slack", "hooks", "pagerduty", "cloud-credentials"]),
    st.sampled_from(["k", "token", "url"]),
)
notify_specs = st.fixed_dictionaries(
    {},
    optional={
        "slack": st.one_of(
            st.builds(lambda ref: {"channel": "#ml", "tokenSecretRef": ref}, secret_refs),
            st.builds(lambda ref: {"webhookSecretRef": ref}, secret_refs),
        ),
        "webhook": st.builds(lambda ref: {"urlSecretRef": ref}, secret_refs),
        "pagerduty": st.builds(lambda ref: {"routingKeySecretRef": ref}, secret_refs),
    },
)


def named_refs(notify: dict[str, Any]) -> set[str]:
    refs = set()
    for channel in notify.values():
        for field_name, ref in channel.items():
            if field_name.endswith("SecretRef"):
                refs.add(f"{ref['name']}/{ref['key']}")
    return refs


@settings(max_examples=200, deadline=None)
@given(notify=notify_specs, namespace=st.sampled_from(NAMESPACES))
def test_notifications_read_only_the_secret_keys_the_budget_names_in_its_namespace(
    notify: dict[str, Any], namespace: str
) -> None:
    kube = RecordingKube()
    read = asyncio.run(enforce.read_channels(runtime_with(kube), spec(notify=notify), namespace))
    assert {(method, ns) for method, ns, _ in kube.calls} <= {("read_secret_key", namespace)}
    assert {what for _, _, what in kube.calls} == named_refs(notify)
    # A missing key is reported by Secret name and key; the values read never are.
    if read.error is not None:
        assert "hooks.example.com" not in read.error


def calls_of(method: str) -> dict[str, list[str]]:
    """Where in the package ``<anything>.<method>(...)`` is called, by module."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == method
            ):
                found.setdefault(str(path.relative_to(PACKAGE)), []).append(method)
            if (
                isinstance(node, ast.Attribute)
                and node.attr == method
                and not isinstance(node.ctx, ast.Store)
            ):
                found.setdefault(str(path.relative_to(PACKAGE)), []).append(method)
    return found


def test_secrets_are_read_in_one_place_by_name_never_listed() -> None:
    """The API calls on Secrets: one ``read_namespaced_secret`` in kube.py behind
    ``read_secret_key``, called only by notifications (read_channels); nothing lists or watches
    Secrets, and the slurmrestd token and webhook certificate are files the kubelet mounts."""
    assert set(calls_of("read_namespaced_secret")) == {"operator/kube.py"}
    assert set(calls_of("read_secret_key")) == {"operator/enforce.py"}
    for lister in ("list_namespaced_secret", "list_secret_for_all_namespaces", "watch_namespaced_secret"):
        assert calls_of(lister) == {}, lister
    assert [
        m for m, permissions in METHOD_PERMISSIONS.items() if any(p[1] == "secrets" for p in permissions)
    ] == ["read_secret_key"]
    assert METHOD_PERMISSIONS["read_secret_key"] == (("", "secrets", "get"),)


def test_the_docs_name_every_secret_reference_a_budget_can_make() -> None:
    """docs/security.md lists the Secret references of the CRD: the models' SecretKeyRef fields."""
    from costwarden.models import NotifySpec, SecretKeyRef

    def members(annotation: Any) -> tuple[Any, ...]:
        return tuple(getattr(annotation, "__args__", (annotation,)))

    refs = set()
    for channel in NotifySpec.model_fields.values():
        (model,) = [m for m in members(channel.annotation) if m is not type(None)]
        refs |= {
            info.alias for info in model.model_fields.values() if SecretKeyRef in members(info.annotation)
        }
    assert refs == {"tokenSecretRef", "webhookSecretRef", "urlSecretRef", "routingKeySecretRef"}
    text = (PACKAGE.parents[1] / "docs" / "security.md").read_text()
    assert {ref for ref in refs if f"`{ref}`" not in text} == set()


# --- the admission guard: budgets of the pod's namespace only -------------------------------------


def pod_body(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "relaunch", "namespace": namespace, "labels": {"app": "trainer"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


@pytest.mark.parametrize("pod_namespace", [A, B, PROTECTED])
def test_the_admission_guard_asks_only_the_pods_own_namespaces_budgets(pod_namespace: str) -> None:
    raw = {"limit": 10, "selector": {}, "enforcement": {"blockNewPods": True}}
    blocking = spec(**raw)
    state = SimpleNamespace(
        namespace=A, name="all", spec=blocking, status=CostBudgetStatus(phase=Phase.EXCEEDED)
    )
    stored = [budgets.BudgetObject(A, "stored", "u", 1, raw, {"phase": "Exceeded"})]
    runtime = SimpleNamespace(budgets=[state], settings=OperatorSettings(protected_namespaces=(PROTECTED,)))
    found = admission.refusal(runtime, pod_body(pod_namespace), pod_namespace, stored)
    if pod_namespace == A:
        assert found is not None and found[0] == "all"
    else:
        assert found is None
    runtime.budgets = []
    found = admission.refusal(runtime, pod_body(pod_namespace), pod_namespace, stored)
    assert (found is not None) == (pod_namespace == A)


# --- the outside fence, from the flag to the selection ---------------------------------------------


class Feed:
    """The part of VMFeed / JobFeed the budget views read."""

    def __init__(self, records: tuple[Any, ...]) -> None:
        self._records = records
        self.wanted = 0

    def records(self) -> tuple[Any, ...]:
        return self._records

    def covered(self, item: Any, *_: Any) -> CoveredOutside:
        return CoveredOutside(item, PodAccrual(Decimal(1), Decimal(1), NOW))

    def problems(self, now: float) -> tuple[str, ...]:
        return ()

    def all_read(self) -> bool:
        return True

    def want(self, ledger: Any) -> None:
        self.wanted += 1


def limits_for(*flags: str) -> Limits:
    settings_ = operator_settings(build_parser().parse_args(["run", *flags]))
    return Limits.from_settings(settings_, 0.0)


@pytest.mark.parametrize(
    ("flags", "allowed"),
    [
        ((), {A, B}),
        (("--outside-namespace", A), {A}),
        (("--outside-namespace", A, "--outside-namespace", "*"), {A, B}),
    ],
)
def test_budget_views_cover_vms_and_jobs_only_in_allowed_namespaces(
    flags: tuple[str, ...], allowed: set[str]
) -> None:
    budget = spec(skypilotCluster="llama", slurm={})
    for namespace in (A, B):
        runtime = SimpleNamespace(
            vms=Feed(VMS), slurm=Feed(JOBS), limits=limits_for(*flags), prices=None, monotonic=lambda: 0.0
        )
        clouds = budgets._cloud_view(runtime, budget, (namespace, CostBudgetStatus()), NOW)
        slurm = budgets._slurm_view(runtime, budget, (namespace, CostBudgetStatus()), NOW)
        assert clouds is not None and slurm is not None
        if namespace in allowed:
            assert [c.record.vm_id for c in clouds.items] == ["i-1", "i-2"]
            assert [c.record.job_id for c in slurm.items] == ["101"]
            assert clouds.refused is slurm.refused is None and runtime.slurm.wanted == 1
        else:
            assert clouds.items == slurm.items == ()
            assert clouds.refused and "cloud VMs" in clouds.refused
            assert slurm.refused and "Slurm jobs" in slurm.refused
            assert runtime.slurm.wanted == 0, "no accounting lookups on behalf of a fenced budget"


def test_the_flag_reaches_the_enforcement_policy() -> None:
    assert limits_for().enforcement.outside == OutsideFence()
    assert limits_for(
        "--outside-namespace", B, "--outside-namespace", A
    ).enforcement.outside == OutsideFence.of([A, B])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--outside-namespace", "Team_A"])


@pytest.mark.parametrize(
    ("flags", "warned"),
    [
        ((), False),
        (("--cloud", "gcp:ml-research"), True),
        (("--slurm", "hpc"), True),
        (("--slurm", "hpc", "--outside-namespace", A), False),
        (("--cloud", "gcp:ml-research", "--outside-namespace", "*"), True),
    ],
)
def test_the_operator_warns_when_every_namespace_may_reach_vms_or_jobs(
    flags: tuple[str, ...], warned: bool
) -> None:
    warning = operator_settings(build_parser().parse_args(["run", *flags])).outside_warning()
    assert (warning is not None) == warned
    if warning is not None:
        assert "--outside-namespace" in warning and "docs/security.md" in warning


def test_the_warning_is_logged_at_start(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from costwarden.operator.app import build_runtime

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
    )
    with caplog.at_level(logging.WARNING, logger="costwarden.operator.app"):
        build_runtime(OperatorSettings(kubeconfig=kubeconfig, slurm=("hpc",), metrics_port=0))
    assert any(
        r.getMessage().startswith("SECURITY: anyone who may create a CostBudget") for r in caplog.records
    )


def test_a_fenced_budget_shows_the_reason_not_a_source_failure() -> None:
    budget = spec(skypilotCluster="llama")
    runtime = SimpleNamespace(
        vms=Feed(VMS),
        slurm=None,
        limits=limits_for("--outside-namespace", A),
        prices=None,
        monotonic=lambda: 0.0,
    )
    view = budgets._cloud_view(runtime, budget, (B, CostBudgetStatus()), NOW)
    assert view is not None and view.problems == () and view.refused is not None
    from costwarden.engine.vms import cloud_condition

    assert cloud_condition(budget, view) == ("True", NOT_ALLOWED, view.refused)
