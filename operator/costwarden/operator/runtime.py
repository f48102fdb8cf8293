"""The operator's live state, created at startup and handed to handlers through kopf's memo."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costwarden.engine.enforcement import EnforcementPolicy
from costwarden.engine.selection import Coverage as SelectionTest
from costwarden.engine.selection import coverage
from costwarden.models import CostBudgetSpec, CostBudgetStatus, parse_spec
from costwarden.notify.delivery import Notifier
from costwarden.notify.retry import RetryPolicy
from costwarden.operator.kube import KubeClient
from costwarden.operator.metrics import Metrics
from costwarden.operator.settings import OperatorSettings
from costwarden.operator.spendbook import SpendBook
from costwarden.operator.throttle import TokenBucket, WritePolicy
from costwarden.pricing import NodePrice, PriceBook
from costwarden.records import NodeRecord

BudgetKey = tuple[str, str]  # (namespace, name)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class BudgetFigures:
    """The latest evaluated figures of one budget, for /metrics."""

    spend: Decimal
    limit: Decimal
    hourly_rate: Decimal
    percent_used: Decimal
    phase: str


class CompiledSpecs:
    """Each budget's parsed spec and compiled pod selection, rebuilt only when its generation
    (or uid: a budget deleted and created again) changes: parsing on every pass is wasted work."""

    def __init__(self) -> None:
        self._by_budget: dict[BudgetKey, tuple[str, int | None, CostBudgetSpec, SelectionTest]] = {}

    def get(
        self, key: BudgetKey, uid: str, generation: int | None, raw: Mapping[str, Any]
    ) -> tuple[CostBudgetSpec, SelectionTest]:
        """Raises pydantic's ValidationError for an invalid spec (never cached)."""
        known = self._by_budget.get(key)
        if known is not None and known[0] == uid and known[1] == generation and generation is not None:
            return known[2], known[3]
        spec = parse_spec(raw)
        covers = coverage(spec, key[0])
        self._by_budget[key] = (uid, generation, spec, covers)
        return spec, covers

    def drop(self, key: BudgetKey) -> None:
        self._by_budget.pop(key, None)


class LatestStatuses:
    """The status each budget's last evaluation produced, kept in memory so the next pass
    continues from it (also when the status PATCH was skipped as not yet due) instead of
    re-reading and re-validating the stored one; the stored status is the memory across
    restarts and for budgets deleted and created again (a new uid)."""

    def __init__(self) -> None:
        self._by_budget: dict[BudgetKey, tuple[str, CostBudgetStatus]] = {}

    def get(self, key: BudgetKey, uid: str) -> CostBudgetStatus | None:
        known = self._by_budget.get(key)
        return known[1] if known is not None and known[0] == uid else None

    def put(self, key: BudgetKey, uid: str, status: CostBudgetStatus) -> None:
        self._by_budget[key] = (uid, status)

    def drop(self, key: BudgetKey) -> None:
        self._by_budget.pop(key, None)


class BudgetMembership:
    """Which budgets cover which pods, as last evaluated by each budget's timer."""

    def __init__(self) -> None:
        self._pods_of: dict[BudgetKey, frozenset[str]] = {}
        self.ready = False  # every budget evaluated once: the budgets annotation can be written

    def set(self, budget: BudgetKey, uids: Iterable[str]) -> None:
        self._pods_of[budget] = frozenset(uids)

    def drop(self, budget: BudgetKey) -> None:
        self._pods_of.pop(budget, None)

    def budgets_by_pod(self) -> dict[str, str]:
        """uid -> the comma-separated names for the costwarden.dev/budgets annotation."""
        names: dict[str, list[str]] = {}
        for (_, name), uids in self._pods_of.items():
            for uid in uids:
                names.setdefault(uid, []).append(name)
        return {uid: ",".join(sorted(found)) for uid, found in names.items()}


@dataclass
class Runtime:
    settings: OperatorSettings
    kube: KubeClient
    prices: PriceBook
    clock: Callable[[], datetime] = utc_now
    monotonic: Callable[[], float] = time.monotonic
    metrics: Metrics = field(default_factory=Metrics)
    book: SpendBook = field(default_factory=SpendBook)
    coverage: BudgetMembership = field(default_factory=BudgetMembership)
    budgets: dict[BudgetKey, BudgetFigures] = field(default_factory=dict)
    specs: dict[BudgetKey, CostBudgetSpec] = field(default_factory=dict)  # valid specs, last evaluated
    status_written: dict[BudgetKey, float] = field(default_factory=dict)  # monotonic, per status PATCH
    compiled: CompiledSpecs = field(default_factory=CompiledSpecs)
    last_timer_run: float = float("-inf")  # monotonic time a budget timer last ran here
    indexed: bool = False  # kopf's indexes hold the whole cluster (see handlers.indexes_ready)
    statuses: LatestStatuses = field(default_factory=LatestStatuses)
    node_prices: dict[str, NodePrice] = field(default_factory=dict)
    idle_costs: dict[str, Decimal] = field(default_factory=dict)
    pod_names: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # uid -> (ns, name, node)
    bucket: TokenBucket = field(init=False)
    policy: WritePolicy = field(init=False)
    enforcement: EnforcementPolicy = field(init=False)
    destructive_bucket: TokenBucket = field(init=False)
    notifier: Notifier = field(init=False)

    _nodes: dict[str, NodeRecord] = field(default_factory=dict)
    _nodes_at: float = float("-inf")

    def __post_init__(self) -> None:
        # The bucket refills once per pass: a burst smaller than a pass's worth of tokens would
        # cap writes at burst / accrual_interval instead of at write_rate.
        burst = max(self.settings.write_burst, int(self.settings.write_rate * self.settings.accrual_interval))
        self.bucket = TokenBucket(self.settings.write_rate, burst, self.monotonic())
        self.policy = WritePolicy(self.settings.annotation_interval, self.settings.annotation_rate_change)
        self.enforcement = EnforcementPolicy(
            mode=self.settings.enforcement, protected_namespaces=frozenset(self.settings.protected_namespaces)
        )
        per_minute = max(1, self.settings.max_destructive_per_minute)
        self.destructive_bucket = TokenBucket(per_minute / 60.0, per_minute, self.monotonic())
        self.notifier = Notifier(
            slack_base_url=self.settings.slack_api_url,
            pagerduty_url=self.settings.pagerduty_url,
            retry=RetryPolicy(
                max_attempts=self.settings.notify_attempts, base_delay=self.settings.notify_backoff
            ),
        )
        self.metrics.attach(self)

    def node_map(
        self, index: Mapping[str, Iterable[NodeRecord]], max_age: float = 1.0
    ) -> dict[str, NodeRecord]:
        """Nodes by name from the kopf index, rebuilt at most every ``max_age`` seconds."""
        now = self.monotonic()
        if now - self._nodes_at >= max_age:
            self._nodes = {record.name: record for store in index.values() for record in store}
            self._nodes_at = now
        return self._nodes

    def forget_budget(self, key: BudgetKey) -> None:
        """Drop everything kept about a budget that was deleted."""
        self.coverage.drop(key)
        self.budgets.pop(key, None)
        self.specs.pop(key, None)
        self.status_written.pop(key, None)
        self.compiled.drop(key)
        self.statuses.drop(key)

    def acting_peer(self, now: float) -> bool:
        """Whether this replica is the one kopf's peering lets act.

        kopf pauses its handlers (the heartbeat timers) on the replicas that stand by, but not
        passes of our own; with peering, the passes therefore run only while this replica's
        heartbeat timers have run recently. Standalone, they always run.
        """
        if self.settings.peering is None:
            return True
        # Each budget's timer beats once per interval, so with any budget at all the gap between
        # beats stays under one interval; half an interval of slack covers scheduling delays.
        return now - self.last_timer_run <= 1.5 * self.settings.heartbeat_interval

    def price_of(self, node: NodeRecord | None) -> NodePrice | None:
        if node is None:
            return None
        price = self.prices.price(node)
        self.node_prices[node.name] = price
        return price

    def retain_nodes(self, nodes: Mapping[str, NodeRecord]) -> None:
        for name in [n for n in self.node_prices if n not in nodes]:
            self.node_prices.pop(name, None)
            self.idle_costs.pop(name, None)
