"""A local fake of Azure Resource Manager's ``Microsoft.Compute/virtualMachines``, enough for the
real ``ComputeManagementClient``: list in a subscription (``nextLink`` pages; ``statusOnly=true``
answers instance views and no tags, as ARM does), get (``$expand=instanceView``), instanceView,
deallocate and delete (202 Accepted). Every call needs an ``api-version`` and the bearer token.

It serves https (tests/json_server.py, a self-signed certificate): azure-core refuses to send a
bearer token over plain http. Point a client at it with ``ComputeManagementClient(credential,
SUBSCRIPTION, base_url=fake.url, connection_verify=fake.ca_file, retry_total=0)``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from azure.core.credentials import AccessToken

from tests.json_server import Call, LocalServer, Reply, serve_json

SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
TOKEN = "fake-arm-token"


class StaticToken:
    """A TokenCredential that hands out one fixed token."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}})


@dataclass
class FakeArm:
    subscription: str = SUBSCRIPTION
    vms: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower-case id -> the VM model
    power: dict[str, str] = field(default_factory=dict)  # lower-case id -> PowerState/<this>
    started: dict[str, str] = field(default_factory=dict)  # lower-case id -> provisioning status time
    page_size: int = 2
    missing_from_status: set[str] = field(default_factory=set)  # ids the statusOnly list leaves out
    # an operation ("list", "status", "get", "instanceView", "deallocate", "delete") ->
    # (HTTP status, error code, message), with ``fail_headers``
    fail: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    fail_headers: dict[str, str] = field(default_factory=dict)
    actions: list[tuple[str, str]] = field(default_factory=list)  # (verb, VM name)
    server: LocalServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def ca_file(self) -> str:
        assert self.server is not None and self.server.ca_file is not None
        return self.server.ca_file

    def add(
        self,
        group: str,
        name: str,
        *,
        size: str = "Standard_NC4as_T4_v3",
        tags: dict[str, str] | None = None,
        location: str = "eastus",
        zones: list[str] | None = None,
        spot: bool = False,
        power: str = "running",
        provisioning: str = "Succeeded",
        created: str = "2026-11-30T15:58:01.2500000+00:00",
        started: str = "2026-11-30T16:00:12.5000000+00:00",
    ) -> str:
        """A VM as ARM writes it; its id (ARM upper-cases SkyPilot's resource group names)."""
        resource_id = (
            f"/subscriptions/{self.subscription}/resourceGroups/{group.upper()}"
            f"/providers/Microsoft.Compute/virtualMachines/{name}"
        )
        vm: dict[str, Any] = {
            "id": resource_id,
            "name": name,
            "type": "Microsoft.Compute/virtualMachines",
            "location": location,
            "properties": {
                "vmId": str(uuid.uuid4()),
                "hardwareProfile": {"vmSize": size},
                "storageProfile": {"osDisk": {"osType": "Linux", "deleteOption": "Delete"}},
                "priority": "Spot" if spot else "Regular",
                "provisioningState": provisioning,
                "timeCreated": created,
            },
        }
        if spot:
            vm["properties"] |= {"evictionPolicy": "Deallocate", "billingProfile": {"maxPrice": -1}}
        if tags is not None:
            vm["tags"] = dict(tags)
        if zones:
            vm["zones"] = list(zones)
        key = resource_id.lower()
        self.vms[key] = vm
        self.power[key] = power
        self.started[key] = started
        return resource_id

    def instance_view(self, key: str) -> dict[str, Any]:
        provisioning = str(self.vms[key]["properties"]["provisioningState"]).lower()
        return {
            "statuses": [
                {
                    "code": f"ProvisioningState/{provisioning}",
                    "level": "Info",
                    "displayStatus": f"Provisioning {provisioning}",
                    "time": self.started[key],
                },
                {
                    "code": f"PowerState/{self.power[key]}",
                    "level": "Info",
                    "displayStatus": f"VM {self.power[key]}",
                },
            ]
        }

    # --- the API ---------------------------------------------------------------------------------

    def handle(self, call: Call) -> Reply:
        if call.headers.get("authorization") != f"Bearer {TOKEN}":
            return _error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        if not call.query.get("api-version"):
            return _error(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
        parts = call.path.lower().strip("/").split("/")
        sub = self.subscription.lower()
        vms = ["providers", "microsoft.compute", "virtualmachines"]
        match (call.method, parts):
            case ("GET", ["subscriptions", s, *rest]) if s == sub and rest == vms:
                status_only = call.query.get("statusOnly", "").lower() == "true"
                return self._failing("status" if status_only else "list") or self._list(call, status_only)
            case ("GET", ["subscriptions", s, "resourcegroups", _g, *rest, _n]) if s == sub and rest == vms:
                return self._failing("get") or self._get(call)
            case ("GET", ["subscriptions", s, "resourcegroups", _g, *rest, _n, "instanceview"]) if (
                s == sub and rest == vms
            ):
                return self._failing("instanceView") or self._view(call)
            case ("POST", ["subscriptions", s, "resourcegroups", _g, *rest, _n, "deallocate"]) if (
                s == sub and rest == vms
            ):
                return self._failing("deallocate") or self._act(call, "deallocate")
            case ("DELETE", ["subscriptions", s, "resourcegroups", _g, *rest, _n]) if (
                s == sub and rest == vms
            ):
                return self._failing("delete") or self._act(call, "delete")
        return _error(404, "InvalidResourceType", f"no route {call.method} {call.path}")

    def _failing(self, operation: str) -> Reply | None:
        if operation not in self.fail:
            return None
        status, code, message = self.fail[operation]
        reply = _error(status, code, message)
        reply.headers.update(self.fail_headers)
        return reply

    def _key(self, path: str) -> str:
        """The lower-case VM id in a path (…/virtualMachines/<name>[/<action>])."""
        parts = path.strip("/").split("/")
        return "/" + "/".join(parts[:8]).lower()

    def _list(self, call: Call, status_only: bool) -> Reply:
        keys = sorted(k for k in self.vms if not (status_only and k in self.missing_from_status))
        start = int(call.query.get("$skiptoken") or 0)
        page = keys[start : start + self.page_size]
        if status_only:
            value = [
                {
                    "id": self.vms[k]["id"],
                    "name": self.vms[k]["name"],
                    "type": self.vms[k]["type"],
                    "location": self.vms[k]["location"],
                    "properties": {"instanceView": self.instance_view(k)},
                }
                for k in page
            ]
        else:
            value = [self.vms[k] for k in page]
        body: dict[str, Any] = {"value": value}
        if start + self.page_size < len(keys):
            query = {"api-version": call.query["api-version"], "$skiptoken": str(start + self.page_size)}
            if status_only:
                query["statusOnly"] = "true"
            body["nextLink"] = f"{self.url}{call.path}?{urlencode(query)}"
        return Reply(200, body)

    def _not_found(self, call: Call) -> Reply:
        name = call.path.strip("/").split("/")[7]
        message = (
            f"The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group was not found."
        )
        return _error(404, "ResourceNotFound", message)

    def _get(self, call: Call) -> Reply:
        key = self._key(call.path)
        if key not in self.vms:
            return self._not_found(call)
        vm = dict(self.vms[key])
        if call.query.get("$expand") == "instanceView":
            vm["properties"] = vm["properties"] | {"instanceView": self.instance_view(key)}
        return Reply(200, vm)

    def _view(self, call: Call) -> Reply:
        key = self._key(call.path)
        if key not in self.vms:
            return self._not_found(call)
        return Reply(200, self.instance_view(key))

    def _act(self, call: Call, verb: str) -> Reply:
        key = self._key(call.path)
        if key not in self.vms:
            return Reply(204) if verb == "delete" else self._not_found(call)
        self.actions.append((verb, str(self.vms[key]["name"])))
        if verb == "deallocate":
            self.power[key] = "deallocating"
        else:
            self.vms[key]["properties"]["provisioningState"] = "Deleting"
        operation = (
            f"{self.url}/subscriptions/{self.subscription}/providers/Microsoft.Compute/locations/eastus"
        )
        operation += f"/operations/{uuid.uuid4()}?api-version={call.query['api-version']}"
        return Reply(
            202, None, {"Azure-AsyncOperation": operation, "Location": operation, "Retry-After": "10"}
        )


@contextmanager
def serve(fake: FakeArm) -> Iterator[FakeArm]:
    with serve_json(fake.handle, tls=True) as server:
        fake.server = server
        yield fake
