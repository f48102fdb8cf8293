"""DCGM series into per-pod GPU samples: the real dcgm-exporter pages in tests/data/dcgm, every
pod-label naming (and which wins), MIG instances, the preferred utilisation field, and garbage."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from costwarden.telemetry import dcgm, exposition
from costwarden.telemetry.samples import GpuSample, pod_usage
from costwarden.telemetry.series import NO_POD, Series
from tests.dcgm_pages import Gpu, page

DATA = Path(__file__).resolve().parents[1] / "data" / "dcgm"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
H100 = "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52"


def read_page(text: str) -> dcgm.Parsed:
    series, error = exposition.parse(text, dcgm.METRICS)
    assert error is None
    return dcgm.gpu_samples(series, NOW)


def read_file(name: str) -> dcgm.Parsed:
    return read_page((DATA / name).read_text())


def one(name: str, labels: dict[str, str], value: object = "50", at: datetime | None = None) -> Series:
    return Series(name, labels, value, at)


BASE = {"gpu": "0", "UUID": H100, "device": "nvidia0", "modelName": "NVIDIA H100 80GB HBM3"}


# --- the real pages ---------------------------------------------------------------------------


def test_the_datadog_capture_has_no_pod_on_the_fields_read() -> None:
    """T4 captures without pod labels, label-less dummies, and one A10G series with a pod on a field
    we do not read (DRAM_ACTIVE): no sample, and every left-out series counted as without a pod."""
    parsed = read_file("datadog-integrations-core_dcgm_tests_fixtures_metrics.txt")
    assert parsed.samples == ()
    # GPU_UTIL, POWER_USAGE and FB_USED of the 460 capture, GR_ENGINE_ACTIVE of the dummies
    assert parsed.skipped == {NO_POD: 4}


def test_the_datadog_label_remap_capture_gives_its_pod() -> None:
    parsed = read_file("datadog-integrations-core_dcgm_tests_fixtures_label_remap.txt")
    assert parsed.samples == (
        GpuSample("foo", "bar", "GPU-20c56d28-0da5-6d26-a36a-e7af1ce2586e", Decimal(0), NOW),
    )
    assert parsed.skipped == {}


def test_the_opentelemetry_page_gives_its_pod_at_full_utilisation() -> None:
    parsed = read_file("otel-contrib_awscontainerinsight_dcgmscraper_test_exposition.txt")
    assert [(s.namespace, s.pod, s.gpu, s.utilization) for s in parsed.samples] == [
        ("kube-system", "fullname-hash", "uuid", Decimal(100))
    ]
    assert pod_usage(parsed.samples)[("kube-system", "fullname-hash")].gpus == 1


def test_the_readme_excerpt_reads_line_by_line_and_its_free_gpu_has_no_pod() -> None:
    """The README's hand-formatted excerpt is not exposition as it stands, but its sample lines
    are: the wanted lines alone parse, and the GPU without a pod (``pod=""``) gives no sample."""
    text = (DATA / "dcgm-exporter_README_sample-output-excerpts.txt").read_text()
    with pytest.raises(ValueError):
        list(text_string_to_metric_families(text))
    series, error = exposition.parse(text, {"DCGM_FI_DEV_SM_CLOCK"})
    assert error is None
    assert [(s.labels.get("pod"), s.value) for s in series] == [(None, 139), ("", 139)]
    as_util = [Series(dcgm.GPU_UTIL, s.labels, "0") for s in series]
    assert dcgm.gpu_samples(as_util, NOW) == dcgm.Parsed(samples=(), skipped={NO_POD: 2})


def test_the_readme_blank_sentinel_on_a_field_we_read_is_left_out() -> None:
    """The README's MEMORY_TEMP line shows DCGM's blank value; on FB_USED it must not become memory."""
    text = (DATA / "dcgm-exporter_README_sample-output-excerpts.txt").read_text()
    (line,) = [x for x in text.splitlines() if x.startswith("DCGM_FI_DEV_MEMORY_TEMP{") and "pod=" in x]
    blank = line.replace("DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_FB_USED").replace('pod=""', 'pod="p"')
    blank = blank.replace('namespace=""', 'namespace="ns"').replace(", ", ",")
    util = blank.replace("DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_UTIL").rsplit(" ", 1)[0] + " 12"
    parsed = read_page(f"{blank}\n{util}\n")
    assert [(s.pod, s.utilization, s.memory_used_bytes) for s in parsed.samples] == [("p", 12, None)]
    assert parsed.skipped == {"DCGM_FI_DEV_FB_USED: DCGM blank value": 1}


@pytest.mark.parametrize(
    "counters", ["dcgm-exporter_etc_default-counters.csv", "dcgm-exporter_etc_dcp-metrics-included.csv"]
)
def test_the_fields_read_are_gauges_in_the_units_assumed(counters: str) -> None:
    rows = [
        [cell.strip() for cell in row]
        for row in csv.reader((DATA / counters).read_text().splitlines())
        if row and not row[0].lstrip().startswith("#")
    ]
    listed = {row[0]: (row[1], row[2]) for row in rows}
    assert listed[dcgm.GPU_UTIL] == ("gauge", "GPU utilization (in %).")
    assert listed[dcgm.ENGINE_ACTIVE] == ("gauge", "Ratio of time the graphics engine is active.")
    assert listed[dcgm.FB_USED] == ("gauge", "Framebuffer memory used (in MiB).")
    assert listed[dcgm.POWER_USAGE] == ("gauge", "Power draw (in W).")


# --- a page shaped as dcgm-exporter prints it ------------------------------------------------


def test_a_dcgm_exporter_page_gives_utilisation_memory_and_power_per_pod() -> None:
    gpus = [
        Gpu(
            0, "GPU-a", "research", "sweep-head", "ray", util=97, fb_used_mib=40000, power_w=Decimal("612.25")
        ),
        Gpu(
            1, "GPU-b", "research", "sweep-head", "ray", util=91, fb_used_mib=38000, power_w=Decimal("598.5")
        ),
        Gpu(2, "GPU-c", "research", "sweep-worker1", "ray", util=0, fb_used_mib=512, power_w=Decimal(70)),
        Gpu(3, "GPU-d", util=0),  # no pod uses it
    ]
    parsed = read_page(page(gpus))
    usage = pod_usage(parsed.samples)
    head = usage[("research", "sweep-head")]
    assert (head.utilization, head.gpus, head.at) == (Decimal(94), 2, NOW)
    assert head.memory_used_bytes == 78000 * 1024 * 1024
    assert head.power_watts == Decimal("1210.75")
    assert usage[("research", "sweep-worker1")].utilization == 0
    assert set(usage) == {("research", "sweep-head"), ("research", "sweep-worker1")}
    assert parsed.skipped == {NO_POD: 3}  # the free GPU's utilisation, memory and power


def test_engine_activity_is_preferred_to_gpu_util_and_read_as_a_ratio() -> None:
    busy_looking = Gpu(0, "GPU-a", "ml", "train", util=100, engine_active=Decimal("0.07"))
    parsed = read_page(page([busy_looking, Gpu(1, "GPU-b", "ml", "train", util=40)]))
    by_gpu = {s.gpu: s.utilization for s in parsed.samples}
    assert by_gpu == {"GPU-a": Decimal(7), "GPU-b": Decimal(40)}


def test_a_garbage_engine_activity_falls_back_to_gpu_util_and_is_counted() -> None:
    series = [
        one(dcgm.ENGINE_ACTIVE, {**BASE, "namespace": "ml", "pod": "train"}, "1.5"),
        one(dcgm.GPU_UTIL, {**BASE, "namespace": "ml", "pod": "train"}, "33"),
    ]
    parsed = dcgm.gpu_samples(series, NOW)
    assert [s.utilization for s in parsed.samples] == [Decimal(33)]
    assert parsed.skipped == {f"{dcgm.ENGINE_ACTIVE}: ratio above 1": 1}


def test_mig_instances_are_gpus_of_their_own() -> None:
    gpus = [
        Gpu(
            0,
            H100,
            "infer",
            "vllm-0",
            util=None,
            engine_active=Decimal("0.8"),
            mig_profile="3g.40gb",
            mig_instance=1,
        ),
        Gpu(
            0,
            H100,
            "infer",
            "vllm-0",
            util=None,
            engine_active=Decimal("0.2"),
            mig_profile="3g.40gb",
            mig_instance=2,
        ),
        Gpu(
            0,
            H100,
            "infer",
            "vllm-1",
            util=None,
            engine_active=Decimal(0),
            mig_profile="1g.10gb",
            mig_instance=9,
        ),
    ]
    parsed = read_page(page(gpus))
    assert sorted((s.pod, s.gpu, s.utilization) for s in parsed.samples) == [
        ("vllm-0", f"{H100}/1", Decimal(80)),
        ("vllm-0", f"{H100}/2", Decimal(20)),
        ("vllm-1", f"{H100}/9", Decimal(0)),
    ]
    usage = pod_usage(parsed.samples)
    assert (usage[("infer", "vllm-0")].gpus, usage[("infer", "vllm-0")].utilization) == (2, Decimal(50))


def test_both_spellings_of_the_hostname_and_uuid_labels_read_alike() -> None:
    old = {"gpu": "0", "UUID": "GPU-x", "Hostname": "n1", "namespace": "a", "pod": "b"}
    new = {"gpu": "0", "uuid": "GPU-x", "hostname": "n1", "namespace": "a", "pod": "b"}
    read = [dcgm.gpu_samples([one(dcgm.GPU_UTIL, labels, "5")], NOW).samples for labels in (old, new)]
    assert read[0] == read[1] == (GpuSample("a", "b", "GPU-x", Decimal(5), NOW),)


def test_without_a_uuid_the_gpu_index_names_the_gpu() -> None:
    parsed = dcgm.gpu_samples([one(dcgm.GPU_UTIL, {"gpu": "3", "namespace": "a", "pod": "b"})], NOW)
    assert [s.gpu for s in parsed.samples] == ["3"]


# --- which pod: label variants ---------------------------------------------------------------

VARIANTS = [
    # dcgm-exporter --kubernetes, scraped directly or with honor_labels: true
    ({"pod": "w", "namespace": "team"}, ("team", "w")),
    # dcgm-exporter --use-old-namespace
    ({"pod_name": "w", "pod_namespace": "team"}, ("team", "w")),
    # Prometheus renamed the exporter's labels: the plain ones name the exporter pod (the target)
    (
        {
            "exported_pod": "w",
            "exported_namespace": "team",
            "pod": "dcgm-exporter-x",
            "namespace": "gpu-operator",
        },
        ("team", "w"),
    ),
    # only pod collided: the exporter's namespace kept its name
    ({"exported_pod": "w", "pod": "dcgm-exporter-x", "namespace": "team"}, ("team", "w")),
    # old naming under a target that sets pod/namespace (they never collide with pod_name)
    (
        {"pod_name": "w", "pod_namespace": "team", "pod": "dcgm-exporter-x", "namespace": "gpu-operator"},
        ("team", "w"),
    ),
    # the old naming, itself renamed (a target that set pod_name)
    ({"exported_pod": "w", "pod_name": "t", "pod_namespace": "team"}, ("team", "w")),
]


@pytest.mark.parametrize(("labels", "pod"), VARIANTS)
def test_the_exporters_own_pod_labels_win(labels: dict[str, str], pod: tuple[str, str]) -> None:
    parsed = dcgm.gpu_samples([one(dcgm.GPU_UTIL, {**BASE, **labels}, "12")], NOW)
    assert [(s.namespace, s.pod) for s in parsed.samples] == [pod]


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ({}, NO_POD),
        ({"pod": "", "namespace": "", "container": ""}, NO_POD),  # README: a GPU no pod uses
        ({"pod": "w"}, "pod label without a namespace label"),
        ({"exported_pod": "w"}, "pod label without a namespace label"),
    ],
)
def test_series_without_a_whole_pod_are_left_out(labels: dict[str, str], reason: str) -> None:
    parsed = dcgm.gpu_samples([one(dcgm.GPU_UTIL, {**BASE, **labels})], NOW)
    assert parsed.samples == ()
    assert parsed.skipped == {reason: 1}


def test_a_free_gpu_behind_a_relabelling_target_is_not_the_exporters_pod() -> None:
    """honor_labels: false and a target with its own pod label: allocated GPUs carry exported_pod,
    a free GPU's empty pod label is not renamed, so its series names the exporter pod: left out."""
    target = {
        "job": "gpu-metrics",
        "instance": "10.0.0.7:9400",
        "pod": "dcgm-exporter-x",
        "namespace": "gpu-op",
    }
    used = one(dcgm.GPU_UTIL, {**BASE, **target, "exported_pod": "w", "exported_namespace": "team"}, "80")
    free = one(dcgm.GPU_UTIL, {**BASE, **target, "UUID": "GPU-free", "gpu": "1"}, "0")
    other_target = one(
        dcgm.GPU_UTIL,
        {**BASE, "job": "gpu-metrics", "instance": "10.0.0.8:9400", "pod": "p", "namespace": "n"},
    )
    parsed = dcgm.gpu_samples([used, free, other_target], NOW)
    assert sorted((s.namespace, s.pod) for s in parsed.samples) == [("n", "p"), ("team", "w")]
    assert parsed.skipped == {dcgm.TARGET_POD: 1}


# --- times, repeats, garbage -----------------------------------------------------------------


def test_a_series_time_is_kept_and_the_newest_of_repeats_counts() -> None:
    labels = {**BASE, "namespace": "a", "pod": "b"}
    old, new = NOW - timedelta(seconds=40), NOW - timedelta(seconds=10)
    parsed = dcgm.gpu_samples(
        [one(dcgm.GPU_UTIL, labels, "90", new), one(dcgm.GPU_UTIL, labels, "0", old)], NOW
    )
    assert [(s.utilization, s.at) for s in parsed.samples] == [(Decimal(90), new)]


@pytest.mark.parametrize(
    ("metric", "value", "reason"),
    [
        (dcgm.GPU_UTIL, "NaN", "not a finite number"),
        (dcgm.GPU_UTIL, float("nan"), "not a finite number"),
        (dcgm.GPU_UTIL, "+Inf", "not a finite number"),
        (dcgm.GPU_UTIL, "high", "not a finite number"),
        (dcgm.GPU_UTIL, None, "not a finite number"),
        (dcgm.GPU_UTIL, True, "not a finite number"),
        (dcgm.GPU_UTIL, "-1", "negative"),
        (dcgm.GPU_UTIL, "100.5", "above 100 %"),
        (dcgm.GPU_UTIL, "9223372036854775794", "DCGM blank value"),
        (dcgm.ENGINE_ACTIVE, "140737488355328", "DCGM blank value"),
        (dcgm.ENGINE_ACTIVE, "-0.1", "negative"),
    ],
)
def test_a_garbage_utilisation_is_left_out_with_its_reason(metric: str, value: object, reason: str) -> None:
    parsed = dcgm.gpu_samples([one(metric, {**BASE, "namespace": "a", "pod": "b"}, value)], NOW)
    assert parsed.samples == ()
    assert parsed.skipped == {f"{metric}: {reason}": 1}


def test_garbage_memory_or_power_keeps_the_utilisation() -> None:
    labels = {**BASE, "namespace": "a", "pod": "b"}
    series = [
        one(dcgm.GPU_UTIL, labels, "50"),
        one(dcgm.FB_USED, labels, "-3"),
        one(dcgm.POWER_USAGE, labels, "140737488355328.000000"),
    ]
    parsed = dcgm.gpu_samples(series, NOW)
    assert [(s.utilization, s.memory_used_bytes, s.power_watts) for s in parsed.samples] == [(50, None, None)]
    assert parsed.skipped == {f"{dcgm.FB_USED}: negative": 1, f"{dcgm.POWER_USAGE}: DCGM blank value": 1}


def test_memory_without_utilisation_is_no_sample() -> None:
    parsed = dcgm.gpu_samples([one(dcgm.FB_USED, {**BASE, "namespace": "a", "pod": "b"}, "10")], NOW)
    assert parsed.samples == ()
    assert parsed.skipped == {dcgm.NO_UTILIZATION: 1}


def test_a_series_without_a_gpu_label_is_left_out() -> None:
    parsed = dcgm.gpu_samples([one(dcgm.GPU_UTIL, {"namespace": "a", "pod": "b"})], NOW)
    assert parsed.skipped == {dcgm.NO_GPU: 1}


LABEL_NAMES = st.sampled_from(
    [
        "pod",
        "namespace",
        "exported_pod",
        "exported_namespace",
        "pod_name",
        "pod_namespace",
        "UUID",
        "uuid",
        "gpu",
        "GPU_I_ID",
        "job",
        "instance",
    ]
)
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.decimals(allow_nan=True)
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from([*dcgm.METRICS, "DCGM_FI_DEV_SM_CLOCK"]),
            st.dictionaries(LABEL_NAMES, st.text(max_size=4), max_size=6),
            VALUES,
            st.none() | st.datetimes(timezones=st.just(UTC)),
        ),
        max_size=12,
    )
)
def test_any_series_at_all_never_raise_and_give_sane_samples(
    raw: list[tuple[str, dict[str, str], object, datetime | None]],
) -> None:
    parsed = dcgm.gpu_samples([Series(*r) for r in raw], NOW)
    for s in parsed.samples:
        assert 0 <= s.utilization <= 100 and s.utilization.is_finite()
        assert s.namespace and s.pod and s.gpu
        assert s.memory_used_bytes is None or s.memory_used_bytes >= 0
        assert s.power_watts is None or (s.power_watts >= 0 and not math.isinf(s.power_watts))
    assert len(parsed.samples) + sum(parsed.skipped.values()) <= len(raw)
