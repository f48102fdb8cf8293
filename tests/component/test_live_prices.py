"""The real operator with ``--price-feed azure`` against a local Retail Prices stand-in: a covered
AKS GPU node gets the live price (not the catalog's), follows the feed when the price changes, and
keeps the last good price, with ``costwarden_price_feed_up`` at 0, while the feed answers HTTP 500."""

from __future__ import annotations

import re
import threading
import urllib.request
from datetime import timedelta
from decimal import Decimal
from typing import Any

from costwarden.pricing import PriceBook, load_bundled_catalog
from costwarden.records import NodeRecord
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.conftest import T0
from tests.component.test_operator_spend import NS, budget, status_of
from tests.pricefeed_fakes import RETAIL_PATH, PageServer, retail_item, retail_route, serving

NODE = "aks-gpuspot-31415926-vmss000000"
T4 = "Standard_NC4as_T4_v3"
FIRST, SECOND = "0.0871", "0.1043"  # spot USD/h the stand-in lists; the catalog's differs


class RetailPrices:
    """The stand-in's answer, changed by the test while the operator polls it."""

    def __init__(self) -> None:
        self.price = FIRST
        self.status = 200
        self.server: PageServer | None = None
        self._lock = threading.Lock()

    def route(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        with self._lock:
            price, status = self.price, self.status
        if status != 200:
            return status, {"Error": {"Code": "InternalServerError", "Message": "try again later"}}
        server = self.server
        assert server is not None
        item = retail_item(T4, "eastus", price, sku_name="NC4as T4 v3 Spot")
        return retail_route([[item]], lambda: server.url)(path, query)

    def set(self, *, price: str | None = None, status: int | None = None) -> None:
        with self._lock:
            self.price = price or self.price
            self.status = status or self.status

    def requests(self) -> int:
        return len(self.server.requests) if self.server is not None else 0


def seed_aks_gpu_pod(cluster: ThreadedSimCluster) -> dict[str, Any]:
    """One AKS spot T4 node and a SkyPilot pod taking all of it (its rate is the node's price)."""
    cluster.create(shapes.namespace(NS))
    node = cluster.create(shapes.aks_t4_spot_node(NODE))
    pod = shapes.skypilot_pod(
        "llama-sweep-2ea4", "llama-sweep", namespace=NS, node=NODE, gpus=1, cpu="4", memory="28Gi"
    )
    name = cluster.create(pod)["metadata"]["name"]
    cluster.patch(
        "v1",
        "pods",
        name,
        {"status": shapes.running_status(T0 - timedelta(hours=1))},
        namespace=NS,
        subresource="status",
    )
    return node


def node_prices(cluster: ThreadedSimCluster) -> list[dict[str, Any]]:
    return list(status_of(cluster).get("nodePrices") or [])


def priced_live_at(cluster: ThreadedSimCluster, price: str) -> bool:
    prices = node_prices(cluster)
    return (
        len(prices) == 1
        and prices[0]["hourlyRate"] == float(price)
        and prices[0]["source"].startswith("live: azure retail prices eastus (fetched ")
    )


def metric(port: int, name: str, labels: str = "") -> float | None:
    """One sample's value from the operator's /metrics, None when it is not there."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    series = f"{name}{{{labels}}}" if labels else name
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_live_azure_prices_follow_the_feed_and_survive_its_failure(cluster, start_operator) -> None:
    node = seed_aks_gpu_pod(cluster)
    cluster.create(budget(limit=10_000))
    catalog = PriceBook(load_bundled_catalog()).price(NodeRecord.from_body(node))
    assert catalog.hourly not in (Decimal(FIRST), Decimal(SECOND))  # a live figure cannot be the catalog's
    feed = RetailPrices()
    with serving(feed.route) as server:
        feed.server = server
        operator = start_operator(
            price_feeds=("azure",),
            price_feed_interval=1.0,
            azure_prices_url=f"{server.url}{RETAIL_PATH}",
        )
        port = operator.settings.metrics_port

        # the feed's price, with its source, on the budget; the pod's rate is the node's
        cluster.wait_for(lambda: priced_live_at(cluster, FIRST), timeout=15)
        assert status_of(cluster)["hourlyRate"] == float(FIRST)
        (path, query), *_ = server.requests
        assert path == RETAIL_PATH
        assert f"armSkuName eq '{T4}'" in query["$filter"][0]
        assert metric(port, "costwarden_price_feed_up", 'feed="azure"') == 1.0

        # the list price changes: the next refresh publishes it
        feed.set(price=SECOND)
        cluster.wait_for(lambda: priced_live_at(cluster, SECOND), timeout=10)
        cluster.wait_for(lambda: status_of(cluster)["hourlyRate"] == float(SECOND), timeout=10)

        # the feed fails: the metric says so, and the last good price stays
        feed.set(status=500)
        cluster.wait_for(lambda: metric(port, "costwarden_price_feed_up", 'feed="azure"') == 0.0, timeout=10)
        failed_at = feed.requests()
        cluster.wait_for(lambda: feed.requests() > failed_at, timeout=10)  # another failed refresh
        evaluated = metric(port, "costwarden_budget_evaluations_total")
        assert evaluated is not None
        cluster.wait_for(  # and passes after it: a lost price would be on the status by then
            lambda: (metric(port, "costwarden_budget_evaluations_total") or 0) >= evaluated + 3,
            timeout=10,
        )
        assert priced_live_at(cluster, SECOND), node_prices(cluster)
        assert status_of(cluster)["hourlyRate"] == float(SECOND)
        assert metric(port, "costwarden_price_feed_up", 'feed="azure"') == 0.0
        assert metric(port, "costwarden_price_feed_prices", 'feed="azure"') == 1.0
        assert operator.error is None
