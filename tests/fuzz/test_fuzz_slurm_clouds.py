"""Fuzzed answers from outside: Slurm's JSON (every recorded and traced sample in tests/data/slurm,
with places replaced: negative and huge counts, unknown states, malformed TRES strings and host
lists, wrong types) and EC2's describe_instances (instances with odd ids, states, zones, tags and
launch times, or fields of the wrong type).

The Slurm parsers never raise: every job they return has a known state, no negative allocation,
and a finite price; what they cannot read is an error line. EC2 discovery never raises: an odd
instance is read, or the discovery is incomplete with a one-line error (the operator neither
closes nor acts on VMs then); read VMs are priced without a negative or NaN figure.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.checks import check_ec2_instances, check_slurm_answer
from tests.fuzz.profile import fuzz
from tests.fuzz.strategies import ec2_instances, slurm_answers


@fuzz(150)
@given(slurm_answers())
def test_a_slurm_answer_is_parsed_without_raising_into_sane_jobs(case: tuple[str, str, Any]) -> None:
    kind, _sample, document = case
    check_slurm_answer(kind, document)


@fuzz(80)
@given(st.lists(ec2_instances(), max_size=3))
def test_ec2_discovery_of_odd_instances_never_raises(instances: list[Any]) -> None:
    check_ec2_instances(instances)
