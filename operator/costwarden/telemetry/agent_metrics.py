"""The metrics costwarden's node agent exports, and how they read back as GPU samples. Pure.

The agent (``costwarden agent``) reads each GPU with NVML and maps the processes on it to pods;
it exports one series per pod and GPU, labelled ``pod_uid`` (the pod's uid, read from the
process's cgroup; ``namespace`` and ``pod`` stay empty, the agent holds no credentials to name
pods) and ``gpu``. A series with a ``pod_uid`` is keyed by it (``samples.uid_key``), else by its
``namespace``/``pod`` labels; one with neither belongs to no pod:

- ``costwarden_gpu_utilization_percent`` (gauge, 0..100)
- ``costwarden_gpu_memory_used_bytes`` (gauge)
- ``costwarden_gpu_power_watts`` (gauge)
- ``costwarden_agent_last_sample_timestamp_seconds`` (gauge, Unix time of the agent's last NVML
  pass): the time of the page's GPU series, so a stuck agent's figures read as old, not fresh.

These names are the contract between the agent (costwarden.agent.exporter, which may not import
this package) and the operator's scrape; tests/unit/test_telemetry_agent_metrics.py checks that
both spell them alike. Nothing here raises: garbage is left out with a reason counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from costwarden.telemetry.samples import GpuSample, uid_key
from costwarden.telemetry.series import Parsed, Series, Tally, gpu_of, number, pod_of

UTILIZATION = "costwarden_gpu_utilization_percent"
MEMORY_USED = "costwarden_gpu_memory_used_bytes"
POWER = "costwarden_gpu_power_watts"
LAST_SAMPLE = "costwarden_agent_last_sample_timestamp_seconds"
METRICS = (UTILIZATION, MEMORY_USED, POWER, LAST_SAMPLE)
LABELS = ("namespace", "pod", "gpu")
NO_UTILIZATION = "memory or power without a utilisation series"

_Key = tuple[str, str, str]


def gpu_samples(series: Iterable[Series], now: datetime) -> Parsed:
    """One ``GpuSample`` per pod and GPU from the agent's series; other metrics are ignored.

    A series without a time of its own is from its agent's last pass (``LAST_SAMPLE`` of the same
    ``job``/``instance``), else from ``now``; of a repeated series, the newest counts.
    """
    series = list(series)
    passes = _last_passes(series)
    tally = Tally()
    fields: dict[_Key, dict[str, tuple[Decimal, datetime]]] = {}
    garbage: set[_Key] = set()
    for s in series:
        if s.name not in METRICS or s.name == LAST_SAMPLE:
            continue
        uid = s.labels.get("pod_uid") or ""
        pod = uid_key(uid) if uid else pod_of(s.labels)
        if isinstance(pod, str):
            tally.skip(pod)
            continue
        gpu = gpu_of(s.labels)
        if gpu is None:
            tally.skip("no gpu label")
            continue
        key = (pod[0], pod[1], gpu)
        known = fields.setdefault(key, {})
        value = number(s.value)
        reason = _wrong(s.name, value)
        if value is None or reason is not None:
            tally.skip(f"{s.name}: {reason}")
            if s.name == UTILIZATION:
                garbage.add(key)
            continue
        at = s.at or passes.get(_target(s), now)
        if s.name not in known or at > known[s.name][1]:
            known[s.name] = (value, at)
    samples: list[GpuSample] = []
    for key, known in fields.items():
        if UTILIZATION not in known:
            if known and key not in garbage:
                tally.skip(NO_UTILIZATION)
            continue
        utilization, at = known[UTILIZATION]
        memory = known.get(MEMORY_USED)
        power = known.get(POWER)
        samples.append(
            GpuSample(
                namespace=key[0],
                pod=key[1],
                gpu=key[2],
                utilization=utilization,
                at=at,
                memory_used_bytes=int(memory[0]) if memory is not None else None,
                power_watts=power[0] if power is not None else None,
            )
        )
    return Parsed(samples=tuple(samples), skipped=tally.counts())


def _target(s: Series) -> tuple[str | None, str | None]:
    return (s.labels.get("job"), s.labels.get("instance"))


def _last_passes(series: list[Series]) -> dict[tuple[str | None, str | None], datetime]:
    passes: dict[tuple[str | None, str | None], datetime] = {}
    for s in series:
        seconds = number(s.value) if s.name == LAST_SAMPLE else None
        if seconds is None or seconds <= 0:
            continue
        try:
            at = datetime.fromtimestamp(float(seconds), UTC)
        except (OverflowError, OSError, ValueError):
            continue
        if _target(s) not in passes or at > passes[_target(s)]:
            passes[_target(s)] = at
    return passes


def _wrong(metric: str, value: Decimal | None) -> str | None:
    if value is None:
        return "not a finite number"
    if value < 0:
        return "negative"
    if metric == UTILIZATION and value > 100:
        return "above 100 %"
    return None
