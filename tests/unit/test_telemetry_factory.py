"""The telemetry sources chosen from costwarden run's values."""

from __future__ import annotations

import pytest

from costwarden.records import PodRecord
from costwarden.telemetry.factory import AGENT_PORT, DCGM_EXPORTER_PORT, counter_source, sources_from_settings
from costwarden.telemetry.prometheus import PrometheusSource
from costwarden.telemetry.scrape import ScrapeSource


def test_no_values_no_sources() -> None:
    assert sources_from_settings() == []
    assert sources_from_settings(prometheus_url="", dcgm_exporter_selector="", agent_selector=None) == []
    assert counter_source(None) is None


def test_each_value_gives_its_source_in_a_fixed_order() -> None:
    sources = sources_from_settings(
        prometheus_url="http://prometheus.monitoring:9090/",
        dcgm_exporter_selector="app=nvidia-dcgm-exporter",
        agent_selector="app.kubernetes.io/name=costwarden-agent",
    )
    assert [type(s) for s in sources] == [PrometheusSource, ScrapeSource, ScrapeSource]
    assert [s.name for s in sources] == [
        "prometheus http://prometheus.monitoring:9090",
        "dcgm-exporter pods app=nvidia-dcgm-exporter",
        "costwarden agents app.kubernetes.io/name=costwarden-agent",
    ]
    prometheus = counter_source("https://thanos-querier.openshift-monitoring.svc:9091/")
    assert prometheus is not None and prometheus.url == "https://thanos-querier.openshift-monitoring.svc:9091"


@pytest.mark.parametrize("url", ["prometheus:9090", "ftp://prom", "http://", "/api/v1/query"])
def test_a_malformed_prometheus_url_fails_at_start(url: str) -> None:
    with pytest.raises(ValueError, match="--prometheus-url"):
        sources_from_settings(prometheus_url=url)


def test_a_malformed_selector_fails_at_start() -> None:
    with pytest.raises(ValueError, match="label selector"):
        sources_from_settings(agent_selector="app in (")


def test_scrape_targets_follow_the_pod_index_on_each_call() -> None:
    index: list[PodRecord] = []

    def exporter(name: str, ip: str, app: str) -> PodRecord:
        body = {
            "metadata": {"name": name, "labels": {"app": app}},
            "status": {"phase": "Running", "podIP": ip},
        }
        return PodRecord.from_body(body)

    dcgm_source, agents = sources_from_settings(
        dcgm_exporter_selector="app=dcgm", agent_selector="app=agent", pods=lambda: index
    )
    assert isinstance(dcgm_source, ScrapeSource) and isinstance(agents, ScrapeSource)
    assert dcgm_source._targets() == []
    index += [exporter("d", "10.0.0.1", "dcgm"), exporter("a", "10.0.0.2", "agent")]
    assert list(dcgm_source._targets()) == [f"http://10.0.0.1:{DCGM_EXPORTER_PORT}/metrics"]
    assert list(agents._targets()) == [f"http://10.0.0.2:{AGENT_PORT}/metrics"]


def test_credentials_in_the_prometheus_url_are_not_shown() -> None:
    source = counter_source("https://costwarden:s3cret@prometheus.example.com:9443/prom")
    assert source is not None
    assert source.name == "prometheus https://costwarden:***@prometheus.example.com:9443/prom"
    assert "s3cret" not in source.name
