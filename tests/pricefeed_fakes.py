"""Stand-ins for the clouds' price APIs: a local HTTP server on 127.0.0.1 serving Cloud Billing
Catalog and Retail Prices pages, AWS Price List products shaped as the API writes them, and
boto3 clients wrapped in botocore's Stubber. Nothing here reaches a network."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.stub import Stubber
from google.auth.credentials import AnonymousCredentials
from google.cloud.billing_v1 import CloudCatalogClient

GCE_SKUS_PATH = "/v1/services/6F81-5844-456A/skus"
RETAIL_PATH = "/api/retail/prices"

# (status, JSON body) for a request's path and query parameters
Route = Callable[[str, dict[str, list[str]]], tuple[int, Any]]


@dataclass
class PageServer:
    route: Route
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"


@contextmanager
def serving(route: Route) -> Iterator[PageServer]:
    """A threaded HTTP server on a free port of 127.0.0.1 answering GETs through ``route``."""
    server = PageServer(route)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            server.requests.append((parts.path, query))
            status, body = server.route(parts.path, query)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server._server = httpd
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# --- GCP: Cloud Billing Catalog ---------------------------------------------------------------


def gce_sku(
    sku_id: str,
    description: str,
    group: str,
    usage: str,
    regions: list[str],
    unit: str,
    units: int,
    nanos: int,
    family: str = "Compute",
) -> dict[str, Any]:
    """One SKU as the REST API writes it (camelCase; int64 ``units`` as a string)."""
    return {
        "name": f"services/6F81-5844-456A/skus/{sku_id}",
        "skuId": sku_id,
        "description": description,
        "category": {
            "serviceDisplayName": "Compute Engine",
            "resourceFamily": family,
            "resourceGroup": group,
            "usageType": usage,
        },
        "serviceRegions": regions,
        "pricingInfo": [
            {
                "summary": "",
                "pricingExpression": {
                    "usageUnit": unit,
                    "displayQuantity": 1,
                    "tieredRates": [
                        {
                            "startUsageAmount": 0,
                            "unitPrice": {"currencyCode": "USD", "units": str(units), "nanos": nanos},
                        }
                    ],
                    "usageUnitDescription": "hour",
                    "baseUnit": "s",
                    "baseUnitDescription": "second",
                    "baseUnitConversionFactor": 3600,
                },
                "currencyConversionRate": 1,
                "effectiveTime": "2026-11-30T10:17:44.573Z",
            }
        ],
        "serviceProviderName": "Google",
        "geoTaxonomy": {"type": "MULTI_REGIONAL", "regions": regions},
    }


def gce_route(pages: list[list[dict[str, Any]]], status: int = 200) -> Route:
    """Serve ``pages`` of SKUs at the Compute Engine SKUs path, linked by ``nextPageToken``."""

    def route(path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if status != 200:
            return status, {"error": {"code": status, "message": "quota exceeded", "status": "UNAVAILABLE"}}
        if path != GCE_SKUS_PATH:
            return 404, {"error": {"code": 404, "message": path, "status": "NOT_FOUND"}}
        index = int(query.get("pageToken", ["0"])[0] or 0)
        more = index + 1 < len(pages)
        return 200, {"skus": pages[index], "nextPageToken": str(index + 1) if more else ""}

    return route


def catalog_client(url: str) -> CloudCatalogClient:
    """The real client, REST transport, anonymous, against the local server."""
    return CloudCatalogClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options={"api_endpoint": url},
    )


# --- Azure: Retail Prices ---------------------------------------------------------------------


def retail_item(
    sku: str,
    region: str,
    price: str,
    *,
    sku_name: str = "",
    product: str = "",
    unit: str = "1 Hour",
    kind: str = "Consumption",
    primary: bool = True,
    start: str = "2025-06-01T00:00:00Z",
) -> dict[str, Any]:
    """One Retail Prices item; ``price`` is written as a JSON number (json.loads of its text)."""
    short = sku.removeprefix("Standard_").replace("_", " ")
    return {
        "currencyCode": "USD",
        "tierMinimumUnits": 0.0,
        "retailPrice": json.loads(price),
        "unitPrice": json.loads(price),
        "armRegionName": region,
        "location": "US East",
        "effectiveStartDate": start,
        "meterId": "00000000-0000-0000-0000-000000000000",
        "meterName": sku_name or short,
        "productId": "DZH318Z0BQ4L",
        "skuId": "DZH318Z0BQ4L/00TG",
        "productName": product or f"Virtual Machines {short.split()[0]} Series",
        "skuName": sku_name or short,
        "serviceName": "Virtual Machines",
        "serviceId": "DZH313Z7MMC8",
        "serviceFamily": "Compute",
        "unitOfMeasure": unit,
        "type": kind,
        "isPrimaryMeterRegion": primary,
        "armSkuName": sku,
    }


def retail_route(pages: list[list[dict[str, Any]]], base: Callable[[], str]) -> Route:
    """Serve ``pages`` at the Retail Prices path, linked by absolute ``NextPageLink`` URLs."""

    def route(path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path != RETAIL_PATH:
            return 404, {"Error": path}
        index = int(query.get("$skip", ["0"])[0]) // 100
        more = index + 1 < len(pages)
        link = f"{base()}{RETAIL_PATH}?$filter=same&$skip={(index + 1) * 100}" if more else None
        return 200, {
            "BillingCurrency": "USD",
            "CustomerEntityId": "Default",
            "CustomerEntityType": "Retail",
            "Items": pages[index],
            "NextPageLink": link,
            "Count": len(pages[index]),
        }

    return route


# --- AWS: Price List products and stubbed clients ---------------------------------------------


def aws_product(instance_type: str, region: str, usd: str, *, marketoption: str = "OnDemand") -> str:
    """One ``PriceList`` entry: a JSON string, as ``pricing.get_products`` answers."""
    sku = f"SKU{abs(hash((instance_type, region, marketoption))) % 10**8:08d}"
    return json.dumps(
        {
            "product": {
                "productFamily": "Compute Instance",
                "attributes": {
                    "instanceType": instance_type,
                    "regionCode": region,
                    "operatingSystem": "Linux",
                    "tenancy": "Shared",
                    "preInstalledSw": "NA",
                    "capacitystatus": "Used",
                    "licenseModel": "No License required",
                    "operation": "RunInstances",
                    "marketoption": marketoption,
                    "servicecode": "AmazonEC2",
                    "usagetype": f"BoxUsage:{instance_type}",
                },
                "sku": sku,
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    f"{sku}.JRTCKXETXF": {
                        "priceDimensions": {
                            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": "Hrs",
                                "endRange": "Inf",
                                "description": f"${usd} per On Demand Linux {instance_type} Instance Hour",
                                "appliesTo": [],
                                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                                "beginRange": "0",
                                "pricePerUnit": {"USD": usd},
                            }
                        },
                        "sku": sku,
                        "effectiveDate": "2026-11-01T00:00:00Z",
                        "offerTermCode": "JRTCKXETXF",
                        "termAttributes": {},
                    }
                },
                "Reserved": {
                    f"{sku}.38NPMPTW36": {
                        "priceDimensions": {
                            f"{sku}.38NPMPTW36.2TG2D8R56U": {
                                "unit": "Quantity",
                                "description": "Upfront Fee",
                                "pricePerUnit": {"USD": "12345"},
                            }
                        },
                        "sku": sku,
                        "termAttributes": {"LeaseContractLength": "1yr", "PurchaseOption": "All Upfront"},
                    }
                },
            },
            "version": "20261101000000",
            "publicationDate": "2026-11-01T00:00:00Z",
        }
    )


def stubbed(service: str, region: str) -> tuple[Any, Stubber]:
    """A real boto3 client (dummy keys: the Stubber answers before anything is signed or sent)."""
    client = boto3.client(
        service,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    return client, Stubber(client)
