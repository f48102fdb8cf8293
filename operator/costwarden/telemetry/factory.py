"""The telemetry sources ``costwarden run`` uses, chosen from its command-line values.

``--prometheus-url URL`` reads DCGM series from Prometheus (and counters for unit economics);
``--dcgm-exporter-selector SELECTOR`` scrapes the dcgm-exporter pods that match (port 9400,
dcgm-exporter's default); ``--agent-selector SELECTOR`` scrapes costwarden's node agents. Any
combination may be given; none gives no sources (the idle rule then has no data and never fires).
A malformed URL or selector raises ValueError here, at start-up, rather than failing every
reading later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from urllib.parse import urlsplit

from costwarden.telemetry.prometheus import PrometheusSource
from costwarden.telemetry.samples import GpuUsageSource
from costwarden.telemetry.scrape import ScrapeSource
from costwarden.telemetry.targets import ExporterPod, exporter_targets, parse_selector

DCGM_EXPORTER_PORT = 9400
"""dcgm-exporter's default listen address is ``:9400`` (its README and Helm chart)."""
AGENT_PORT = 9401
"""Where ``costwarden agent`` serves its metrics by default."""
PROMETHEUS_WINDOW = timedelta(minutes=2)


def sources_from_settings(
    *,
    prometheus_url: str | None = None,
    dcgm_exporter_selector: str | None = None,
    agent_selector: str | None = None,
    pods: Callable[[], Iterable[ExporterPod]] = lambda: (),
    dcgm_exporter_port: int = DCGM_EXPORTER_PORT,
    agent_port: int = AGENT_PORT,
    timeout_s: float = 5.0,
    prometheus_window: timedelta = PROMETHEUS_WINDOW,
) -> list[GpuUsageSource]:
    """The GPU usage sources the values ask for, in the order Prometheus, dcgm-exporter, agents.

    ``pods`` returns the pods the operator knows (its informer's index) on each call; the scrape
    sources pick their endpoints from it by selector and port. ``prometheus_window`` is how far
    back Prometheus is asked for a GPU's latest sample (older ones are not returned at all).
    """
    sources: list[GpuUsageSource] = []
    prometheus = counter_source(prometheus_url, timeout_s=timeout_s, window=prometheus_window)
    if prometheus is not None:
        sources.append(prometheus)
    if dcgm_exporter_selector:
        selector = parse_selector(dcgm_exporter_selector)
        targets = _targets(pods, selector.text, dcgm_exporter_port)
        sources.append(ScrapeSource.dcgm_exporters(targets, selector.text, timeout_s=timeout_s))
    if agent_selector:
        selector = parse_selector(agent_selector)
        targets = _targets(pods, selector.text, agent_port)
        sources.append(ScrapeSource.agents(targets, selector.text, timeout_s=timeout_s))
    return sources


def counter_source(
    prometheus_url: str | None, *, timeout_s: float = 5.0, window: timedelta = PROMETHEUS_WINDOW
) -> PrometheusSource | None:
    """The Prometheus source for ``--prometheus-url`` (also the ``CounterSource`` unit economics
    reads), or None without one."""
    if not prometheus_url:
        return None
    parts = urlsplit(prometheus_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--prometheus-url {prometheus_url!r}: expected http(s)://host[:port][/path]")
    return PrometheusSource(prometheus_url, timeout_s=timeout_s, window=window)


def _targets(pods: Callable[[], Iterable[ExporterPod]], selector: str, port: int) -> Callable[[], list[str]]:
    compiled = parse_selector(selector)
    return lambda: exporter_targets(pods(), compiled, port)
