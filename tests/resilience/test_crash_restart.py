"""Issue 12, point 2: `costwarden run` killed with SIGKILL at chosen and random points of the
scenario, restarted each time, ends as the uninterrupted run does.

Compared with the uninterrupted run: the same action records (id, action, result, notification
state, targets), each pod deleted once (one DELETE the API server carried out), each notification
delivered once, or twice where a kill fell in the window docs/enforcement.md documents (after the
receiver accepted the message, before `notification: Sent` was stored: the resend carries the same
Idempotency-Key), and spend within 0.5 % (the clock is the scenario's, so it is in fact exact).

This file is the fast slice (`make test`): three kills in one run, two of them at the named points
(right after the crossing is decided, with its Pending record stored; between the Kill's Pending
record and the deletes). The campaign of every named point plus random ones, more than 20 kills,
is test_campaign.py (RESILIENCE_CAMPAIGN=1, `make crash`).
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest

from tests.resilience.scenario import (
    EXPECTED_SPEND,
    KILL_ID,
    NOTIFY_ID,
    EndState,
    Plan,
    run,
)

WORKER, HEAD = "Pod/llama-sweep-2ea4-worker1", "Pod/llama-sweep-2ea4-head"
EXPECTED_ACTIONS = [
    (NOTIFY_ID, "Notify", "Done", "Sent", ()),
    (KILL_ID, "Kill", "Done", "Sent", (WORKER, HEAD)),
]
TOLERANCE = Decimal("0.005")


def check_against(state: EndState, baseline: EndState) -> None:
    """``state`` (a run with kills) ends as ``baseline`` (the uninterrupted run) does."""
    summary = f"kills {[k.how for k in state.kills]}: {state}"
    assert state.actions == baseline.actions, summary
    assert sorted(state.deletes) == sorted(baseline.deletes), summary
    for answers in state.deletes.values():
        assert answers.count(200) == 1, summary  # a dropped one (None) never reached the server
    for key, count in state.deliveries.items():
        record_id = key.removeprefix("research/llama-sweep/")
        assert 1 <= count <= 1 + state.windows.get(record_id, 0), summary
    assert sorted(state.deliveries) == sorted(baseline.deliveries), summary
    assert abs(state.spend - baseline.spend) <= baseline.spend * TOLERANCE, summary


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> EndState:
    state = run(tmp_path_factory.mktemp("uninterrupted"), Plan())
    assert state.kills == [] and state.starts == 1
    assert state.actions == EXPECTED_ACTIONS
    assert state.deletes == {"llama-sweep-2ea4-worker1": [200], "llama-sweep-2ea4-head": [200]}
    assert sorted(state.deliveries.values()) == [1, 1]
    assert state.spend == EXPECTED_SPEND  # 2 x 620 s at 60 USD/h, to the nanodollar
    return state


@pytest.mark.timeout(180)
def test_killed_at_the_named_points_and_at_random_it_ends_as_the_uninterrupted_run(
    tmp_path: Path, baseline: EndState
) -> None:
    plan = Plan.random(
        random.Random(12), points=("notify-decided-stored", "kill-pending-stored"), requests=0, timed=1
    )
    state = run(tmp_path, plan)
    assert len(state.kills) == 3 and state.starts == 4, state.kills
    assert {k.how for k in state.kills} >= {"notify-decided-stored", "kill-pending-stored"}
    check_against(state, baseline)
    assert state.spend == baseline.spend  # not only within 0.5 %: exact
