"""The node agent end to end without a GPU: NVML's functions patched (pynvml's own structs and
error classes), processes mapped through cgroup fixtures in a stand-in /proc, the metrics served
on a free port and parsed back with prometheus-client's exposition parser; and the node without
a driver, which exits 2 with one line."""

from __future__ import annotations

import ctypes.util
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pynvml
import pytest
from prometheus_client.parser import text_string_to_metric_families

from costwarden.agent import command, nvml
from costwarden.agent.exporter import registry_for, serve
from costwarden.agent.readings import GpuReading
from costwarden.agent.sampler import PROC_CGROUP, Sampler
from costwarden.agent.series import GpuSeries, PodName, ProcessSeries, fold
from costwarden.cli import main

ROOT = Path(__file__).resolve().parents[2]
CGROUPS = ROOT / "tests" / "data" / "cgroup"

POD_A = "4d5e6f70-8192-4a31-bc2d-3e4f5a6b7c8d"  # crio-systemd-v2.cgroup
POD_B = "3c4d5e6f-7081-4920-ab1c-2d3e4f5a6b7c"  # containerd-cgroupfs-v2.cgroup
PIDS = {  # pid -> the cgroup fixture its /proc/<pid>/cgroup holds
    4242: "crio-systemd-v2.cgroup",
    5151: "containerd-cgroupfs-v2.cgroup",
    777: "not-a-pod-host-service-v2.cgroup",
}
GONE_PID = 9999  # NVML lists it; /proc no longer has it


@dataclass
class FakeGpu:
    """One GPU as the patched NVML reports it; ``errors`` maps an NVML function name to the
    NVML error code it fails with."""

    utilization: int = 0
    memory_used: int = 0
    milliwatts: int = 0
    compute: tuple[int, ...] = ()
    graphics: tuple[int, ...] = ()
    errors: dict[str, int] = field(default_factory=dict)

    def answer(self, name: str, value: Any) -> Any:
        if name in self.errors:
            raise pynvml.NVMLError(self.errors[name])
        return value


def processes(pids: tuple[int, ...]) -> list[Any]:
    return [pynvml.nvmlFriendlyObject({"pid": pid, "usedGpuMemory": 1 << 30}) for pid in pids]


def patch_nvml(monkeypatch: pytest.MonkeyPatch, gpus: list[FakeGpu], count_error: list[int]) -> None:
    """Replace the NVML functions the agent calls; ``count_error`` (mutable) makes
    nvmlDeviceGetCount fail with that code while it holds one."""

    def count() -> int:
        if count_error:
            raise pynvml.NVMLError(count_error[0])
        return len(gpus)

    def handle(index: int) -> FakeGpu:
        return gpus[index].answer("nvmlDeviceGetHandleByIndex", gpus[index])

    calls: dict[str, Callable[[FakeGpu], Any]] = {
        "nvmlDeviceGetUtilizationRates": lambda g: pynvml.c_nvmlUtilization_t(gpu=g.utilization, memory=0),
        "nvmlDeviceGetMemoryInfo": lambda g: pynvml.c_nvmlMemory_t(
            total=80 << 30, free=(80 << 30) - g.memory_used, used=g.memory_used
        ),
        "nvmlDeviceGetPowerUsage": lambda g: g.milliwatts,
        "nvmlDeviceGetComputeRunningProcesses": lambda g: processes(g.compute),
        "nvmlDeviceGetGraphicsRunningProcesses": lambda g: processes(g.graphics),
    }
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", count)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", handle)
    for name, value in calls.items():
        monkeypatch.setattr(pynvml, name, lambda g, name=name, value=value: g.answer(name, value(g)))


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    for pid, fixture in PIDS.items():
        (root / str(pid)).mkdir(parents=True)
        shutil.copy(CGROUPS / fixture, root / str(pid) / "cgroup")
    return root


def node() -> list[FakeGpu]:
    """GPU 0: pod A's trainer; GPU 1: shared by pods A and B, B with both a compute and a graphics
    context; GPU 2: idle, no power reading on this board; GPU 3: a host process and one that ended;
    GPU 4: fell off the bus."""
    return [
        FakeGpu(97, 70 << 30, 612_345, compute=(4242,)),
        FakeGpu(40, 20 << 30, 300_000, compute=(4242, 5151), graphics=(5151,)),
        FakeGpu(0, 0, 0, errors={"nvmlDeviceGetPowerUsage": pynvml.NVML_ERROR_NOT_SUPPORTED}),
        FakeGpu(12, 1 << 30, 90_500, compute=(777, GONE_PID)),
        FakeGpu(errors={"nvmlDeviceGetHandleByIndex": pynvml.NVML_ERROR_GPU_IS_LOST}),
    ]


def test_reader_turns_nvml_answers_into_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_nvml(monkeypatch, node(), [])
    read = nvml.NvmlReader().read()
    assert read.ok
    assert read.gpus == (
        GpuReading("0", 97.0, 70 << 30, 612.345, (4242,)),
        GpuReading("1", 40.0, 20 << 30, 300.0, (4242, 5151)),
        GpuReading("2", 0.0, 0, None, ()),
        GpuReading("3", 12.0, 1 << 30, 90.5, (777, GONE_PID)),
    )
    assert read.failures == ("nvmlDeviceGetHandleByIndex",), "not supported is no failure"


def test_a_failing_call_is_a_missing_figure_and_a_counted_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu(
        55,
        1,
        2_000,
        compute=(4242,),
        errors={
            "nvmlDeviceGetUtilizationRates": pynvml.NVML_ERROR_UNKNOWN,
            "nvmlDeviceGetGraphicsRunningProcesses": pynvml.NVML_ERROR_TIMEOUT,
        },
    )
    patch_nvml(monkeypatch, [gpu], [])
    read = nvml.NvmlReader().read()
    assert read.gpus == (GpuReading("0", None, 1, 2.0, (4242,)),)
    assert read.failures == ("nvmlDeviceGetUtilizationRates", "nvmlDeviceGetGraphicsRunningProcesses")


def test_an_old_driver_without_the_versioned_call_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_nvml(monkeypatch, [FakeGpu(5, 1, 1_000, compute=(4242,))], [])

    def mismatch(handle: object) -> list[Any]:
        raise pynvml.NVMLLibraryMismatchError("use nvmlDeviceGetComputeRunningProcesses_v2")

    monkeypatch.setattr(pynvml, "nvmlDeviceGetComputeRunningProcesses", mismatch)
    read = nvml.NvmlReader().read()
    assert read.gpus[0].pids == ()
    assert read.failures == ("nvmlDeviceGetComputeRunningProcesses",)


def test_fold_gives_each_pod_on_a_gpu_the_gpu_figures() -> None:
    readings = [
        GpuReading("0", 90.0, 10, 100.0, (1, 2, 3)),
        GpuReading("1", 0.0, 0, 50.0, ()),
        GpuReading("2", 5.0, 1, None, (4,)),
    ]
    pods = {1: "uid-b", 2: "uid-a", 3: None}  # 3: no pod; 4: not looked up
    series = fold(readings, pods, {"uid-a": PodName("research", "trainer-0")})
    assert series.gpus == (
        GpuSeries("0", "", "", "", 90.0, 10, 100.0),
        GpuSeries("0", "uid-a", "research", "trainer-0", 90.0, 10, 100.0),
        GpuSeries("0", "uid-b", "", "", 90.0, 10, 100.0),
        GpuSeries("1", "", "", "", 0.0, 0, 50.0),
        GpuSeries("2", "", "", "", 5.0, 1, None),
    )
    assert series.processes == (
        ProcessSeries("0", 1, "uid-b"),
        ProcessSeries("0", 2, "uid-a"),
        ProcessSeries("0", 3, ""),
        ProcessSeries("2", 4, ""),
    )
    assert fold([], {}).gpus == ()


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """GET /metrics and parse it back: metric name (as the parser names families) -> samples."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def gpu_labels(namespace: str, pod: str, uid: str, gpu: str) -> dict[str, str]:
    return {"namespace": namespace, "pod": pod, "pod_uid": uid, "gpu": gpu}


@dataclass
class Served:
    port: int
    sampler: Sampler
    count_error: list[int]  # append an NVML error code: nvmlDeviceGetCount fails with it


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, proc: Path) -> Iterator[Served]:
    """The agent's registry, fed by a sampler over the patched NVML, served on a free port."""
    count_error: list[int] = []
    patch_nvml(monkeypatch, node(), count_error)
    sampler = Sampler(nvml.NvmlReader(), proc, clock=lambda: 1_700_000_000.0)
    sampler.sample()
    server, thread = serve(registry_for(sampler.view), "127.0.0.1", 0)
    try:
        yield Served(server.server_port, sampler, count_error)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_metrics_served_and_parsed_back(served: Served) -> None:
    samples = scrape(served.port)
    assert sorted(
        samples["costwarden_gpu_utilization_percent"], key=lambda s: sorted(s[0].items())
    ) == sorted(
        [
            (gpu_labels("", "", POD_A, "0"), 97.0),
            (gpu_labels("", "", POD_A, "1"), 40.0),
            (gpu_labels("", "", POD_B, "1"), 40.0),  # shared GPU: one series per pod, same value
            (gpu_labels("", "", "", "2"), 0.0),  # no process: pod=""
            (gpu_labels("", "", "", "3"), 12.0),  # processes in no pod, or gone
        ],
        key=lambda s: sorted(s[0].items()),
    )
    memory = {(s[0]["gpu"], s[0]["pod_uid"]): s[1] for s in samples["costwarden_gpu_memory_used_bytes"]}
    assert memory == {
        ("0", POD_A): float(70 << 30),
        ("1", POD_A): float(20 << 30),
        ("1", POD_B): float(20 << 30),
        ("2", ""): 0.0,
        ("3", ""): float(1 << 30),
    }
    power = {(s[0]["gpu"], s[0]["pod_uid"]): s[1] for s in samples["costwarden_gpu_power_watts"]}
    assert power == {("0", POD_A): 612.345, ("1", POD_A): 300.0, ("1", POD_B): 300.0, ("3", ""): 90.5}
    assert sorted(
        (s[0]["gpu"], s[0]["pid"], s[0]["pod_uid"]) for s in samples["costwarden_gpu_process_info"]
    ) == [
        ("0", "4242", POD_A),
        ("1", "4242", POD_A),
        ("1", "5151", POD_B),
        ("3", "777", ""),
        ("3", str(GONE_PID), ""),
    ]
    assert samples["costwarden_agent_up"] == [({}, 1.0)]
    assert samples["costwarden_agent_last_sample_timestamp_seconds"] == [({}, 1_700_000_000.0)]
    errors = {s[0]["call"]: s[1] for s in samples["costwarden_agent_scrape_errors_total"]}
    assert errors == {"nvmlDeviceGetHandleByIndex": 1.0, PROC_CGROUP: 1.0}


def test_metric_names_and_labels_are_the_contract(served: Served) -> None:
    samples = scrape(served.port)
    assert set(samples) == {
        "costwarden_gpu_utilization_percent",
        "costwarden_gpu_memory_used_bytes",
        "costwarden_gpu_power_watts",
        "costwarden_gpu_process_info",
        "costwarden_agent_up",
        "costwarden_agent_last_sample_timestamp_seconds",
        "costwarden_agent_scrape_errors_total",
    }
    for name in (
        "costwarden_gpu_utilization_percent",
        "costwarden_gpu_memory_used_bytes",
        "costwarden_gpu_power_watts",
    ):
        assert {tuple(sorted(labels)) for labels, _ in samples[name]} == {
            ("gpu", "namespace", "pod", "pod_uid")
        }
    assert {tuple(sorted(labels)) for labels, _ in samples["costwarden_gpu_process_info"]} == {
        ("gpu", "pid", "pod_uid")
    }


def test_nvml_down_mid_run_is_up_0_and_no_series(served: Served) -> None:
    served.count_error.append(pynvml.NVML_ERROR_GPU_IS_LOST)
    served.sampler.sample()
    samples = scrape(served.port)
    assert samples["costwarden_agent_up"] == [({}, 0.0)]
    assert "costwarden_gpu_utilization_percent" not in samples
    errors = {s[0]["call"]: s[1] for s in samples["costwarden_agent_scrape_errors_total"]}
    assert errors["nvmlDeviceGetCount"] == 1.0
    served.count_error.clear()
    served.sampler.sample()
    assert scrape(served.port)["costwarden_agent_up"] == [({}, 1.0)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_command_samples_every_interval_and_stops(monkeypatch: pytest.MonkeyPatch, proc: Path) -> None:
    gpus = node()
    patch_nvml(monkeypatch, gpus, [])
    port = free_port()
    args = command_args(
        ["--host", "127.0.0.1", "--port", str(port), "--interval", "0.05", "--proc", str(proc)]
    )
    stop = threading.Event()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(command.run(args, stop)))
    runner.start()
    try:
        first = wait_for(lambda: scrape(port))
        gpus[0].utilization = 3
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            later = scrape(port)
            busy = {s[0]["gpu"]: s[1] for s in later["costwarden_gpu_utilization_percent"]}
            if busy["0"] == 3.0:
                break
            time.sleep(0.05)
        assert busy["0"] == 3.0, "a later pass shows the new figure"
        (at_first,) = first["costwarden_agent_last_sample_timestamp_seconds"]
        (at_later,) = later["costwarden_agent_last_sample_timestamp_seconds"]
        assert at_later[1] > at_first[1]
    finally:
        stop.set()
        runner.join(10)
    assert result == [0]
    with pytest.raises(OSError):
        scrape(port)


def command_args(argv: list[str]) -> Any:
    from costwarden.cli import build_parser

    return build_parser(load=["agent"]).parse_args(["agent", *argv])


def wait_for(probe: Callable[[], Any], seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return probe()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_defaults() -> None:
    args = command_args([])
    assert (args.port, args.host, args.interval, args.proc) == (9401, "0.0.0.0", 5.0, Path("/proc"))


@pytest.mark.parametrize("argv", [["--port", "70000"], ["--interval", "0"], ["--interval", "-1"]])
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        command_args(argv)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found (libnvidia-ml.so.1)"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded: this node has no NVIDIA kernel driver"),
        (pynvml.NVML_ERROR_NO_PERMISSION, "NVML could not be initialised: Insufficient Permissions"),
    ],
)
def test_no_driver_exits_2_with_one_line(
    error: int, words: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail() -> None:
        raise pynvml.NVMLError(error)

    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    assert main(["agent", "--port", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("costwarden agent: ") and words in err


def test_a_port_in_use_exits_2(
    monkeypatch: pytest.MonkeyPatch, proc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patch_nvml(monkeypatch, node(), [])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["agent", "--host", "127.0.0.1", "--port", str(port), "--proc", str(proc)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(
    ctypes.util.find_library("nvidia-ml") is not None, reason="this machine has an NVIDIA driver"
)
def test_no_driver_for_real() -> None:
    """This machine has no libnvidia-ml: the real pynvml fails to load it, the agent says so."""
    done = run_python("from costwarden.cli import main; raise SystemExit(main(['agent', '--port', '0']))")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("costwarden agent: NVML: NVML Shared Library Not Found")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_costwarden_run_loads_neither_the_agent_nor_nvml() -> None:
    done = run_python(
        "import contextlib, io, json, sys\n"
        "import costwarden.operator.app\n"
        "from costwarden.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['run', '--help'])\n"
        "loaded = [m for m in sys.modules if m == 'pynvml' or m.startswith('costwarden.agent')]\n"
        "print(json.dumps(sorted(loaded)))"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_without_nvidia_ml_py_the_agent_says_what_to_do() -> None:
    done = run_python(
        "import sys; sys.modules['pynvml'] = None\n"
        "from costwarden.cli import main; raise SystemExit(main(['agent']))"
    )
    assert done.returncode == 2
    assert "costwarden agent needs pynvml, a dependency of costwarden itself" in done.stderr
