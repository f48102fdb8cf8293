"""Everything the operator keeps about one CostBudget, owned by one ``BudgetBook``.

Each budget's state lives in one object: its compiled spec, the latest status (a value that is
replaced, never edited), what of it is stored, which pods it covers, its figures for /metrics,
and which of its action records are being worked on. Forgetting a budget is one call.

Revisions order the writes: each new status gets the next revision; the status writer reports
the revision it stored, and a worker that must not act before its Pending record is stored
waits for that revision (``wait_stored``).

``resource_version`` is the budget's resourceVersion at which ``stored`` is its status: from the
body the state was made from, the answer of each status write, and the watch when it shows a
newer version whose status is still ``stored`` (a spec or annotation change). Status writes
carry it as a precondition; after a 409 the writer reads the budget again (``refreshed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from costwarden.engine.selection import Coverage, coverage
from costwarden.models import CostBudgetSpec, CostBudgetStatus, parse_spec

BudgetKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True, slots=True)
class BudgetFigures:
    """The latest evaluated figures of one budget, for /metrics and the admission guard."""

    spend: Decimal
    limit: Decimal
    hourly_rate: Decimal
    percent_used: Decimal
    phase: str


@dataclass(eq=False)
class BudgetState:
    key: BudgetKey
    uid: str
    status: CostBudgetStatus  # the latest: replaced by each pass and each folded outcome
    stored: Mapping[str, Any]  # the status body as last stored (merge patches are computed against it)
    resource_version: str | None = None  # the budget's, with ``stored`` its status; None: unknown
    generation: int | None = None
    spec: CostBudgetSpec | None = None  # None while the spec does not validate
    covers: Coverage | None = None
    figures: BudgetFigures | None = None
    covered: frozenset[str] = frozenset()  # uids of the pods it covers
    revision: int = 0
    stored_revision: int = 0
    status_written_at: float = float("-inf")  # monotonic
    acting: set[str] = field(default_factory=set)  # record ids with a destructive job queued or running
    notifying: set[str] = field(default_factory=set)  # record ids with a notification queued or running
    resuming: bool = False  # a resume job is queued or running
    resume_handled: str | None = None  # the resume request (annotation value) last carried out
    retired: bool = False  # dropped from the book (leadership changed, budget deleted): write nothing
    _void_through: int = 0  # waits for revisions up to this one answer False (``refreshed``)
    _stored_event: asyncio.Event | None = None

    @property
    def namespace(self) -> str:
        return self.key[0]

    @property
    def name(self) -> str:
        return self.key[1]

    def compile(self, generation: int | None, raw_spec: Mapping[str, Any]) -> CostBudgetSpec:
        """The parsed spec and compiled selection, rebuilt only when the generation changes.
        Raises pydantic's ValidationError for an invalid spec (and forgets the old one)."""
        if self.spec is not None and self.generation == generation and generation is not None:
            return self.spec
        self.generation = generation
        try:
            spec = parse_spec(raw_spec)
        except ValidationError:
            self.spec, self.covers, self.figures, self.covered = None, None, None, frozenset()
            raise
        self.spec, self.covers = spec, coverage(spec, self.namespace)
        return spec

    def replace_status(self, status: CostBudgetStatus) -> int:
        """Take ``status`` as the latest; returns its revision."""
        if status is not self.status:
            self.status = status
            self.revision += 1
        return self.revision

    def mark_stored(
        self, revision: int, body: Mapping[str, Any], at: float, resource_version: str | None = None
    ) -> None:
        self.stored_revision = max(self.stored_revision, revision)
        self.stored = body
        if resource_version is not None:
            self.resource_version = resource_version
        self.status_written_at = at
        self._wake()

    def observe(self, resource_version: str | None, status_body: Mapping[str, Any]) -> bool:
        """The watch shows the budget at ``resource_version``: taken as ours when its status is
        the one stored (only its spec or metadata changed), so the next write need not fail
        first. Whether it was taken. (A version taken wrongly costs one 409, never a status.)"""
        if not resource_version or resource_version == self.resource_version:
            return False
        if dict(status_body) != dict(self.stored):
            return False
        self.resource_version = resource_version
        return True

    def refreshed(self, resource_version: str | None, stored_body: Mapping[str, Any], void: bool) -> None:
        """The budget as read again after a 409: its status is what is stored now. ``void``: the
        stored status settled a record a job of ours waits to carry out, so every wait for a
        revision up to the current one answers False (the job leaves it to a later pass, which
        plans from the merged records)."""
        self.resource_version = resource_version
        self.stored = dict(stored_body)
        if void:
            self._void_through = self.revision
            self._wake()

    def _wake(self) -> None:
        if self._stored_event is not None:
            self._stored_event.set()
            self._stored_event = None

    async def wait_stored(self, revision: int, timeout: float) -> bool:  # noqa: ASYNC109 -- a deadline, not a cancel scope
        """Whether the status of ``revision`` (or a later one) was stored within ``timeout``; False
        once a status read back from the API server voided the wait (``refreshed``), even if a
        later revision is stored since."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if revision <= self._void_through:
                return False
            if self.stored_revision >= revision:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._stored_event is None:
                self._stored_event = asyncio.Event()
            try:
                await asyncio.wait_for(self._stored_event.wait(), remaining)
            except TimeoutError:
                return self.stored_revision >= revision > self._void_through


class BudgetBook:
    """The state of every budget this replica evaluates; only the event loop touches it."""

    def __init__(self) -> None:
        self._states: dict[BudgetKey, BudgetState] = {}

    def state(
        self,
        key: BudgetKey,
        uid: str,
        stored_status: CostBudgetStatus,
        stored_body: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> BudgetState:
        """The budget's state, created from its stored status (read at ``resource_version``) when
        new (or deleted and created again: a new uid)."""
        known = self._states.get(key)
        if known is None or known.uid != uid:
            if known is not None:
                known.retired = True
            known = BudgetState(
                key=key,
                uid=uid,
                status=stored_status,
                stored=dict(stored_body),
                resource_version=resource_version or None,
            )
            self._states[key] = known
        return known

    def get(self, key: BudgetKey) -> BudgetState | None:
        return self._states.get(key)

    def forget(self, key: BudgetKey) -> None:
        state = self._states.pop(key, None)
        if state is not None:
            state.retired = True

    def retain(self, keys: set[BudgetKey]) -> int:
        """Forget budgets that are gone; returns how many."""
        gone = [key for key in self._states if key not in keys]
        for key in gone:
            self.forget(key)
        return len(gone)

    def clear(self) -> None:
        """Forget everything (leadership changed hands: the stored statuses are the truth now);
        work still queued for the old states finds them retired and does nothing."""
        for key in list(self._states):
            self.forget(key)

    def __iter__(self) -> Iterator[BudgetState]:
        return iter(list(self._states.values()))

    def __len__(self) -> int:
        return len(self._states)

    def sizes(self) -> dict[str, int]:
        """Budgets held, and what they hold per pod or per record (``costwarden_tracked_objects``)."""
        states = self._states.values()
        return {
            "states": len(self._states),
            "covered_pods": sum(len(state.covered) for state in states),
            "ledger_entries": sum(len(state.status.ledger.pods) for state in states),
            "action_records": sum(len(state.status.actions) for state in states),
            "acting": sum(len(state.acting) for state in states),
            "notifying": sum(len(state.notifying) for state in states),
        }

    def budgets_by_pod(self) -> dict[str, str]:
        """uid -> the comma-separated names for the costwarden.dev/budgets annotation."""
        names: dict[str, list[str]] = {}
        for state in self._states.values():
            for uid in state.covered:
                names.setdefault(uid, []).append(state.name)
        return {uid: ",".join(sorted(found)) for uid, found in names.items()}
