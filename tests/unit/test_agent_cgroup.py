"""The agent's cgroup parser against /proc/<pid>/cgroup files of each runtime, cgroup driver and
cgroup version (tests/data/cgroup/), and against anything else: it never raises."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from costwarden.agent.cgroup import pod_uid_of, pod_uid_of_path
from costwarden.agent.procfs import pods_of, read_cgroup

DATA = Path(__file__).resolve().parents[1] / "data" / "cgroup"

# file -> the pod UID its process belongs to (None: not a pod's process)
EXPECTED: dict[str, str | None] = {
    # containerd (cri-containerd-<id>.scope under systemd, the bare id under cgroupfs)
    "containerd-systemd-v1.cgroup": "0f1e2d3c-4b5a-4697-8877-665544332211",
    "containerd-systemd-v2.cgroup": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
    "containerd-cgroupfs-v1.cgroup": "2b3c4d5e-6f70-4819-9a0b-1c2d3e4f5a6b",
    "containerd-cgroupfs-v2.cgroup": "3c4d5e6f-7081-4920-ab1c-2d3e4f5a6b7c",
    # read from inside the agent's own cgroup namespace: paths relative to it
    "containerd-systemd-v2-cgroupns.cgroup": "a3b4c5d6-e7f8-4097-928d-9e0f1a2b3c4d",
    "containerd-cgroupfs-v2-cgroupns.cgroup": "b4c5d6e7-f809-41a8-a39e-0f1a2b3c4d5e",
    # CRI-O (crio-<id>.scope, crio-<id>)
    "crio-systemd-v2.cgroup": "4d5e6f70-8192-4a31-bc2d-3e4f5a6b7c8d",  # Guaranteed: no QoS slice
    "crio-systemd-v1.cgroup": "5e6f7081-92a3-4b42-8d3e-4f5a6b7c8d9e",
    "crio-cgroupfs-v1.cgroup": "6f708192-a3b4-4c53-9e4f-5a6b7c8d9e0f",
    # Docker through cri-dockerd (docker-<id>.scope, the bare id)
    "docker-systemd-v1.cgroup": "708192a3-b4c5-4d64-af5a-6b7c8d9e0f1a",
    "docker-systemd-v2.cgroup": "8192a3b4-c5d6-4e75-b06b-7c8d9e0f1a2b",
    "docker-cgroupfs-v1.cgroup": "92a3b4c5-d6e7-4f86-817c-8d9e0f1a2b3c",  # Guaranteed
    # a static pod's UID is a 32-digit hash; kind nests the kubelet's slices under kubelet.slice
    "static-pod-systemd-v2.cgroup": "6b5f0d8ac2e14f7e9a3b1c0d2e4f6a8b",
    "kind-nested-systemd-v2.cgroup": "c5d6e7f8-091a-42b9-b4af-1a2b3c4d5e6f",
    # not pods: host services, a login session, plain Docker containers, init, a look-alike path
    "not-a-pod-host-service-v2.cgroup": None,
    "not-a-pod-user-session-v2.cgroup": None,
    "not-a-pod-plain-docker-v2.cgroup": None,
    "not-a-pod-plain-docker-v1.cgroup": None,
    "not-a-pod-init-v1.cgroup": None,
    "not-a-pod-lookalike-v2.cgroup": None,
}


def test_every_fixture_is_listed() -> None:
    assert sorted(p.name for p in DATA.glob("*.cgroup")) == sorted(EXPECTED)


@pytest.mark.parametrize(("name", "uid"), sorted(EXPECTED.items()))
def test_fixture(name: str, uid: str | None) -> None:
    assert pod_uid_of((DATA / name).read_text()) == uid


@pytest.mark.parametrize(
    ("path", "uid"),
    [
        ("/kubepods/pod8dbc5577-d0e2-4706-8787-57d52c03ddf2", "8dbc5577-d0e2-4706-8787-57d52c03ddf2"),
        (  # the pod-level cgroup itself (a pod's pause or sandbox process under cgroupfs)
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod8dbc5577_d0e2_4706_8787_57d52c03ddf2.slice",
            "8dbc5577-d0e2-4706-8787-57d52c03ddf2",
        ),
        ("/KUBEPODS/POD8DBC5577-D0E2-4706-8787-57D52C03DDF2/x", "8dbc5577-d0e2-4706-8787-57d52c03ddf2"),
        ("/kubepods", None),
        ("/kubepods/burstable/pod8dbc5577-d0e2-4706-8787", None),  # truncated UID
        ("/kubepods/burstable/pod8dbc5577_d0e2_4706_8787_57d52c03ddf2", None),  # systemd spelling, no .slice
        ("/system.slice/kubepods-burstable-pod8dbc5577-d0e2-4706-8787-57d52c03ddf2.slice", None),
        ("/", None),
        ("", None),
    ],
)
def test_paths(path: str, uid: str | None) -> None:
    assert pod_uid_of_path(path) == uid


def test_the_first_line_under_a_pod_decides() -> None:
    text = (
        "2:rdma:/\n"
        "1:name=systemd:/kubepods/besteffort/pod11111111-1111-4111-8111-111111111111/a\n"
        "0::/kubepods/besteffort/pod22222222-2222-4222-8222-222222222222/b\n"
    )
    assert pod_uid_of(text) == "11111111-1111-4111-8111-111111111111"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "not a cgroup file",
        "x::/kubepods/pod8dbc5577-d0e2-4706-8787-57d52c03ddf2/a",  # hierarchy id is not a number
        "0:/kubepods/pod8dbc5577-d0e2-4706-8787-57d52c03ddf2",  # two fields
        "\x00\xff\ufffd",
    ],
)
def test_garbage_is_no_pod(text: str) -> None:
    assert pod_uid_of(text) is None


@given(st.text())
def test_any_text_parses_without_raising(text: str) -> None:
    uid = pod_uid_of(text)
    assert uid is None or (uid == uid.lower() and len(uid) in (32, 36))


def test_procfs_reads_each_pid_and_counts_the_unreadable(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, name in ((101, "crio-systemd-v2.cgroup"), (202, "not-a-pod-init-v1.cgroup")):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cgroup").write_bytes((DATA / name).read_bytes())
    (proc / "303").mkdir()
    (proc / "303" / "cgroup").write_bytes(b"0::/kubepods/pod8dbc5577-d0e2-4706-8787-57d52c03ddf2/\xff\xfe\n")
    pods, unreadable = pods_of(proc, [101, 202, 303, 404])
    assert pods == {
        101: "4d5e6f70-8192-4a31-bc2d-3e4f5a6b7c8d",
        202: None,
        303: "8dbc5577-d0e2-4706-8787-57d52c03ddf2",  # bytes that are not UTF-8 are replaced
        404: None,  # ended before it was read
    }
    assert unreadable == 1
    assert read_cgroup(proc, 404) is None
    assert read_cgroup(tmp_path / "nowhere", 1) is None
