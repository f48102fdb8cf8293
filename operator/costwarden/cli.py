"""The ``costwarden`` command: ``run`` the operator, ``resume`` a budget's workloads, the node
``agent``, and the optional ``sim``, ``demo`` and ``top``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import importlib
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from costwarden import __version__

if TYPE_CHECKING:
    from costwarden.operator.settings import OperatorSettings


@dataclass(frozen=True, slots=True)
class OptionalCommand:
    """A subcommand whose code and dependencies are not part of the operator (a package extra).

    ``module`` defines ``add_subparser(subparsers)`` and ``run(args) -> int``. It is imported by
    name, and only when its command is the one being run, so `costwarden run` never loads the
    stand-in, the demo, rich or the node agent's NVML bindings (``extra`` None: the command's
    dependencies are the package's own; nvidia-ml-py is in the image). import-linter does not see
    imports by name, so its "lean-image" contract covers only the static imports of this module;
    tests/unit/test_import_graph.py and tests/chart/test_image.py check what `costwarden run` loads
    when it runs.
    """

    module: str
    extra: str | None
    help: str


OPTIONAL_COMMANDS: dict[str, OptionalCommand] = {
    "sim": OptionalCommand(
        "costwarden.sim.cli", "sim", "the Kubernetes API stand-in used by tests and demos"
    ),
    "demo": OptionalCommand(
        "costwarden.demo.runner", "demo", "the guardrail demo on an embedded stand-in cluster"
    ),
    "top": OptionalCommand("costwarden.top", "top", "live view of budgets and the most expensive pods"),
    "agent": OptionalCommand(
        "costwarden.agent.command", None, "the node agent: per-pod GPU utilisation, memory, power (NVML)"
    ),
    # duckdb is a runtime dependency (the operator will read the store), but `costwarden run`
    # loads neither it nor this command.
    "billing": OptionalCommand(
        "costwarden.billing.cli", None, "import cloud billing exports into a DuckDB store; summarise it"
    ),
}


class MissingExtra(Exception):
    """An optional command's dependencies are not installed."""


def load_command(name: str) -> ModuleType:
    """The module of optional command ``name``; MissingExtra names the extra when a dependency is absent."""
    command = OPTIONAL_COMMANDS[name]
    try:
        return importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "costwarden":
            raise
        if command.extra is None:
            raise MissingExtra(
                f"costwarden {name} needs {exc.name}, a dependency of costwarden itself: reinstall costwarden"
            ) from exc
        raise MissingExtra(
            f"costwarden {name} needs the '{command.extra}' extra: pip install 'costwarden[{command.extra}]'"
        ) from exc


def _positive(kind: type[float] | type[int]):  # type: ignore[no-untyped-def]
    def parse(text: str) -> float | int:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


PRICE_FEEDS = ("aws", "gcp", "azure")
TRIM_HEAP_EVERY = 300.0  # seconds between malloc_trim calls in costwarden run (operator/heap.py)


def _feeds(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in PRICE_FEEDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown price feed {', '.join(unknown) or repr(text)}: choose from {', '.join(PRICE_FEEDS)}"
        )
    return names


def _cloud(text: str) -> str:
    from costwarden.clouds.factory import parse_cloud_spec  # no SDK: adapters load when used

    try:
        parse_cloud_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _outside_namespace(text: str) -> str:
    """A namespace name (an RFC 1123 label), or ``*`` for every namespace."""
    label = text.strip()
    if label == "*" or (
        0 < len(label) <= 63
        and label[0].isalnum()
        and label[-1].isalnum()
        and all(c.isdigit() or ("a" <= c <= "z") or c == "-" for c in label)
    ):
        return label
    raise argparse.ArgumentTypeError(f"not a namespace name (or *): {text!r}")


def _factor(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if not value.is_finite() or value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number > 1, got {text}")
    return value


def _add_outside(run: argparse.ArgumentParser) -> None:
    """Flags for workloads outside Kubernetes: SkyPilot clusters' cloud VMs and Slurm jobs."""
    clouds = run.add_argument_group("cloud VMs of SkyPilot clusters")
    clouds.add_argument(
        "--cloud",
        type=_cloud,
        action="append",
        default=[],
        dest="clouds",
        help="find SkyPilot VMs (repeatable): aws:REGION[,REGION...], gcp:PROJECT, azure:SUBSCRIPTION; "
        "credentials from each SDK's default chain",
    )
    clouds.add_argument(
        "--cloud-interval",
        type=_positive(float),
        default=60.0,
        help="seconds between polls of each cloud scope",
    )
    clouds.add_argument(
        "--cloud-stale-after",
        type=_positive(float),
        default=None,
        help="seconds without a complete poll after which no VM is stopped or terminated "
        "(default: 3 x --cloud-interval)",
    )
    slurm = run.add_argument_group("Slurm jobs")
    slurm.add_argument(
        "--slurm",
        action="append",
        default=[],
        metavar="NAME",
        help="read this Slurm cluster's jobs (repeatable) with the client commands on PATH "
        "(SLURM_CONF honoured; several clusters: --clusters NAME), or through --slurmrestd-url",
    )
    slurm.add_argument("--slurmrestd-url", help="slurmrestd serving the one --slurm cluster")
    slurm.add_argument(
        "--slurmrestd-token-file",
        type=Path,
        help="file holding slurmrestd's JWT (a Secret mounted as a file)",
    )
    slurm.add_argument("--slurmrestd-user", help="user name sent with the JWT (X-SLURM-USER-NAME)")
    slurm.add_argument(
        "--slurm-interval", type=_positive(float), default=30.0, help="seconds between reads of each cluster"
    )
    slurm.add_argument(
        "--slurm-stale-after",
        type=_positive(float),
        default=None,
        help="seconds without a complete read after which no job is cancelled or suspended "
        "(default: 3 x --slurm-interval)",
    )
    fence = run.add_argument_group("which budgets may reach VMs and Slurm jobs (docs/security.md)")
    fence.add_argument(
        "--outside-namespace",
        type=_outside_namespace,
        action="append",
        default=[],
        dest="outside_namespaces",
        metavar="NAMESPACE",
        help="only CostBudgets of this namespace may cover and stop cloud VMs and Slurm jobs "
        "(repeatable; * for every namespace, the default, warned about at start)",
    )


def _add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser("run", help="run the operator against a cluster")
    run.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster, then $KUBECONFIG)"
    )
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        dest="namespaces",
        help="watch only these (repeatable)",
    )
    run.add_argument(
        "--interval", type=_positive(float), default=10.0, help="seconds between budget evaluations"
    )
    run.add_argument(
        "--status-interval", type=_positive(float), default=10.0, help="max seconds between status writes"
    )
    run.add_argument(
        "--accrual-interval", type=_positive(float), default=10.0, help="seconds between pod passes"
    )
    run.add_argument("--metrics-port", type=int, default=9090, help="port for /metrics (0 disables)")
    run.add_argument("--price-overrides", type=Path, help="YAML file of price overrides")
    run.add_argument("--dry-run", action="store_true", help="compute and log, write nothing to the cluster")
    run.add_argument(
        "--annotation-interval",
        type=_positive(float),
        default=60.0,
        help="min seconds between spend writes per pod",
    )
    run.add_argument(
        "--write-rate", type=_positive(float), default=20.0, help="annotation writes per second (global)"
    )
    run.add_argument(
        "--lease",
        dest="lease_name",
        help="leader election among replicas: the coordination.k8s.io Lease to hold (default: standalone)",
    )
    run.add_argument(
        "--lease-namespace",
        default="default",
        help="namespace of the Lease (the operator's own, in the chart)",
    )
    run.add_argument(
        "--lease-identity", default="", help="this replica's name in the Lease (default: host name + random)"
    )
    run.add_argument(
        "--lease-duration",
        type=_positive(float),
        default=15.0,
        help="seconds a Lease may go unrenewed before a standby takes over",
    )
    run.add_argument(
        "--renew-deadline",
        type=_positive(float),
        default=10.0,
        help="the leader stops acting this many seconds after its last renewal began (< lease duration)",
    )
    run.add_argument(
        "--retry-period", type=_positive(float), default=2.0, help="seconds between Lease renewals and checks"
    )
    run.add_argument("--prometheus-url", help="Prometheus HTTP API holding DCGM metrics (and unit counters)")
    run.add_argument(
        "--dcgm-exporter-selector", help="label selector of dcgm-exporter pods to scrape (port 9400)"
    )
    run.add_argument(
        "--agent-selector", help="label selector of costwarden node agents to scrape (port 9401)"
    )
    run.add_argument(
        "--telemetry-interval", type=_positive(float), default=15.0, help="seconds between telemetry samples"
    )
    run.add_argument(
        "--telemetry-stale-after",
        type=_positive(float),
        default=None,
        help="a GPU sample older than this many seconds is unknown, never idle (default: 3 intervals)",
    )
    run.add_argument(
        "--enforcement",
        choices=("on", "dry-run", "off"),
        default="on",
        help="global switch over Scale/Suspend/Kill: dry-run records what would happen, off records Skipped",
    )
    run.add_argument(
        "--protected-namespace",
        action="append",
        default=[],
        dest="protected",
        help="never act in this namespace (repeatable; kube-system and --operator-namespace always are)",
    )
    run.add_argument("--operator-namespace", help="the operator's own namespace (protected)")
    hook = run.add_argument_group("admission guard (spec.enforcement.blockNewPods)")
    hook.add_argument(
        "--webhook-port", type=int, default=0, help="HTTPS port of the webhook server; 0: no guard"
    )
    hook.add_argument("--webhook-addr", default="0.0.0.0", help="address the webhook server listens on")
    hook.add_argument("--webhook-host", help="host name the API server calls (certificate SAN)")
    hook.add_argument("--webhook-cert-dir", type=Path, help="directory with tls.crt, tls.key (and ca.crt)")
    hook.add_argument(
        "--webhook-client-ca",
        type=Path,
        metavar="FILE",
        help="PEM CA bundle: only clients presenting a certificate it signed complete a TLS handshake; "
        "the API server presents one only once its --admission-control-config-file names this webhook "
        "(docs/security.md), until then every call fails; default: any client",
    )
    hook.add_argument(
        "--webhook-client-name",
        action="append",
        default=[],
        dest="webhook_client_names",
        metavar="CN",
        help="with --webhook-client-ca: accept only client certificates with this subject CN (repeatable)",
    )
    hook.add_argument(
        "--webhook-failure-policy",
        choices=("Ignore", "Fail"),
        default="Ignore",
        help="Ignore (default): pods are admitted when the operator is unreachable; Fail blocks them",
    )
    hook.add_argument(
        "--no-webhook-managed",
        dest="webhook_managed",
        action="store_false",
        help="the ValidatingWebhookConfiguration is installed by the Helm chart, not by the operator",
    )
    money = run.add_argument_group("billing truth and live prices")
    money.add_argument("--billing-store", type=Path, help="DuckDB file of billing lines and our estimates")
    money.add_argument(
        "--billing-source",
        action="append",
        default=[],
        dest="billing_sources",
        help="billing export to sync (repeatable): s3://bucket/prefix, bq://project.dataset.table, "
        "azure://account/container/prefix, file:///path",
    )
    money.add_argument(
        "--billing-interval",
        type=_positive(float),
        default=3600.0,
        help="seconds between billing syncs and reconciliations",
    )
    money.add_argument(
        "--billing-stale-after",
        type=_positive(float),
        default=72.0,
        help="hours without new billing before budgets show BillingStale",
    )
    money.add_argument(
        "--billing-anomaly-factor",
        type=_factor,
        default=Decimal(2),
        help="billed / estimated cost of a resource-hour above which it is a billing anomaly",
    )
    money.add_argument(
        "--price-feed",
        type=_feeds,
        default=(),
        dest="price_feeds",
        help="live list and spot prices: a comma-separated list of aws, gcp, azure",
    )
    money.add_argument(
        "--price-feed-interval",
        type=_positive(float),
        default=3600.0,
        help="seconds between refreshes of the live price feeds",
    )
    _add_outside(run)
    run.add_argument(
        "--max-destructive-per-minute",
        type=_positive(int),
        default=30,
        help="cap on Scale/Suspend/Kill actions",
    )
    run.add_argument("--verbose", "-v", action="store_true")
    # Tests only (docs/design.md): the operator's clock reads an RFC 3339 time from this file, so a
    # test running `costwarden run` as a process moves time by hand (operator/fileclock.py).
    run.add_argument("--clock-file", type=Path, help=argparse.SUPPRESS)


def operator_settings(args: argparse.Namespace) -> OperatorSettings:
    """The operator's settings from ``costwarden run``'s arguments."""
    from costwarden.operator.settings import OperatorSettings

    return OperatorSettings(
        kubeconfig=args.kubeconfig,
        namespaces=tuple(args.namespaces),
        interval=args.interval,
        accrual_interval=args.accrual_interval,
        status_interval=args.status_interval,
        metrics_port=args.metrics_port,
        price_overrides=args.price_overrides,
        dry_run=args.dry_run,
        annotation_interval=args.annotation_interval,
        annotation_rate_change=Decimal("0.01"),
        write_rate=args.write_rate,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace,
        lease_identity=args.lease_identity,
        lease_duration=args.lease_duration,
        renew_deadline=args.renew_deadline,
        retry_period=args.retry_period,
        prometheus_url=args.prometheus_url,
        dcgm_exporter_selector=args.dcgm_exporter_selector,
        agent_selector=args.agent_selector,
        telemetry_interval=args.telemetry_interval,
        telemetry_stale_after=args.telemetry_stale_after or 0.0,
        enforcement=args.enforcement,
        protected_namespaces=tuple(
            sorted(
                {
                    "kube-system",
                    *args.protected,
                    *([args.operator_namespace] if args.operator_namespace else []),
                }
            )
        ),
        max_destructive_per_minute=args.max_destructive_per_minute,
        billing_store=args.billing_store,
        billing_sources=tuple(args.billing_sources),
        billing_interval=args.billing_interval,
        billing_stale_after=args.billing_stale_after * 3600.0,
        billing_anomaly_factor=args.billing_anomaly_factor,
        price_feeds=tuple(args.price_feeds),
        price_feed_interval=args.price_feed_interval,
        outside_namespaces=tuple(sorted(set(args.outside_namespaces))) or ("*",),
        clouds=tuple(args.clouds),
        cloud_interval=args.cloud_interval,
        cloud_stale_after=args.cloud_stale_after or 0.0,
        slurm=tuple(dict.fromkeys(args.slurm)),
        slurmrestd_url=args.slurmrestd_url,
        slurmrestd_token_file=args.slurmrestd_token_file,
        slurmrestd_user=args.slurmrestd_user,
        slurm_interval=args.slurm_interval,
        slurm_stale_after=args.slurm_stale_after or 0.0,
        webhook_port=args.webhook_port,
        webhook_addr=args.webhook_addr,
        webhook_host=args.webhook_host,
        webhook_cert_dir=args.webhook_cert_dir,
        webhook_failure_policy=args.webhook_failure_policy,
        webhook_managed=args.webhook_managed,
        webhook_client_ca=args.webhook_client_ca,
        webhook_client_names=tuple(dict.fromkeys(args.webhook_client_names)),
    )


def _run(args: argparse.Namespace) -> int:
    from costwarden.operator.app import ConfigurationError, run_operator
    from costwarden.operator.fileclock import FileClock
    from costwarden.operator.runtime import utc_now

    settings = dataclasses.replace(
        operator_settings(args), freeze_heap_when_synced=True, trim_heap_every=TRIM_HEAP_EVERY
    )
    try:
        clock = utc_now if args.clock_file is None else FileClock(args.clock_file)
    except ValueError as exc:
        print(f"costwarden: {exc}", file=sys.stderr)
        return 2
    # The engine allocates many small, short-lived objects per pass; freezing the startup heap (and
    # again once the cluster is loaded) and collecting less often keeps full collections out of
    # the passes (bench/RESULTS.md).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        asyncio.run(run_operator(settings, clock=clock))
    except ConfigurationError as exc:
        print(f"costwarden: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def build_parser(load: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; of the optional commands only those in ``load`` (default: all) get
    their own arguments, the others are listed by name and help."""
    loaded = set(OPTIONAL_COMMANDS if load is None else load)
    parser = argparse.ArgumentParser(
        prog="costwarden",
        description="Real-time cost guardrails for GPU workloads on Kubernetes. sim, demo and top need "
        "the package extras of the same names, e.g. pip install 'costwarden[demo]'.",
    )
    parser.add_argument("--version", action="version", version=f"costwarden {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_run(subparsers)
    for name, command in OPTIONAL_COMMANDS.items():
        if name in loaded:
            load_command(name).add_subparser(subparsers)
        else:
            subparsers.add_parser(name, help=command.help)
    resume = subparsers.add_parser("resume", help="restore what a budget scaled down or suspended")
    resume.add_argument("budget", help="the CostBudget's name")
    resume.add_argument("--namespace", "-n", default="default")
    resume.add_argument("--kubeconfig", type=Path)
    return parser


def _resume(args: argparse.Namespace) -> int:
    """Ask the operator to resume: it acts once spend is back under the threshold that fired."""
    from datetime import UTC, datetime

    from costwarden.operator.kube import KubeClient, WriteResult, load_configuration
    from costwarden.operator.resume import RESUME_ANNOTATION

    kube = KubeClient(load_configuration(args.kubeconfig))

    async def request() -> WriteResult:
        try:
            stamp = datetime.now(UTC).isoformat(timespec="microseconds")  # each request its own value
            return await kube.annotate_budget(args.namespace, args.budget, {RESUME_ANNOTATION: stamp})
        finally:
            await kube.close()

    result = asyncio.run(request())
    if result is not WriteResult.DONE:
        print(
            f"costwarden: could not annotate CostBudget {args.namespace}/{args.budget}: {result.value}",
            file=sys.stderr,
        )
        return 1
    print(
        f"resume requested for CostBudget {args.namespace}/{args.budget}; the operator restores its "
        "scaled and suspended workloads once spend is under the threshold that acted (see status.actions)"
    )
    return 0


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first word that is not an option (the top level's options,
    --help and --version, take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    command = _command_in(words)
    try:
        parser = build_parser(load=[command] if command in OPTIONAL_COMMANDS else [])
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 2
    args = parser.parse_args(words)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "run":
        if not args.verbose:
            logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # no line per timer run
        return _run(args)
    if args.command == "resume":
        return _resume(args)
    if args.command in OPTIONAL_COMMANDS:
        status: int = load_command(args.command).run(args)
        return status
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
