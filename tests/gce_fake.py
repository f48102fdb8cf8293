"""A local fake of the Compute Engine v1 REST API, enough for the real ``InstancesClient``:
``aggregated/instances`` (pages, the ``labels.<key>:*`` filter, ``unreachables``), ``instances.get``,
``instances.stop`` and ``instances.delete`` (answering Operations).

Point a client at it with ``InstancesClient(credentials=AnonymousCredentials(),
client_options={"api_endpoint": fake.url})``; ``serve(fake)`` runs it on tests/json_server.py.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.json_server import Call, LocalServer, Reply, serve_json

BASE = "https://www.googleapis.com/compute/v1"
_HAS_LABEL = re.compile(r"\(labels\.([a-z0-9_-]+):\*\)")
_ids = itertools.count(4_000_000_000_000_000_001)


def _error(status: int, message: str, reason: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }


@dataclass
class FakeGce:
    project: str = "ml-project"
    zones: tuple[str, ...] = ("us-central1-a", "us-central1-b", "europe-west4-a")
    instances: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    page_size: int = 2
    honour_filter: bool = True
    unreachables: list[str] = field(default_factory=list)  # listed in the answer's "unreachables"
    unreachable_scopes: list[str] = field(default_factory=list)  # scoped lists warning UNREACHABLE
    # an operation ("aggregatedList", "get", "stop", "delete") -> (HTTP status, message, reason);
    # answered ``fail_times`` times (None: always), with ``fail_headers``
    fail: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    fail_times: int | None = None
    fail_headers: dict[str, str] = field(default_factory=dict)
    actions: list[tuple[str, str, str]] = field(default_factory=list)  # (verb, zone, name)
    server: LocalServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def add(
        self,
        zone: str,
        name: str,
        *,
        machine_type: str = "n1-standard-8",
        labels: dict[str, str] | None = None,
        status: str = "RUNNING",
        spot: bool = False,
        gpus: tuple[str, int] | None = None,
        created: str = "2026-11-30T07:58:01.250-08:00",
        started: str | None = "2026-11-30T08:00:12.500-08:00",
    ) -> dict[str, Any]:
        """An Instance as the API writes it (camelCase, int64 as strings, self links)."""
        zone_link = f"{BASE}/projects/{self.project}/zones/{zone}"
        scheduling: dict[str, Any] = {"onHostMaintenance": "TERMINATE", "automaticRestart": not spot}
        if spot:
            scheduling |= {
                "preemptible": True,
                "provisioningModel": "SPOT",
                "instanceTerminationAction": "DELETE",
            }
        else:
            scheduling |= {"preemptible": False, "provisioningModel": "STANDARD"}
        instance: dict[str, Any] = {
            "kind": "compute#instance",
            "id": str(next(_ids)),
            "creationTimestamp": created,
            "name": name,
            "machineType": f"{zone_link}/machineTypes/{machine_type}",
            "status": status,
            "zone": zone_link,
            "labels": dict(labels or {}),
            "labelFingerprint": "42WmSpB8rSM=",
            "scheduling": scheduling,
            "selfLink": f"{zone_link}/instances/{name}",
            "networkInterfaces": [{"network": f"{BASE}/projects/{self.project}/global/networks/default"}],
        }
        if started is not None:
            instance["lastStartTimestamp"] = started
        if gpus is not None:
            kind, count = gpus
            instance["guestAccelerators"] = [
                {"acceleratorType": f"{zone_link}/acceleratorTypes/{kind}", "acceleratorCount": count}
            ]
        self.instances[(zone, name)] = instance
        return instance

    # --- the API ---------------------------------------------------------------------------------

    def handle(self, call: Call) -> Reply:
        prefix = f"/compute/v1/projects/{self.project}/"
        if not call.path.startswith(prefix):
            return Reply(404, _error(404, f"The resource '{call.path}' was not found", "notFound"))
        parts = call.path[len(prefix) :].split("/")
        match (call.method, parts):
            case ("GET", ["aggregated", "instances"]):
                return self._failing("aggregatedList") or self._aggregated(call.query)
            case ("GET", ["zones", zone, "instances", name]):
                return self._failing("get") or self._get(zone, name)
            case ("POST", ["zones", zone, "instances", name, "stop"]):
                return self._failing("stop") or self._act("stop", zone, name)
            case ("DELETE", ["zones", zone, "instances", name]):
                return self._failing("delete") or self._act("delete", zone, name)
        return Reply(400, _error(400, f"no route {call.method} {call.path}", "invalid"))

    def _failing(self, operation: str) -> Reply | None:
        if operation not in self.fail or self.fail_times == 0:
            return None
        if self.fail_times is not None:
            self.fail_times -= 1
        status, message, reason = self.fail[operation]
        return Reply(status, _error(status, message, reason), dict(self.fail_headers))

    def _matches(self, instance: dict[str, Any], expression: str) -> bool:
        keys = _HAS_LABEL.findall(expression)
        return any(key in instance["labels"] for key in keys)

    def _aggregated(self, query: dict[str, str]) -> Reply:
        expression = query.get("filter", "")
        if (
            expression
            and " OR ".join(f"(labels.{k}:*)" for k in _HAS_LABEL.findall(expression)) != expression
        ):
            return Reply(400, _error(400, f"Invalid value for field 'filter': '{expression}'", "invalid"))
        chosen = [
            (zone, instance)
            for (zone, _name), instance in sorted(self.instances.items())
            if not self.honour_filter or not expression or self._matches(instance, expression)
        ]
        start = int(query.get("pageToken") or 0)
        page = chosen[start : start + self.page_size]
        items: dict[str, Any] = {}
        for zone in self.zones:
            scope = f"zones/{zone}"
            found = [instance for z, instance in page if z == zone]
            if zone in self.unreachable_scopes:
                message = f"Scope '{scope}' is unreachable."
                items[scope] = {"warning": {"code": "UNREACHABLE", "message": message}}
            elif found:
                items[scope] = {"instances": found}
            else:
                message = f"There are no results for scope '{scope}' on this page."
                items[scope] = {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": message}}
        body: dict[str, Any] = {
            "kind": "compute#instanceAggregatedList",
            "id": f"projects/{self.project}/aggregated/instances",
            "items": items,
            "selfLink": f"{BASE}/projects/{self.project}/aggregated/instances",
        }
        if start + self.page_size < len(chosen):
            body["nextPageToken"] = str(start + self.page_size)
        if self.unreachables:
            body["unreachables"] = list(self.unreachables)
        return Reply(200, body)

    def _missing(self, zone: str, name: str) -> Reply:
        message = f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' was not found"
        return Reply(404, _error(404, message, "notFound"))

    def _get(self, zone: str, name: str) -> Reply:
        instance = self.instances.get((zone, name))
        return Reply(200, instance) if instance is not None else self._missing(zone, name)

    def _act(self, verb: str, zone: str, name: str) -> Reply:
        instance = self.instances.get((zone, name))
        if instance is None:
            return self._missing(zone, name)
        self.actions.append((verb, zone, name))
        if verb == "stop":
            instance["status"] = "STOPPING"
        else:
            del self.instances[(zone, name)]
        zone_link = f"{BASE}/projects/{self.project}/zones/{zone}"
        number = next(_ids)
        return Reply(
            200,
            {
                "kind": "compute#operation",
                "id": str(number),
                "name": f"operation-{number}",
                "zone": zone_link,
                "operationType": verb,
                "targetLink": instance["selfLink"],
                "targetId": instance["id"],
                "status": "RUNNING",
                "user": "costwarden@ml-project.iam.gserviceaccount.com",
                "progress": 0,
                "insertTime": "2026-12-01T06:30:00.000-08:00",
                "startTime": "2026-12-01T06:30:00.100-08:00",
                "selfLink": f"{zone_link}/operations/operation-{number}",
            },
        )


@contextmanager
def serve(fake: FakeGce) -> Iterator[FakeGce]:
    with serve_json(fake.handle) as server:
        fake.server = server
        yield fake
