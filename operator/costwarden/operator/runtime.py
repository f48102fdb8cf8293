"""The operator's live parts, created at startup and handed to handlers through kopf's memo.

Each piece of state has one owner: ``budgets`` (every budget's state), ``pods`` (every pod's
accrual and the node prices), ``leader`` (whether this replica acts), ``work`` (the background
queues that carry decisions out), ``limits`` (the write and destructive-action buckets).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from costwarden.engine.enforcement import EnforcementPolicy
from costwarden.engine.outside import OutsideFence
from costwarden.notify.delivery import Notifier
from costwarden.notify.retry import RetryPolicy
from costwarden.operator.budgetstate import BudgetBook, BudgetKey
from costwarden.operator.gpufeed import FeedSettings, GpuFeed
from costwarden.operator.heap import HeapTrimmer
from costwarden.operator.kube import KubeClient
from costwarden.operator.leader import AlwaysLeader, LeaderElector
from costwarden.operator.metrics import Metrics
from costwarden.operator.settings import OperatorSettings
from costwarden.operator.spendbook import SpendBook
from costwarden.operator.statuswriter import PatchOf, StatusWriter
from costwarden.operator.throttle import TokenBucket, WritePolicy
from costwarden.operator.workqueue import KeyedWorkQueue
from costwarden.pricing import LiveFeed, PriceBook, RateFactors
from costwarden.records import PodRecord
from costwarden.telemetry.factory import counter_source, sources_from_settings
from costwarden.telemetry.samples import GpuUsageSource

if TYPE_CHECKING:  # loaded only when configured: `costwarden run` without them loads no DuckDB or cloud SDK
    from costwarden.operator.billingfeed import BillingFeed
    from costwarden.operator.jobfeed import JobFeed
    from costwarden.operator.vmfeed import VMFeed
    from costwarden.pricefeeds.refresher import PriceFeeds

ACTION_CONCURRENCY = 32
NOTIFY_CONCURRENCY = 8
EVENT_CONCURRENCY = 4
QUEUE_CAPACITY = 5000


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much the operator may write: annotation writes and destructive actions."""

    annotations: TokenBucket
    destructive: TokenBucket
    policy: WritePolicy
    enforcement: EnforcementPolicy

    @classmethod
    def from_settings(cls, settings: OperatorSettings, now: float) -> Limits:
        # The bucket refills once per pass: a burst smaller than a pass's worth of tokens would
        # cap writes at burst / accrual_interval instead of at write_rate.
        burst = max(settings.write_burst, int(settings.write_rate * settings.accrual_interval))
        per_minute = max(1, settings.max_destructive_per_minute)
        return cls(
            annotations=TokenBucket(settings.write_rate, burst, now),
            destructive=TokenBucket(per_minute / 60.0, per_minute, now),
            policy=WritePolicy(settings.annotation_interval, settings.annotation_rate_change),
            enforcement=EnforcementPolicy(
                mode=settings.enforcement,
                protected_namespaces=frozenset(settings.protected_namespaces),
                outside=OutsideFence.of(settings.outside_namespaces),
            ),
        )


@dataclass
class Work:
    """The background queues: the passes only decide and hand work to these."""

    writer: StatusWriter
    actions: KeyedWorkQueue  # destructive calls and resumes, one budget at a time
    notifications: KeyedWorkQueue  # Slack, webhook, PagerDuty, one budget at a time
    events: KeyedWorkQueue  # Kubernetes Events

    async def close(self) -> None:
        for queue in (self.actions, self.notifications, self.events):
            await queue.close()


@dataclass
class Runtime:
    settings: OperatorSettings
    kube: KubeClient
    prices: PriceBook
    leader: LeaderElector | AlwaysLeader
    patch_of: PatchOf
    clock: Callable[[], datetime] = utc_now
    monotonic: Callable[[], float] = time.monotonic
    metrics: Metrics = field(default_factory=Metrics)
    budgets: BudgetBook = field(default_factory=BudgetBook)
    pods: SpendBook = field(default_factory=SpendBook)
    limits: Limits = field(init=False)
    work: Work = field(init=False)
    notifier: Notifier = field(init=False)
    evaluated: bool = False  # every budget evaluated once this term: budgets annotations are known
    gpu_sources: tuple[GpuUsageSource, ...] = ()  # sources beyond the flags' (the demo's simulated DCGM)
    gpu: GpuFeed = field(init=False)
    billing: BillingFeed | None = None  # with --billing-store
    price_feeds: PriceFeeds | None = None  # with --price-feed
    live: LiveFeed | None = None  # the live prices of the last refresh
    factors: RateFactors | None = None  # the effective-rate factors of the last reconciliation
    vms: VMFeed | None = None  # with --cloud
    slurm: JobFeed | None = None  # with --slurm
    heap: HeapTrimmer = field(init=False)

    def __post_init__(self) -> None:
        self.limits = Limits.from_settings(self.settings, self.monotonic())
        self.heap = HeapTrimmer(self.settings.trim_heap_every)
        self.gpu = GpuFeed((), None, FeedSettings(stale_after=timedelta(seconds=45)))  # until started
        self.notifier = Notifier(
            slack_base_url=self.settings.slack_api_url,
            pagerduty_url=self.settings.pagerduty_url,
            retry=RetryPolicy(
                max_attempts=self.settings.notify_attempts, base_delay=self.settings.notify_backoff
            ),
        )

    def start_gpu_feed(self, pods: Callable[[], Iterable[PodRecord]]) -> GpuFeed:
        """The telemetry sources the settings name (plus ``gpu_sources``), scraping targets found
        among ``pods``. Raises ValueError for a malformed URL or selector."""
        settings = self.settings
        sources = sources_from_settings(
            prometheus_url=settings.prometheus_url,
            dcgm_exporter_selector=settings.dcgm_exporter_selector,
            agent_selector=settings.agent_selector,
            pods=pods,
            dcgm_exporter_port=settings.dcgm_exporter_port,
            agent_port=settings.agent_port,
        )
        stale = settings.telemetry_stale_after or 3 * settings.telemetry_interval
        self.gpu = GpuFeed(
            [*sources, *self.gpu_sources],
            counter_source(settings.prometheus_url),
            FeedSettings(stale_after=timedelta(seconds=stale)),
        )
        return self.gpu

    def start_work(self) -> Work:
        """The queues need a running event loop; called from the operator's startup."""
        self.work = Work(
            writer=StatusWriter(
                self.kube,
                self.metrics,
                monotonic=self.monotonic,
                acting=self.leader.acting,
                patch_of=self.patch_of,
            ),
            actions=KeyedWorkQueue("actions", concurrency=ACTION_CONCURRENCY, capacity=QUEUE_CAPACITY),
            notifications=KeyedWorkQueue(
                "notifications", concurrency=NOTIFY_CONCURRENCY, capacity=QUEUE_CAPACITY
            ),
            events=KeyedWorkQueue("events", concurrency=EVENT_CONCURRENCY, capacity=QUEUE_CAPACITY),
        )
        self.metrics.leader.set(1 if self.acting() else 0)
        return self.work

    def acting(self) -> bool:
        return self.leader.acting()

    def reprice(self) -> None:
        """A new price book with the current live prices and factors (the next pass re-prices nodes)."""
        self.prices = self.prices.with_feeds(self.live, self.factors)

    def forget_budget(self, key: BudgetKey) -> None:
        self.budgets.forget(key)
        if hasattr(self, "work"):
            self.work.writer.forget(key)

    def leadership_changed(self, leading: bool) -> None:
        """A new term starts from what is stored: budget statuses and pod annotations."""
        self.budgets.clear()
        self.pods.clear()
        if self.billing is not None:
            self.billing.buffer.clear()
        if self.vms is not None:
            self.vms.clear()
        if self.slurm is not None:
            self.slurm.clear()
        self.evaluated = False
        self.metrics.leader.set(1 if leading else 0)


def runtime_of(memo: object) -> Runtime:
    """The runtime kopf hands every handler through its memo."""
    getter = getattr(memo, "get", None)
    runtime = getter("runtime") if callable(getter) else getattr(memo, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("costwarden runtime missing from the operator memo")
    return runtime
