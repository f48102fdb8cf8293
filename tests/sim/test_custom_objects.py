"""Custom objects: schema validation, unknown fields, defaults, printer columns."""

from __future__ import annotations

from datetime import timedelta

import pytest

from costwarden.sim import schema
from costwarden.sim.cluster import SimCluster
from costwarden.sim.errors import ApiError
from tests.clock import ManualClock
from tests.sim.conftest import TABLE, Api
from tests.sim.crd import API_VERSION, budget, pod

BUDGETS = f"/apis/{API_VERSION}/namespaces/default/budgets"
needs_validator = pytest.mark.skipif(schema.load_validator() is None, reason="crdvalidation not written yet")


@needs_validator
async def test_invalid_object_names_the_field(api: Api) -> None:
    reply = await api.post(BUDGETS, budget("x", limit=0))
    assert reply.status == 422 and reply.body["reason"] == "Invalid"
    assert reply.body["message"].startswith('Budget.testing.costwarden.dev "x" is invalid: spec.limit: ')
    cause = reply.body["details"]["causes"][0]
    assert cause["field"] == "spec.limit" and cause["reason"] == "FieldValueInvalid"
    assert (reply.body["details"]["kind"], reply.body["details"]["group"]) == (
        "Budget",
        "testing.costwarden.dev",
    )


@needs_validator
async def test_invalid_update_and_status_are_refused(api: Api) -> None:
    await api.post(BUDGETS, budget("x"))
    assert (await api.patch(f"{BUDGETS}/x", {"spec": {"period": "Hourly"}})).status == 422
    assert (await api.patch(f"{BUDGETS}/x/status", {"status": {"ticks": "many"}})).status == 422
    assert (await api.get(f"{BUDGETS}/x")).body["spec"]["period"] == "Lifetime"


async def test_in_process_create_is_validated_too(sim: SimCluster) -> None:
    with pytest.raises(ApiError) as caught:
        await sim.create({**budget("x"), "metadata": {"name": "Not_A_Name"}})
    assert caught.value.code == 422


async def test_unknown_fields_strict_warn_and_pruned(api: Api) -> None:
    strict = await api.post(f"{BUDGETS}?fieldValidation=Strict", budget("s", junk=1))
    assert strict.status == 400
    assert strict.body["message"] == (
        'Budget in version "v1" cannot be handled as a Budget: '
        'strict decoding error: unknown field "spec.junk"'
    )
    warned = await api.post(BUDGETS, budget("w", junk=1, extra={"free": "form"}))
    assert warned.status == 201 and warned.headers.getall("Warning") == [
        '299 - "unknown field \\"spec.junk\\""'
    ]
    assert "junk" not in warned.body["spec"] and warned.body["spec"]["extra"] == {"free": "form"}
    status = await api.patch(f"{BUDGETS}/w/status", {"status": {"spend": 1, "bogus": 2}})
    assert status.body["status"] == {"spend": 1}


async def test_defaults_are_applied(api: Api) -> None:
    created = await api.post(BUDGETS, budget("d"))
    assert created.body["spec"]["period"] == "Lifetime"
    cleared = await api.patch(f"{BUDGETS}/d", {"spec": {"period": None}})
    assert cleared.body["spec"]["period"] == "Lifetime"


async def test_printer_columns_in_tables(api: Api, sim: SimCluster, clock: ManualClock) -> None:
    await sim.create(budget("b", limit=500))
    await sim.patch(
        API_VERSION, "budgets", "b", {"status": {"spend": 412.07, "phase": "Warning"}}, subresource="status"
    )
    clock.advance(timedelta(minutes=5, seconds=10))
    table = (await api.get(BUDGETS, accept=TABLE)).body
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Spend", "Limit", "Phase", "Age"]
    assert table["rows"][0]["cells"] == ["b", 412.07, 500.0, "Warning", "5m10s"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    single = (await api.get(f"{BUDGETS}/b", accept=TABLE)).body
    assert single["rows"][0]["cells"][0] == "b"


async def test_builtin_tables(api: Api, sim: SimCluster) -> None:
    await sim.create(pod("p", nodeName="n1"))
    await sim.patch(
        "v1", "pods", "p", {"status": {"phase": "Running", "podIP": "10.0.0.1"}}, subresource="status"
    )
    pods = (await api.get("/api/v1/pods", accept=TABLE)).body
    assert [c["name"] for c in pods["columnDefinitions"]][:6] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
        "IP",
    ]
    assert pods["rows"][0]["cells"] == ["p", "0/1", "Running", 0, "0s", "10.0.0.1", "n1"]
    namespaces = (await api.get("/api/v1/namespaces", accept=TABLE)).body
    assert ["default", "Active", "0s"] in [r["cells"] for r in namespaces["rows"]]
    configmaps = (await api.get("/api/v1/configmaps", accept=TABLE)).body
    assert [c["name"] for c in configmaps["columnDefinitions"]] == ["Name", "Data", "Age"]
