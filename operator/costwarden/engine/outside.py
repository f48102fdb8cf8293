"""Workloads outside Kubernetes that a budget also covers: cloud VMs and Slurm jobs.

Both settle in the budget's ledger exactly as pods do (``budget_ledger``), keyed by a prefix
that no pod uid has (``vm:``, ``slurm:``); each kind's spend in the period is also reported on
its own (``vmSpend``, ``slurmSpend``) and its closed part kept beside ``closedSpend``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final, Protocol

from costwarden.engine.ledger import PodAccrual
from costwarden.models import PodLedgerEntry

VM: Final = "vm:"
SLURM: Final = "slurm:"
KINDS: Final = (VM, SLURM)  # ledger key prefixes
# The ledger field holding each kind's closed spend.
CLOSED_FIELDS: Final = {VM: "closed_vm_spend", SLURM: "closed_slurm_spend"}
EVERY_NAMESPACE: Final = "*"  # ``--outside-namespace=*``: budgets of every namespace may reach outside
NOT_ALLOWED: Final = "NamespaceNotAllowed"  # the Unavailable conditions' reason for a fenced budget


@dataclass(frozen=True, slots=True)
class OutsideFence:
    """Which namespaces' budgets may cover workloads outside Kubernetes (``--outside-namespace``).

    VMs and Slurm jobs are in no namespace: a budget that covers them reaches past its own
    namespace with the operator's cloud or Slurm identity (docs/security.md). A budget of a
    namespace outside the fence covers no VM and no job (its pods are unaffected) and says why
    in its CloudUnavailable / SlurmUnavailable condition. ``*`` lets every namespace through.
    """

    namespaces: frozenset[str] = frozenset({EVERY_NAMESPACE})

    @classmethod
    def of(cls, namespaces: Iterable[str]) -> OutsideFence:
        return cls(frozenset(namespaces))

    @property
    def open(self) -> bool:
        """Every namespace may reach outside (the operator's default, with a warning)."""
        return EVERY_NAMESPACE in self.namespaces

    def allows(self, namespace: str) -> bool:
        return self.open or namespace in self.namespaces

    def refusal(self, namespace: str, what: str) -> str | None:
        """Why a budget in ``namespace`` covers no ``what`` (e.g. "cloud VMs"); None if it may."""
        if self.allows(namespace):
            return None
        allowed = ", ".join(sorted(self.namespaces)) or "none"
        return (
            f"CostBudgets in namespace {namespace} may not cover {what}: the operator allows "
            f"only namespaces {allowed} (--outside-namespace)"
        )


class OutsideRecord(Protocol):
    """What the ledger reads of a VM or a job: its key, when it started and whether it ended."""

    @property
    def key(self) -> str: ...

    @property
    def started(self) -> datetime | None: ...

    @property
    def created(self) -> datetime | None: ...

    @property
    def finished(self) -> datetime | None: ...

    @property
    def is_terminal(self) -> bool: ...


EVERY_NAMESPACE_FENCE: Final = OutsideFence()  # the operator's default: no --outside-namespace


@dataclass(frozen=True, slots=True)
class Mark:
    """The largest figure any budget's ledger holds for a VM or job: where its accrual resumes
    after a restart (their spend lives in the covering budgets' ledgers)."""

    spend: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class CoveredOutside:
    """A VM or job a budget covers, with its accrual of this pass and its GPUs.

    One object per workload per pass, shared by every budget covering it."""

    record: OutsideRecord
    accrual: PodAccrual
    gpus: int = 0
    ledger_entries: dict[Decimal, PodLedgerEntry] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )


@dataclass(frozen=True, slots=True)
class OutsideView:
    """What a budget's evaluation knows of one kind (``--cloud`` VMs or ``--slurm`` jobs): the
    covered ones, one line per source that is failing or stale, and whether every source has
    answered completely at least once since the operator started (until then, a ledger entry
    missing from the pass may only be unread: it is carried over, never closed)."""

    items: tuple[CoveredOutside, ...] = ()
    problems: tuple[str, ...] = ()
    all_read: bool = True
    refused: str | None = None  # why this budget covers none of this kind (``OutsideFence``)


@dataclass(frozen=True, slots=True)
class OutsideGroup:
    prefix: str  # VM or SLURM
    view: OutsideView


def condition_state(problems: Sequence[str], what: str, refused: str | None = None) -> tuple[str, str, str]:
    """(status, reason, message) of a kind's Unavailable condition; ``refused`` (the budget's
    namespace is outside ``--outside-namespace``) wins over the sources' state."""
    if refused is not None:
        return ("True", NOT_ALLOWED, refused)
    if problems:
        message = "; ".join(problems)
        return ("True", "SourceUnreadable", f"spend continues from the last known state: {message}")
    return ("False", "SourceRead", f"every {what} answered completely")
