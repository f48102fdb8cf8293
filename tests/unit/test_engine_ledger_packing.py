"""The ledger's stored per-pod table (``status.ledger.packedPods``) and idle-since times
(``status.ledger.packedIdleSince``): exact, versioned, readable in the form earlier releases
stored, refused with the field named when corrupt."""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import logging
import zlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from costwarden import models
from costwarden.engine.money import QUANTUM
from costwarden.models import (
    BudgetLedger,
    CostBudgetStatus,
    PodLedgerEntry,
    explain,
    idle_set_key,
    pack_idle_since,
    pack_pods,
    pod_set_key,
    unpack_idle_since,
    unpack_pods,
)
from costwarden.operator.budgets import previous_status

AT = "2026-11-27T10:00:00Z"
UID_A = "0b7c1f3e-9d2a-4c51-8e6f-1a2b3c4d5e6f"
UID_B = "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9"

finite = st.decimals(allow_nan=False, allow_infinity=False)
nanodollars = st.integers(min_value=0, max_value=10**16).map(lambda n: Decimal(n) * QUANTUM)
times = st.one_of(st.sampled_from([AT, "2026-11-27T09:59:59Z", "2026-10-31T23:00:00Z"]), st.text(max_size=30))
entries = st.builds(
    PodLedgerEntry,
    spend=st.one_of(nanodollars, finite),
    at=times,
    baseline=st.one_of(st.just(Decimal(0)), nanodollars, finite),
)
uuids = st.uuids(version=4).map(str)


def _payload(packed: str) -> tuple[dict[str, Any], bytes]:
    data = zlib.decompress(base64.b64decode(packed.split(":")[3]))
    head, _, body = data.partition(b"\n")
    return json.loads(head), body


def _craft(header: dict[str, Any], body: bytes, uids: list[str]) -> str:
    """A v1 string around an arbitrary payload, with the pod count and digest its uids give."""
    digest = hashlib.blake2b("\n".join(uids).encode(), digest_size=8).hexdigest()
    data = base64.b64encode(zlib.compress(json.dumps(header).encode() + b"\n" + body)).decode()
    return f"v1:{len(uids)}:{digest}:{data}"


@settings(max_examples=300)
@given(pods=st.dictionaries(st.one_of(uuids, st.text(max_size=40)), entries, max_size=25))
def test_any_table_round_trips_exactly(pods: dict[str, PodLedgerEntry]) -> None:
    assert unpack_pods(pack_pods(pods)) == pods


@given(pods=st.dictionaries(uuids, entries, max_size=25), closed=finite)
def test_a_ledger_round_trips_through_the_stored_status(
    pods: dict[str, PodLedgerEntry], closed: Decimal
) -> None:
    status = CostBudgetStatus(ledger=BudgetLedger(period_start=AT, closed_spend=closed, pods=pods))
    stored = json.loads(json.dumps(status.to_k8s()))
    assert "pods" not in stored["ledger"]
    assert CostBudgetStatus.model_validate(stored).ledger == status.ledger


def test_the_payload_is_what_docs_describe() -> None:
    pods = {
        UID_B: PodLedgerEntry(spend=Decimal("412.071234567"), at=AT),
        UID_A: PodLedgerEntry(spend=Decimal("12.5"), at="2026-11-27T09:00:00Z", baseline=Decimal("7")),
        "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a": PodLedgerEntry(spend=Decimal("1.0000000005"), at=AT),
    }
    packed = pack_pods(pods)
    version, count, digest, _ = packed.split(":")
    uids = sorted(pods)
    assert (version, count) == ("v1", "3")
    assert digest == hashlib.blake2b("\n".join(uids).encode(), digest_size=8).hexdigest()
    header, body = _payload(packed)
    assert header == {"n": 3, "at": [AT, "2026-11-27T09:00:00Z"]}
    assert body[:48] == b"".join(bytes.fromhex(uid.replace("-", "")) for uid in uids)
    assert body[48:].decode().split("\n") == [
        "12500000000", "1000000000.5", "412071234567",  # spend, nanodollars
        "7000000000", "", "",  # baseline, "" for 0
        "1", "", "",  # index into "at", "" for the first
    ]  # fmt: skip


def test_uids_that_are_not_lowercase_uuids_are_kept_as_text() -> None:
    pods = {
        "uid-head": PodLedgerEntry(spend=Decimal(1), at=AT),
        UID_A.upper(): PodLedgerEntry(spend=Decimal(2), at=AT),
    }
    header, _ = _payload(pack_pods(pods))
    assert header["uids"] == sorted(pods)
    assert unpack_pods(pack_pods(pods)) == pods


def test_the_map_earlier_releases_stored_is_read() -> None:
    raw = {
        "periodStart": "2026-11-01T00:00:00Z",
        "closedSpend": "12",
        "pods": {
            UID_A: {"spend": "55.04", "at": AT, "baseline": "3", "name": "llama-head"},
            UID_B: {"spend": "1E+2", "at": AT},
        },
        "idleSince": {UID_A: AT},
    }
    ledger = CostBudgetStatus.model_validate({"ledger": raw}).ledger
    assert ledger.pods == {
        UID_A: PodLedgerEntry(spend=Decimal("55.04"), at=AT, baseline=Decimal(3)),
        UID_B: PodLedgerEntry(spend=Decimal(100), at=AT),
    }
    assert (ledger.closed_spend, ledger.idle_since) == (Decimal(12), {UID_A: AT})
    rewritten = CostBudgetStatus(ledger=ledger).to_k8s()["ledger"]
    assert "pods" not in rewritten
    assert "idleSince" not in rewritten
    assert unpack_pods(rewritten["packedPods"]) == ledger.pods
    assert unpack_idle_since(rewritten["packedIdleSince"], ledger.pods) == {UID_A: AT}


def test_the_packed_table_wins_over_a_stale_map() -> None:
    packed = pack_pods({UID_B: PodLedgerEntry(spend=Decimal(5), at=AT)})
    idle = pack_idle_since({UID_B: AT}, [UID_B])
    raw = {
        "pods": {UID_A: {"spend": "1", "at": AT}},
        "packedPods": packed,
        "idleSince": {UID_A: AT},
        "packedIdleSince": idle,
    }
    ledger = BudgetLedger.model_validate(raw)
    assert (set(ledger.pods), ledger.idle_since) == ({UID_B}, {UID_B: AT})


def test_an_empty_ledger_is_stored_as_an_empty_table() -> None:
    stored = CostBudgetStatus().to_k8s()["ledger"]
    assert stored["packedPods"].startswith("v1:0:")
    assert stored["packedIdleSince"].startswith("v1:0:")
    assert BudgetLedger.model_validate(stored) == BudgetLedger()


def _valid() -> str:
    return pack_pods(
        {UID_A: PodLedgerEntry(spend=Decimal(1), at=AT), UID_B: PodLedgerEntry(spend=Decimal(2), at=AT)}
    )


UUID_BYTES = bytes.fromhex(UID_A.replace("-", ""))
CORRUPT = {
    "not a string": 42,
    "unknown version": "v9:" + _valid()[3:],
    "no version": "eJyrVspTslIw0FFQSiwBMqJja7kALtoEtg==",
    "missing parts": "v1:2:eJyrVspTslIw0FFQSiwBMqJja7kALtoEtg==",
    "not base64": "v1:2:0123456789abcdef:!!!!",
    "not zlib": "v1:2:0123456789abcdef:" + base64.b64encode(b"plain text").decode(),
    "truncated": _valid()[:-12],
    "wrong digest": _valid().replace(_valid().split(":")[2], "0" * 16),
    "wrong count": "v1:3:" + _valid().split(":", 2)[2],
    "header not json": "v1:1:0:" + base64.b64encode(zlib.compress(b"{n: 1}\n")).decode(),
    "header without n": _craft({"at": [AT]}, UUID_BYTES + b"1\n\n", [UID_A]),
    "negative n": _craft({"n": -1, "at": []}, b"", []),
    "too few figures": _craft({"n": 1, "at": [AT]}, UUID_BYTES + b"1\n", [UID_A]),
    "figure not a number": _craft({"n": 1, "at": [AT]}, UUID_BYTES + b"one\n\n", [UID_A]),
    "figure not finite": _craft({"n": 1, "at": [AT]}, UUID_BYTES + b"NaN\n\n", [UID_A]),
    "time index out of range": _craft({"n": 1, "at": [AT]}, UUID_BYTES + b"1\n\n1", [UID_A]),
    "negative time index": _craft({"n": 1, "at": [AT]}, UUID_BYTES + b"1\n\n-1", [UID_A]),
    "uid bytes missing": _craft({"n": 1, "at": [AT]}, b"", [UID_A]),
    "uid twice": _craft({"n": 2, "at": [AT], "uids": ["u", "u"]}, b"1\n1\n\n\n\n", ["u", "u"]),
    "uid not text": _craft({"n": 1, "at": [AT], "uids": [7]}, b"1\n\n", ["7"]),
}


@pytest.mark.parametrize("packed", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_table_is_refused_naming_the_field(packed: object) -> None:
    with pytest.raises(ValidationError) as caught:
        CostBudgetStatus.model_validate({"ledger": {"packedPods": packed}})
    (line,) = explain(caught.value, "status")
    assert line.startswith("status.ledger.packedPods: Value error, "), line


def test_a_table_that_unpacks_too_large_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_MAX_PACKED_BYTES", 1024)
    pods = {
        f"{n:08x}-0000-4000-8000-000000000000": PodLedgerEntry(spend=Decimal(n), at=AT) for n in range(200)
    }
    with pytest.raises(ValueError, match="larger than"):
        unpack_pods(pack_pods(pods))


def test_the_operator_starts_a_fresh_ledger_from_a_corrupt_one(caplog: pytest.LogCaptureFixture) -> None:
    raw = {"phase": "Warning", "ledger": {"closedSpend": "3", "packedPods": CORRUPT["wrong digest"]}}
    with caplog.at_level(logging.ERROR):
        status = previous_status(raw, "research/llama")
    assert status == CostBudgetStatus()
    assert "status.ledger.packedPods" in caplog.text


def test_pod_set_key_reads_both_forms_without_unpacking() -> None:
    pods = {UID_A: PodLedgerEntry(spend=Decimal(1), at=AT), UID_B: PodLedgerEntry(spend=Decimal(2), at=AT)}
    packed = pack_pods(pods)
    later = pack_pods({uid: entry.model_copy(update={"spend": Decimal(9)}) for uid, entry in pods.items()})
    old_map = {UID_B: {"spend": "2", "at": AT}, UID_A: {"spend": "1", "at": AT}, "gone": None}
    assert pod_set_key({"packedPods": packed}) == pod_set_key({"packedPods": later})
    assert pod_set_key({"packedPods": packed, "pods": None}) == pod_set_key({"pods": old_map})
    assert pod_set_key({"packedPods": pack_pods({UID_A: pods[UID_A]})}) != pod_set_key({"packedPods": packed})
    assert pod_set_key({}) == pod_set_key({"packedPods": pack_pods({})}) == pod_set_key({"pods": {}})


def test_a_ledger_is_packed_once_and_its_cache_entry_goes_with_it() -> None:
    pods = {UID_A: PodLedgerEntry(spend=Decimal(1), at=AT)}
    status = CostBudgetStatus(ledger=BudgetLedger(pods=pods, idle_since={UID_A: AT}))
    first, idle = status.to_k8s()["ledger"]["packedPods"], status.to_k8s()["ledger"]["packedIdleSince"]
    assert status.to_k8s()["ledger"]["packedPods"] is first
    assert status.to_k8s()["ledger"]["packedIdleSince"] is idle
    moved = status.ledger.model_copy(update={"pods": {UID_A: PodLedgerEntry(spend=Decimal(2), at=AT)}})
    assert unpack_pods(CostBudgetStatus(ledger=moved).to_k8s()["ledger"]["packedPods"])[UID_A].spend == 2
    key = id(status.ledger)
    del status, moved
    gc.collect()
    assert key not in models._PACKED


# --- status.ledger.packedIdleSince ---------------------------------------------------------------

UID_C = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
UID_D = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
uid_texts = st.one_of(uuids, st.text(max_size=40))


@settings(max_examples=300)
@given(data=st.data(), pods=st.lists(uid_texts, unique=True, max_size=25))
def test_any_idle_since_map_round_trips_exactly(data: st.DataObject, pods: list[str]) -> None:
    held = data.draw(st.lists(st.sampled_from(pods), unique=True) if pods else st.just([]))
    idle = data.draw(st.dictionaries(uid_texts, times, max_size=10))  # pods packedPods may not hold
    idle.update({uid: data.draw(times) for uid in held})
    assert unpack_idle_since(pack_idle_since(idle, pods), pods) == idle


@given(pods=st.dictionaries(uuids, entries, min_size=1, max_size=25), data=st.data())
def test_idle_since_round_trips_through_the_stored_status(
    pods: dict[str, PodLedgerEntry], data: st.DataObject
) -> None:
    idle = {uid: data.draw(times) for uid in data.draw(st.lists(st.sampled_from(sorted(pods)), unique=True))}
    status = CostBudgetStatus(ledger=BudgetLedger(pods=pods, idle_since=idle))
    stored = json.loads(json.dumps(status.to_k8s()))
    assert "idleSince" not in stored["ledger"]
    assert CostBudgetStatus.model_validate(stored).ledger == status.ledger


def test_the_idle_since_payload_is_what_docs_describe() -> None:
    pods = [UID_B, UID_A, UID_C]  # the uids of packedPods, in any order
    idle = {UID_B: AT, UID_A: "2026-11-27T09:00:00Z", UID_D: AT}  # UID_C is not idle, UID_D not in pods
    packed = pack_idle_since(idle, pods)
    version, count, digest, _ = packed.split(":")
    assert (version, count) == ("v1", "3")
    assert digest == hashlib.blake2b("\n".join(sorted(idle)).encode(), digest_size=8).hexdigest()
    header, body = _payload(packed)
    assert header == {"n": 1, "at": [AT, "2026-11-27T09:00:00Z"], "pods": 3}
    assert body[:16] == bytes.fromhex(UID_D.replace("-", ""))
    assert body[16:].decode().split("\n") == [
        "1", "", "0",  # the pods of packedPods, sorted (A, C, B): index into "at", "" when not idle
        "0",  # UID_D, whose uid is stored
    ]  # fmt: skip


def test_idle_uids_that_are_not_lowercase_uuids_are_kept_as_text_unless_the_table_holds_them() -> None:
    idle = {"uid-head": AT, UID_A.upper(): AT}
    header, body = _payload(pack_idle_since(idle, []))
    assert (header["uids"], body) == (sorted(idle), b"0\n0")
    assert unpack_idle_since(pack_idle_since(idle, []), []) == idle
    header, _ = _payload(pack_idle_since(idle, ["uid-head", "uid-w1"]))
    assert (header["n"], header["uids"]) == (1, [UID_A.upper()])
    assert unpack_idle_since(pack_idle_since(idle, ["uid-w1", "uid-head"]), ["uid-head", "uid-w1"]) == idle


def test_pods_all_idle_since_one_pass_cost_a_few_bytes() -> None:
    pods = {
        f"{n:08x}-0000-4000-8000-000000000000": PodLedgerEntry(spend=Decimal(n), at=AT) for n in range(5000)
    }
    ledger = BudgetLedger(pods=pods, idle_since=dict.fromkeys(pods, AT))
    assert len(CostBudgetStatus(ledger=ledger).to_k8s()["ledger"]["packedIdleSince"]) < 200


PODS_AB = pack_pods(
    {UID_A: PodLedgerEntry(spend=Decimal(1), at=AT), UID_B: PodLedgerEntry(spend=Decimal(2), at=AT)}
)


def _idle_valid() -> str:
    return pack_idle_since({UID_A: AT, UID_C: AT}, [UID_A, UID_B])


CORRUPT_IDLE = {
    "not a string": 42,
    "unknown version": "v9:" + _idle_valid()[3:],
    "not base64": "v1:1:0123456789abcdef:!!!!",
    "truncated": _idle_valid()[:-8],
    "wrong digest": _idle_valid().replace(_idle_valid().split(":")[2], "0" * 16),
    "wrong count": "v1:3:" + _idle_valid().split(":", 2)[2],
    "for another pod table": pack_idle_since({UID_A: AT}, [UID_A]),
    "for other pods as many": pack_idle_since({UID_C: AT}, [UID_C, UID_D]),
    "header without pods": _craft({"n": 0, "at": [AT]}, b"0\n", [UID_A]),
    "too few lines": _craft({"n": 0, "at": [AT], "pods": 2}, b"0", [UID_A]),
    "time index out of range": _craft({"n": 0, "at": [AT], "pods": 2}, b"1\n", [UID_A]),
    "negative time index": _craft({"n": 0, "at": [AT], "pods": 2}, b"-1\n", [UID_A]),
    "stored uid without a time": _craft({"n": 1, "at": [AT], "pods": 2}, UUID_BYTES + b"0\n\n", [UID_A]),
    "stored uid the table holds": _craft({"n": 1, "at": [AT], "pods": 2}, UUID_BYTES + b"0\n\n0", [UID_A]),
}


@pytest.mark.parametrize("packed", CORRUPT_IDLE.values(), ids=CORRUPT_IDLE.keys())
def test_corrupt_idle_since_times_are_refused_naming_the_field(packed: object) -> None:
    with pytest.raises(ValidationError) as caught:
        CostBudgetStatus.model_validate({"ledger": {"packedPods": PODS_AB, "packedIdleSince": packed}})
    (line,) = explain(caught.value, "status")
    assert line.startswith("status.ledger.packedIdleSince: Value error, "), line


def test_idle_times_beside_an_unreadable_table_are_refused_too(caplog: pytest.LogCaptureFixture) -> None:
    raw = {"ledger": {"packedPods": CORRUPT["wrong digest"], "packedIdleSince": _idle_valid()}}
    with caplog.at_level(logging.ERROR):
        assert previous_status(raw, "research/llama") == CostBudgetStatus()
    assert "status.ledger.packedPods" in caplog.text
    assert "status.ledger.packedIdleSince" in caplog.text


def test_idle_set_key_reads_both_forms_without_unpacking() -> None:
    packed = pack_idle_since({UID_A: AT, UID_C: AT}, [UID_A, UID_B])
    later = pack_idle_since({UID_A: "2026-11-27T11:00:00Z", UID_C: AT}, [UID_A, UID_B, UID_C])
    old_map = {"idleSince": {UID_C: AT, UID_A: AT, "recovered": None}}
    assert idle_set_key({"packedIdleSince": packed}) == idle_set_key({"packedIdleSince": later})
    assert idle_set_key({"packedIdleSince": packed, "idleSince": None}) == idle_set_key(old_map)
    fewer = pack_idle_since({UID_A: AT}, [UID_A])
    assert idle_set_key({"packedIdleSince": fewer}) != idle_set_key({"packedIdleSince": packed})
    empty = pack_idle_since({}, [UID_A, UID_B])
    assert idle_set_key({}) == idle_set_key({"packedIdleSince": empty}) == idle_set_key({"idleSince": {}})
