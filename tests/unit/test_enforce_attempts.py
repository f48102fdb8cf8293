"""What one try of a destructive action makes of its record: Done, Pending (held up or to be
tried again) or Failed, by how each target's request ended (``enforce.attempt_outcome``)."""

from __future__ import annotations

from typing import Any

import pytest

from costwarden.engine.outcomes import MAX_ATTEMPTS
from costwarden.models import Action, ActionRecord, ActionResult
from costwarden.operator.enforce import attempt_outcome, secret_retried
from costwarden.operator.kube import KubeError
from costwarden.operator.workloads import Outcome, TargetResult, scale_to_zero, transient


def record(attempts: int) -> ActionRecord:
    return ActionRecord(
        id="threshold/100/lifetime",
        time="2026-12-01T00:00:00Z",
        trigger="spend reached 100%",
        action=Action.KILL,
        targets=("Pod/worker", "Pod/head"),
        attempts=attempts,
    )


def pod(name: str, outcome: Outcome, message: str = "") -> TargetResult:
    return TargetResult(f"Pod ns/{name}", outcome, message or outcome.value)


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504, None])
def test_timeouts_server_errors_and_no_answer_are_transient(status):
    assert transient(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422, 429, 501])
def test_refusals_invalid_requests_and_throttling_are_not_transient(status):
    assert not transient(status)  # 429 is Throttled, 404 Gone, 409 a conflict: each its own outcome


def test_a_secret_read_is_still_retried_on_the_answers_it_was_retried_on():
    retried = {status for status in range(400, 600) if secret_retried(status)}
    assert retried == {408, 409, 429, 500, 502, 503, 504}
    assert secret_retried(None)


class OwnerReads:
    """A KubeClient whose reads of a pod's owner fail with ``status``."""

    dry_run = False

    def __init__(self, status: int | None) -> None:
        self.status = status

    async def get_owner(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        raise KubeError(f"{kind} {namespace}/{name}: HTTP {self.status}", status=self.status)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(503, Outcome.TRANSIENT), (None, Outcome.TRANSIENT), (429, Outcome.THROTTLED), (403, Outcome.FAILED)],
)
async def test_a_scale_whose_read_fails_says_whether_a_retry_may_help(status, outcome):
    result = await scale_to_zero(OwnerReads(status), "ns", "Deployment", "trainer")  # type: ignore[arg-type]
    assert (result.target, result.result) == ("Deployment ns/trainer", outcome)
    assert result.message == f"Deployment ns/trainer: HTTP {status}"


@pytest.mark.parametrize("attempts", [1, MAX_ATTEMPTS, MAX_ATTEMPTS + 7])
def test_a_transient_try_stays_pending_whatever_the_attempts(attempts):
    results = [pod("worker", Outcome.DONE, "deleted"), pod("head", Outcome.TRANSIENT, "HTTP 503")]
    outcome, held_up = attempt_outcome(record(attempts), results)
    assert held_up == "transient"
    assert outcome.result is ActionResult.PENDING
    assert outcome.message == "transient, will retry: Pod ns/worker: deleted; Pod ns/head: HTTP 503"


def test_throttled_alone_is_throttled_and_with_a_transient_one_transient():
    throttled = [pod("worker", Outcome.THROTTLED, "retry after 1s")]
    outcome, held_up = attempt_outcome(record(MAX_ATTEMPTS), throttled)
    assert (outcome.result, held_up) == (ActionResult.PENDING, "throttled")
    assert outcome.message == "throttled, will retry: Pod ns/worker: retry after 1s"
    both = [*throttled, pod("head", Outcome.TRANSIENT)]
    outcome, held_up = attempt_outcome(record(MAX_ATTEMPTS), both)
    assert (outcome.result, held_up) == (ActionResult.PENDING, "transient")
    assert outcome.message.startswith("transient, will retry: ")


def test_a_permanent_failure_counts_as_an_attempt_even_beside_transient_ones():
    results = [pod("worker", Outcome.FAILED, "forbidden"), pod("head", Outcome.TRANSIENT, "HTTP 503")]
    early, held_up = attempt_outcome(record(1), results)
    assert held_up is None
    assert (early.result, early.message) == (
        ActionResult.PENDING,
        "attempt 1 failed, will retry: Pod ns/worker: forbidden; Pod ns/head: HTTP 503",
    )
    last, _ = attempt_outcome(record(MAX_ATTEMPTS), results)
    assert last.result is ActionResult.FAILED


def test_a_try_that_finds_its_pods_done_or_gone_is_done():
    results = [pod("worker", Outcome.GONE, "not found: nothing left to stop"), pod("head", Outcome.DONE)]
    outcome, held_up = attempt_outcome(record(MAX_ATTEMPTS + 3), results, earlier=("Pod ns/other",))
    assert (outcome.result, held_up) == (ActionResult.DONE, None)
    assert outcome.message == (
        "Pod ns/other: gone (acted on by an earlier attempt); "
        "Pod ns/worker: not found: nothing left to stop; Pod ns/head: Done"
    )
