"""A pod's GPU samples folded into one figure; exposition pages read into series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from costwarden.telemetry import exposition
from costwarden.telemetry.samples import GpuSample, PodGpuUsage, pod_usage
from costwarden.telemetry.series import number

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def sample(pod: str, gpu: str, util: str, age_s: int = 0, **extra: object) -> GpuSample:
    return GpuSample("ns", pod, gpu, Decimal(util), NOW - timedelta(seconds=age_s), **extra)  # type: ignore[arg-type]


def test_a_pods_gpus_fold_into_mean_count_and_oldest_time() -> None:
    usage = pod_usage(
        [
            sample("a", "g0", "90", 5, memory_used_bytes=10, power_watts=Decimal("300.5")),
            sample("a", "g1", "0", 20, memory_used_bytes=30),
            sample("a", "g2", "30", 10),
            sample("b", "g3", "12.5"),
        ]
    )
    assert usage == {
        ("ns", "a"): PodGpuUsage(
            "ns",
            "a",
            Decimal(40),
            3,
            NOW - timedelta(seconds=20),
            memory_used_bytes=40,
            power_watts=Decimal("300.5"),
        ),
        ("ns", "b"): PodGpuUsage("ns", "b", Decimal("12.5"), 1, NOW),
    }


def test_a_gpu_seen_twice_counts_once_at_its_newest() -> None:
    usage = pod_usage([sample("a", "g0", "0", 60), sample("a", "g0", "80", 5), sample("a", "g0", "10", 30)])
    assert usage[("ns", "a")] == PodGpuUsage("ns", "a", Decimal(80), 1, NOW - timedelta(seconds=5))


def test_no_samples_no_pods() -> None:
    assert pod_usage([]) == {}


def test_numbers_as_exporters_print_them() -> None:
    assert number("8.969000") == Decimal("8.969")
    assert number(8.969) == Decimal("8.969")
    assert number(3) == 3
    assert number(" 97 ") == 97
    for bad in ("NaN", "+Inf", "-Inf", float("inf"), "", "1,5", None, True, object()):
        assert number(bad) is None


PAGE = """# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",pod="p",namespace="n"} 42 1764590400000
DCGM_FI_DEV_GPU_UTILX{gpu="0"} 1
# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{gpu="0" this line is broken
"""


def test_only_the_wanted_lines_are_parsed_and_their_timestamps_kept() -> None:
    """The broken line belongs to a field not read: it does not spoil the page."""
    series, error = exposition.parse(PAGE, {"DCGM_FI_DEV_GPU_UTIL"})
    assert error is None
    assert [(s.name, s.value, s.at) for s in series] == [
        ("DCGM_FI_DEV_GPU_UTIL", 42, datetime(2025, 12, 1, 12, 0, tzinfo=UTC))
    ]


def test_a_broken_wanted_line_spoils_the_page_without_raising() -> None:
    series, error = exposition.parse(PAGE, {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_SM_CLOCK"})
    assert series == []
    assert error is not None and error.startswith("unparsable exposition: ")


def test_an_empty_page_has_no_series() -> None:
    assert exposition.parse("", {"x"}) == ([], None)
    assert exposition.parse("<html>502 Bad Gateway</html>", {"x"}) == ([], None)
