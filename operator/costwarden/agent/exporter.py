"""The agent's metrics, on a registry of its own, served over HTTP at ``/metrics``.

Metric names and labels (the operator's ``--agent-selector`` source reads these; docs/agent.md):

- ``costwarden_gpu_utilization_percent{namespace,pod,pod_uid,gpu}``: NVML GPU utilisation, 0-100;
- ``costwarden_gpu_memory_used_bytes{namespace,pod,pod_uid,gpu}``: device memory in use;
- ``costwarden_gpu_power_watts{namespace,pod,pod_uid,gpu}``: board power draw;
- ``costwarden_gpu_process_info{gpu,pid,pod_uid}``: 1 for each process on each GPU;
- ``costwarden_agent_up``: 1 when NVML answered the last pass, 0 when it did not;
- ``costwarden_agent_last_sample_timestamp_seconds``: when the last pass ran (Unix time), so a
  reader can tell a fresh figure from a stuck agent;
- ``costwarden_agent_scrape_errors_total{call}``: failed NVML calls by function name, and
  ``proc_cgroup`` for PIDs whose cgroup file could not be read.

Every series of a GPU carries the GPU's own figures; ``pod_uid=""`` (and ``pod=""``) marks a GPU
with no process in a pod (costwarden.agent.series). The collector reads the sampler's last pass;
a scrape never calls NVML.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from costwarden.agent.sampler import AgentView

GPU_LABELS = ("namespace", "pod", "pod_uid", "gpu")
PROCESS_LABELS = ("gpu", "pid", "pod_uid")

UTILIZATION = "costwarden_gpu_utilization_percent"
MEMORY = "costwarden_gpu_memory_used_bytes"
POWER = "costwarden_gpu_power_watts"
PROCESS_INFO = "costwarden_gpu_process_info"
UP = "costwarden_agent_up"
LAST_SAMPLE = "costwarden_agent_last_sample_timestamp_seconds"
ERRORS = "costwarden_agent_scrape_errors_total"


class AgentCollector(Collector):
    """Turns the sampler's last ``AgentView`` into metric families at each scrape."""

    def __init__(self, view: Callable[[], AgentView]) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        view = self._view()
        utilization = GaugeMetricFamily(
            UTILIZATION, "GPU utilisation (NVML), percent, one series per pod on the GPU", labels=GPU_LABELS
        )
        memory = GaugeMetricFamily(MEMORY, "GPU device memory in use (NVML), bytes", labels=GPU_LABELS)
        power = GaugeMetricFamily(POWER, "GPU board power draw (NVML), watts", labels=GPU_LABELS)
        for gpu in view.series.gpus:
            labels = [gpu.namespace, gpu.pod, gpu.pod_uid, gpu.gpu]
            if gpu.utilization_percent is not None:
                utilization.add_metric(labels, gpu.utilization_percent)
            if gpu.memory_used_bytes is not None:
                memory.add_metric(labels, gpu.memory_used_bytes)
            if gpu.power_watts is not None:
                power.add_metric(labels, gpu.power_watts)
        processes = GaugeMetricFamily(
            PROCESS_INFO, "A process on a GPU (1), with its pod UID (empty: in no pod)", labels=PROCESS_LABELS
        )
        for process in view.series.processes:
            processes.add_metric([process.gpu, str(process.pid), process.pod_uid], 1)
        yield from (utilization, memory, power, processes)
        yield GaugeMetricFamily(UP, "1 when NVML answered the agent's last pass", value=1 if view.up else 0)
        if view.sampled_at is not None:
            yield GaugeMetricFamily(
                LAST_SAMPLE, "Unix time of the agent's last pass over the GPUs", value=view.sampled_at
            )
        errors = CounterMetricFamily(
            ERRORS, "NVML calls that failed, and PIDs whose cgroup could not be read", labels=("call",)
        )
        for call, count in sorted(view.errors.items()):
            errors.add_metric([call], count)
        yield errors


def registry_for(view: Callable[[], AgentView]) -> CollectorRegistry:
    """A registry holding the agent's metrics only (no process or platform collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(view))
    return registry


def serve(registry: CollectorRegistry, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``registry`` at ``http://host:port/metrics`` on a daemon thread (port 0: any free one,
    ``server.server_port`` tells which)."""
    return start_http_server(port, addr=host, registry=registry)
