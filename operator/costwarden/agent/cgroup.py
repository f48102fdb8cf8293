"""A process's pod, from the text of its ``/proc/<pid>/cgroup`` file. Pure; never raises.

The file has one line per cgroup hierarchy, ``hierarchy-ID:controller-list:cgroup-path``
(cgroups(7), https://man7.org/linux/man-pages/man7/cgroups.7.html): several lines under cgroup v1,
and the single line ``0::<path>`` under cgroup v2 (https://docs.kernel.org/admin-guide/cgroup-v2.html).
The kubelet puts every pod's containers under a pod-level cgroup named after the pod's UID
(https://kubernetes.io/docs/concepts/architecture/cgroups/), spelled by its cgroup driver
(https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/configure-cgroup-driver/):

- ``cgroupfs``: ``/kubepods/<qos>/pod<uid>/<container>``, the QoS class (``burstable``,
  ``besteffort``) absent for Guaranteed pods, e.g. containerd's or Docker's
  ``/kubepods/burstable/pod8dbc5577-d0e2-4706-8787-57d52c03ddf2/1c4b…`` or CRI-O's
  ``/kubepods/besteffort/pod<uid>/crio-1c4b…``;
- ``systemd``: slices, where systemd reads ``-`` as nesting, so the kubelet writes the UID with
  ``_`` (its ``escapeSystemdCgroupName``): ``/kubepods.slice/kubepods-burstable.slice/
  kubepods-burstable-pod8dbc5577_d0e2_4706_8787_57d52c03ddf2.slice/<scope>``, the scope being
  ``cri-containerd-<id>.scope`` (containerd), ``crio-<id>.scope`` (CRI-O) or
  ``docker-<id>.scope`` (Docker through cri-dockerd).

Static pods have a 32-hex-digit UID (a hash of their manifest) instead of an RFC 4122 one.
A reader inside its own cgroup namespace (the default for containers under cgroup v2) sees the
paths of processes outside it relative to its own root ("Namespace" in the cgroup v2 document):
the agent, itself in a pod, reads ``/../../kubepods-burstable-pod<uid>.slice/…`` or, with
cgroupfs, ``/../../../besteffort/pod<uid>/…``; the pod segment is still there. A segment is taken
as a pod's only under ``kubepods`` (a segment so far, or the pod segment itself, names it:
``kubepods``, ``kubepods.slice``, ``kubelet-kubepods.slice``, ``kubepods-…-pod<uid>.slice``) or
in a path relative to the reader's namespace (``..`` so far), whose root is the agent's own pod
inside ``kubepods``.
"""

from __future__ import annotations

import re

_UUID_DASHED = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_UUID_UNDERSCORED = r"[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12}"
_HASH = r"[0-9a-f]{32}"

_CGROUPFS_POD = re.compile(rf"pod(?P<uid>{_UUID_DASHED}|{_HASH})", re.IGNORECASE)
_SYSTEMD_POD = re.compile(rf"(?:[a-z0-9_]+-)*pod(?P<uid>{_UUID_UNDERSCORED}|{_HASH})\.slice", re.IGNORECASE)
_KUBEPODS = re.compile(r"(?:^|[-.])kubepods(?:[-.]|$)", re.IGNORECASE)


def pod_uid_of_path(path: str) -> str | None:
    """The pod UID (lowercase, with dashes) a cgroup path lies under, or None."""
    inside_kubepods = False
    for segment in path.split("/"):
        inside_kubepods = inside_kubepods or segment == ".." or _KUBEPODS.search(segment) is not None
        if not inside_kubepods:
            continue
        systemd = _SYSTEMD_POD.fullmatch(segment)
        if systemd is not None:
            return systemd["uid"].replace("_", "-").lower()
        cgroupfs = _CGROUPFS_POD.fullmatch(segment)
        if cgroupfs is not None:
            return cgroupfs["uid"].lower()
    return None


def pod_uid_of(cgroup_file: str) -> str | None:
    """The pod UID of the process whose ``/proc/<pid>/cgroup`` reads ``cgroup_file``, or None when
    it is not in a pod (a host daemon, a plain container) or the text is not a cgroup file.

    Lines are tried in order; the first that lies under a pod decides (under cgroup v1 every
    hierarchy of a pod's process names the same pod).
    """
    for line in cgroup_file.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue
        uid = pod_uid_of_path(fields[2].strip())
        if uid is not None:
            return uid
    return None
