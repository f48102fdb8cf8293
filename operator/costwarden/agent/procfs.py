"""Each PID's pod, from ``<proc>/<pid>/cgroup`` (proc(5): https://man7.org/linux/man-pages/man5/proc.5.html).

``/proc/<pid>/cgroup`` is readable by every user, so the agent needs no capability for it; it
needs the proc filesystem of the PID namespace NVML's PIDs belong to, the host's: in the chart
the host's ``/proc`` mounted read-only at ``/host/proc`` (``--proc /host/proc``), or the
container's own ``/proc`` when the pod shares the host's PID namespace. A PID that is gone by the
time it is read (the process ended between NVML's answer and this read) or cannot be read is
unknown: None, counted by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from costwarden.agent.cgroup import pod_uid_of

MAX_CGROUP_FILE = 64 * 1024  # a cgroup file is a few lines; never read more than this


def read_cgroup(proc: Path, pid: int) -> str | None:
    """The text of ``<proc>/<pid>/cgroup``, or None when it cannot be read."""
    try:
        with (proc / str(pid) / "cgroup").open("rb") as file:
            return file.read(MAX_CGROUP_FILE).decode("utf-8", "replace")
    except OSError:
        return None


def pods_of(proc: Path, pids: Iterable[int]) -> tuple[dict[int, str | None], int]:
    """Each PID's pod UID (None: in no pod), and how many PIDs could not be read at all."""
    pods: dict[int, str | None] = {}
    unreadable = 0
    for pid in pids:
        text = read_cgroup(proc, pid)
        if text is None:
            unreadable += 1
            pods[pid] = None
        else:
            pods[pid] = pod_uid_of(text)
    return pods, unreadable
