"""Matching telemetry to pods: by namespace and name, or by uid (the node agent), never onto a
pod that started after the sample; failed sources named; counters per covered pod."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from costwarden.operator.gpufeed import FeedSettings, GpuFeed, pods_by_key, readings_by_uid
from costwarden.records import PodRecord
from costwarden.telemetry.samples import CounterReading, PodGpuUsage, TelemetryReading, uid_key

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def pod(name: str, uid: str, started: datetime = NOW - timedelta(hours=1)) -> PodRecord:
    return PodRecord.from_body(
        {
            "metadata": {"name": name, "namespace": "ml", "uid": uid},
            "spec": {"containers": []},
            "status": {"phase": "Running", "startTime": started.strftime("%Y-%m-%dT%H:%M:%SZ")},
        }
    )


def usage(key: tuple[str, str], utilization: str, at: datetime = NOW) -> PodGpuUsage:
    return PodGpuUsage(key[0], key[1], Decimal(utilization), gpus=1, at=at)


def test_readings_land_on_the_pod_by_name_or_by_uid():
    pods = pods_by_key([pod("a", "uid-a"), pod("b", "uid-b")])
    found = readings_by_uid(
        {
            ("ml", "a"): usage(("ml", "a"), "3"),
            uid_key("uid-b"): usage(uid_key("uid-b"), "90"),
            ("ml", "gone"): usage(("ml", "gone"), "0"),
        },
        pods,
    )
    assert {uid: r.utilization for uid, r in found.items()} == {"uid-a": Decimal(3), "uid-b": Decimal(90)}


def test_a_sample_older_than_the_pod_is_of_an_earlier_pod_with_that_name():
    pods = pods_by_key([pod("a", "uid-new", started=NOW)])
    assert readings_by_uid({("ml", "a"): usage(("ml", "a"), "0", at=NOW - timedelta(seconds=30))}, pods) == {}


class Source:
    def __init__(self, name: str, pods: Mapping[tuple[str, str], PodGpuUsage], error: str | None = None):
        self.name, self._pods, self._error = name, pods, error

    async def sample(self, now: datetime) -> TelemetryReading:
        return TelemetryReading(self.name, now, self._pods, error=self._error)


class Counters:
    async def counters(self, metric: str, now: datetime) -> CounterReading:
        return CounterReading("prom", now, {("ml", "a"): Decimal(1200), ("ml", "other"): Decimal(5)})


async def test_a_refresh_merges_sources_names_the_failed_ones_and_reads_counters():
    feed = GpuFeed(
        [
            Source("prom", {("ml", "a"): usage(("ml", "a"), "40")}),
            Source("agents", {}, error="1 of 2 targets failed"),
        ],
        Counters(),
        FeedSettings(stale_after=timedelta(minutes=1)),
    )
    snapshot = await feed.refresh(NOW, [pod("a", "uid-a")], ["vllm:generation_tokens_total"])
    assert snapshot.utilization("uid-a", NOW) == Decimal(40)
    assert snapshot.problems == ("agents: 1 of 2 targets failed",)
    assert snapshot.counters == {"vllm:generation_tokens_total": {"uid-a": Decimal(1200)}}


async def test_counters_without_prometheus_say_why():
    feed = GpuFeed([Source("agents", {})], None, FeedSettings(stale_after=timedelta(minutes=1)))
    snapshot = await feed.refresh(NOW, [], ["tokens_total"])
    assert "needs --prometheus-url" in snapshot.counter_problems["tokens_total"]
