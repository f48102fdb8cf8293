"""Starting the operator: runtime, kopf settings, metrics server; in-process or on a thread."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kopf
from prometheus_client import start_http_server

from costwarden.engine.status_patch import status_merge_patch
from costwarden.operator import admission
from costwarden.operator.handlers import build_registry
from costwarden.operator.kube import KubeClient, load_configuration
from costwarden.operator.leader import AlwaysLeader, LeaderElector, LeaseSettings
from costwarden.operator.runtime import Runtime, utc_now
from costwarden.operator.settings import OperatorSettings
from costwarden.operator.watches import start_watches
from costwarden.pricing import PriceBook, load_bundled_catalog, load_overrides_text
from costwarden.telemetry.samples import GpuUsageSource

if TYPE_CHECKING:
    from costwarden.billing.sources import BillingSource
    from costwarden.clouds.base import VMInventory
    from costwarden.operator.jobfeed import JobFeed
    from costwarden.operator.vmfeed import VMFeed
    from costwarden.slurm.base import JobSource

log = logging.getLogger(__name__)


class ConfigurationError(Exception):
    """A setting or file the operator cannot start with; the message names it."""


def build_runtime(
    settings: OperatorSettings,
    clock: Callable[[], datetime] = utc_now,
    gpu_sources: tuple[GpuUsageSource, ...] = (),
    vm_inventories: tuple[VMInventory, ...] = (),
    job_sources: tuple[JobSource, ...] = (),
) -> Runtime:
    """The runtime the settings describe; ``gpu_sources`` and ``vm_inventories`` are added to the
    telemetry sources and ``--cloud`` scopes the settings name (the demo's simulated DCGM and cloud);
    ``job_sources`` to the ``--slurm`` clusters."""
    try:
        # Real time whatever the operator's clock: TLS checks the CA's validity against it.
        admission.check_settings(settings, utc_now())
    except admission.WebhookSettingsError as exc:
        raise ConfigurationError(str(exc)) from exc
    overrides = None
    if settings.price_overrides is not None:
        path = Path(settings.price_overrides)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigurationError(f"price overrides file {path}: {exc.strerror}") from exc
        try:
            overrides = load_overrides_text(text, str(path))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
    try:
        configuration = load_configuration(settings.kubeconfig)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot load Kubernetes credentials ({settings.kubeconfig or 'in-cluster'}): {exc}"
        ) from exc
    kube = KubeClient(configuration, dry_run=settings.dry_run)
    sources = billing_sources(settings)  # before anything starts: a bad URI is a configuration error
    runtime = Runtime(
        settings=settings,
        kube=kube,
        prices=PriceBook(load_bundled_catalog(), overrides),
        leader=AlwaysLeader(),
        patch_of=status_merge_patch,
        clock=clock,
        gpu_sources=gpu_sources,
    )
    if settings.billing_store is not None:
        from costwarden.operator.billingfeed import BillingFeed  # DuckDB: only with a store

        runtime.billing = BillingFeed(settings, sources, runtime.metrics, clock, runtime.monotonic)
    if settings.price_feeds:
        from costwarden.pricefeeds.refresher import PriceFeeds  # cloud SDKs: only with feeds

        clients = {"azure_base_url": settings.azure_prices_url} if settings.azure_prices_url else {}
        runtime.price_feeds = PriceFeeds.from_names(
            settings.price_feeds, settings.price_feed_interval, **clients
        )
    runtime.vms = vm_feed(settings, vm_inventories)
    runtime.slurm = job_feed(settings, job_sources)
    warning = settings.outside_warning()
    if warning is not None:
        log.warning("SECURITY: %s", warning)
    if settings.lease_name:
        runtime.leader = LeaderElector(
            kube,
            lease_settings(settings),
            # Real time, whatever the operator's clock (a test's or the demo's): a renewal must
            # change the record, or a standby sees it unrenewed and takes over from a live leader.
            clock=utc_now,
            monotonic=runtime.monotonic,
            on_transition=runtime.leadership_changed,
        )
    return runtime


def vm_feed(settings: OperatorSettings, extra: tuple[VMInventory, ...] = ()) -> VMFeed | None:
    """The ``--cloud`` scopes (no cloud is called here) and ``extra``; ConfigurationError for a
    bad value."""
    if not settings.clouds and not extra:
        return None
    from costwarden.clouds.factory import inventories_from_specs, parse_cloud_spec  # SDKs: only with --cloud
    from costwarden.operator.vmfeed import VMFeed, VMFeedSettings

    try:
        specs = [parse_cloud_spec(text) for text in settings.clouds]
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    feed_settings = VMFeedSettings(interval=settings.cloud_interval, stale_after=settings.cloud_stale_after)
    return VMFeed([*inventories_from_specs(specs), *extra], feed_settings)


def job_feed(settings: OperatorSettings, extra: tuple[JobSource, ...] = ()) -> JobFeed | None:
    """The ``--slurm`` clusters (nothing is run here) and ``extra``; ConfigurationError for a
    combination that cannot work."""
    if not settings.slurm and not extra:
        if settings.slurmrestd_url:
            raise ConfigurationError("--slurmrestd-url needs --slurm NAME (the cluster it serves)")
        return None
    from costwarden.operator.jobfeed import JobFeed
    from costwarden.operator.polling import PollSettings

    sources: list[JobSource] = list(extra)
    if settings.slurmrestd_url:
        if len(settings.slurm) != 1:
            raise ConfigurationError("--slurmrestd-url serves one cluster: give exactly one --slurm NAME")
        if settings.slurmrestd_token_file is None:
            raise ConfigurationError(
                "--slurmrestd-url needs --slurmrestd-token-file (its JWT, from a Secret)"
            )
        from costwarden.slurm.rest import RestSource

        sources.append(
            RestSource(
                settings.slurm[0],
                settings.slurmrestd_url,
                settings.slurmrestd_token_file,
                user=settings.slurmrestd_user,
            )
        )
    elif settings.slurm:  # only extra sources (the demo's simulated Slurm): no client commands
        from costwarden.slurm.commands import CommandSource

        several = len(settings.slurm) > 1
        sources.extend(CommandSource(name, clusters_flag=several) for name in settings.slurm)
    poll = PollSettings(interval=settings.slurm_interval, stale_after=settings.slurm_stale_after)
    return JobFeed(sources, poll)


def billing_sources(settings: OperatorSettings) -> list[BillingSource]:
    """The ``--billing-source`` URIs as sources (no cloud is called here); ConfigurationError
    naming the URI when one is malformed, or when there is no store to sync them into."""
    if settings.billing_sources and settings.billing_store is None:
        raise ConfigurationError(
            "--billing-source needs --billing-store FILE (the DuckDB store to sync into)"
        )
    if not settings.billing_sources:
        return []
    from costwarden.billing.sources import source_from_uri

    temp_dir = Path(settings.billing_store).parent if settings.billing_store is not None else None
    sources = []
    for uri in settings.billing_sources:
        try:
            sources.append(source_from_uri(uri, temp_dir=temp_dir))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
    return sources


def lease_settings(settings: OperatorSettings) -> LeaseSettings:
    if not settings.lease_name:
        raise ConfigurationError("leader election needs a Lease name (--lease)")
    identity = settings.lease_identity or f"{socket.gethostname()}-{secrets.token_hex(4)}"
    try:
        return LeaseSettings(
            name=settings.lease_name,
            namespace=settings.lease_namespace,
            identity=identity,
            lease_duration=settings.lease_duration,
            renew_deadline=settings.renew_deadline,
            retry_period=settings.retry_period,
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    ks = kopf.OperatorSettings()
    ks.posting.level = logging.WARNING  # no Event per successful handler run
    ks.peering.standalone = True  # leadership is our Lease; kopf serves admission on every replica
    ks.persistence.finalizer = "costwarden.dev/finalizer"
    ks.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="costwarden.dev")
    ks.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="costwarden.dev")
    ks.watching.server_timeout = 300
    ks.watching.client_timeout = 330
    ks.watching.connect_timeout = 10
    ks.networking.request_timeout = 30
    admission.configure(ks, settings)
    return ks


async def run_operator(
    settings: OperatorSettings,
    runtime: Runtime | None = None,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    runtime = runtime or build_runtime(settings, clock)
    metrics_server = None
    if settings.metrics_port:
        metrics_server, _ = start_http_server(
            settings.metrics_port, settings.metrics_host, registry=runtime.metrics.registry
        )
        log.info("metrics on http://%s:%s/metrics", settings.metrics_host, settings.metrics_port)
    try:
        await kopf.operator(
            registry=build_registry(settings, start_watches),
            settings=kopf_settings(settings),
            memo=kopf.Memo(runtime=runtime),
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            standalone=True,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()


class OperatorThread:
    """The real operator on its own thread and event loop (tests, benchmarks, the demo)."""

    def __init__(
        self,
        settings: OperatorSettings,
        clock: Callable[[], datetime] = utc_now,
        gpu_sources: tuple[GpuUsageSource, ...] = (),
        vm_inventories: tuple[VMInventory, ...] = (),
        job_sources: tuple[JobSource, ...] = (),
    ) -> None:
        self.settings = settings
        self.runtime = build_runtime(settings, clock, gpu_sources, vm_inventories, job_sources)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="costwarden-operator", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self.error = exc
            log.exception("operator thread ended with an error")
        finally:
            self._ready.set()
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        ready = asyncio.Event()
        waiter = asyncio.create_task(ready.wait())
        waiter.add_done_callback(lambda _: self._ready.set())
        await run_operator(self.settings, self.runtime, stop_flag=self._stop, ready_flag=ready)

    def start(self, timeout: float = 30.0) -> OperatorThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("operator did not become ready in time")
        if self.error is not None:
            raise RuntimeError("operator failed to start") from self.error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("operator did not stop in time")

    def __enter__(self) -> OperatorThread:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
