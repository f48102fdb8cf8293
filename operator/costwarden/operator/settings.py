"""Operator settings as one frozen dataclass, filled from the command line (kopf's pattern)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    """Everything the shell reads; nothing below this reads the environment."""

    kubeconfig: Path | None = None  # None: in-cluster service account, else $KUBECONFIG/~/.kube/config
    namespaces: tuple[str, ...] = ()  # empty: the whole cluster
    interval: float = 10.0  # seconds between evaluations of each budget (how fast a crossing acts)
    status_interval: float = 10.0  # at most this long between status writes when only spend moved
    accrual_interval: float = 10.0  # seconds between passes over all pods
    metrics_port: int = 9090  # 0 disables the /metrics server
    metrics_host: str = "0.0.0.0"
    price_overrides: Path | None = None
    dry_run: bool = False  # compute and log, write nothing to the cluster
    annotation_interval: float = 60.0  # at most one steady-state spend write per pod per this many seconds
    annotation_rate_change: Decimal = Decimal("0.01")  # a relative rate change that is written at once
    write_rate: float = 20.0  # global token bucket for annotation writes: tokens per second
    write_burst: int = 100
    lease_name: str | None = None  # coordination.k8s.io Lease for leader election; None: standalone
    lease_namespace: str = "default"  # where the Lease lives (the chart: the operator's namespace)
    lease_identity: str = ""  # this replica's name in the Lease; "" picks host name + random suffix
    lease_duration: float = 15.0  # a standby takes over once the Lease went unrenewed this long
    renew_deadline: float = 10.0  # the leader stops acting this long after its last renewal began
    retry_period: float = 2.0  # how often the Lease is renewed (or, standing by, checked)
    # GPU telemetry (any combination; none: the idle-GPU rule has no data and never fires)
    prometheus_url: str | None = None  # Prometheus HTTP API holding DCGM series (and unit counters)
    dcgm_exporter_selector: str | None = None  # label selector of dcgm-exporter pods to scrape
    dcgm_exporter_port: int = 9400
    agent_selector: str | None = None  # label selector of costwarden node agents to scrape
    agent_port: int = 9401
    telemetry_interval: float = 15.0  # seconds between samples of every source
    telemetry_stale_after: float = 0.0  # a sample older than this is unknown; 0: 3 x telemetry_interval
    # Billing truth and live prices (docs/billing.md, docs/pricing.md)
    billing_store: Path | None = None  # the DuckDB store; None: no reconciliation
    billing_sources: tuple[str, ...] = ()  # s3://, bq://, azure://, file:// URIs synced into the store
    billing_interval: float = 3600.0  # seconds between syncs of the billing sources and reconciliations
    billing_flush_interval: float = 60.0  # seconds between writes of the estimates to the store
    billing_stale_after: float = 72 * 3600.0  # no billing newer than this: condition BillingStale
    billing_anomaly_factor: Decimal = Decimal(2)  # billed/estimated per resource-hour above this: anomaly
    price_feeds: tuple[str, ...] = ()  # aws, gcp, azure: live list and spot prices
    price_feed_interval: float = 3600.0  # seconds between refreshes of the live price feeds
    # Cloud VMs of SkyPilot clusters (docs/cloud-vms.md)
    clouds: tuple[str, ...] = ()  # --cloud values: aws:REGION[,REGION...], gcp:PROJECT, azure:SUBSCRIPTION
    cloud_interval: float = 60.0  # seconds between polls of each cloud scope
    cloud_stale_after: float = 0.0  # no complete poll for this long: no VM action; 0: 3 x cloud_interval
    # Slurm jobs (docs/slurm.md)
    slurm: tuple[str, ...] = ()  # --slurm NAME: the Slurm clusters whose jobs budgets may cover
    slurmrestd_url: str | None = None  # read and act through slurmrestd instead of the client commands
    slurmrestd_token_file: Path | None = None  # the JWT (a Secret mounted as a file), read on every call
    slurmrestd_user: str | None = None  # X-SLURM-USER-NAME sent with the token, when the token needs it
    slurm_interval: float = 30.0  # seconds between reads of each Slurm cluster
    slurm_stale_after: float = 0.0  # no complete read for this long: no job action; 0: 3 x slurm_interval
    azure_prices_url: str | None = None  # the Retail Prices API; None: the public one (tests, proxies)
    # After the first full passes, move the heap (the cluster's records, compiled specs, ledgers)
    # out of the collector's reach with gc.freeze(): full collections then walk only what passes
    # allocate. costwarden run sets it; in-process operators (tests, the demo) leave it off.
    freeze_heap_when_synced: bool = False
    # Seconds between handing the heap's free pages back to the system (glibc's malloc_trim, after
    # an evaluation pass; operator/heap.py). costwarden run sets 300; 0: never.
    trim_heap_every: float = 0.0
    protected_namespaces: tuple[str, ...] = field(default=("kube-system",))
    # Namespaces whose budgets may cover (and stop) cloud VMs and Slurm jobs, which are in no
    # namespace (docs/security.md); "*": every namespace, warned about at start with --cloud/--slurm.
    outside_namespaces: tuple[str, ...] = ("*",)
    enforcement: str = "on"  # on | dry-run | off: the global switch over Scale/Suspend/Kill
    max_destructive_per_minute: int = 30  # cap on Scale/Suspend/Kill plans carried out, all budgets
    slack_api_url: str | None = None  # slack-sdk base_url (tests, Slack Enterprise proxies)
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    notify_attempts: int = 4  # tries per notification channel before it is recorded as failed
    notify_backoff: float = 1.0  # seconds before the first retry, doubling (Retry-After wins)
    # The admission guard (operator/admission.py says why the failure policy defaults to Ignore).
    webhook_port: int = 0  # HTTPS port of the admission webhook server; 0: no admission guard
    webhook_addr: str = "0.0.0.0"  # where the webhook server listens
    webhook_host: str | None = None  # the host the API server calls (URL, certificate SAN); None: addr
    webhook_failure_policy: str = "Ignore"  # Ignore | Fail
    webhook_cert_dir: Path | None = None  # tls.crt, tls.key (ca.crt); None: a self-signed certificate
    webhook_managed: bool = True  # kopf maintains the ValidatingWebhookConfiguration "costwarden.dev"
    # Client-certificate authentication (docs/security.md, finding 4): a PEM CA bundle; when set,
    # the server completes a TLS handshake only with a client presenting a certificate it signed
    # (the API server's, from its admission configuration). None: any client, as kopf's default.
    webhook_client_ca: Path | None = None
    # With webhook_client_ca: the subject common names (CN) accepted; others get 403 before their
    # request is read. Empty: any certificate the CA signed.
    webhook_client_names: tuple[str, ...] = ()

    def outside_warning(self) -> str | None:
        """What the operator warns about at start: every namespace's CostBudgets may stop the
        cloud VMs or Slurm jobs it reads (no ``--outside-namespace``); None otherwise."""
        reach = [
            what
            for what, on in (("cloud VMs (--cloud)", self.clouds), ("Slurm jobs (--slurm)", self.slurm))
            if on
        ]
        if not reach or "*" not in self.outside_namespaces:
            return None
        return (
            f"anyone who may create a CostBudget in any namespace can have the operator stop or "
            f"delete {' and '.join(reach)} with its own cloud and Slurm credentials: name the "
            "namespaces allowed to with --outside-namespace (chart: operator.outsideNamespaces); "
            "see docs/security.md"
        )
