"""Every case the fuzz tests found (tests/data/corpus/*.json), run again through its property
without any search: so each stays fixed in ``make test``.

A case is ``{"check": <property>, "found": <what went wrong>, "fixed": <where and how>, "input":
{...}}``; ``input`` holds the property's arguments (``{"$datetime": iso}`` for a datetime). NaN and
Infinity are written as Python's JSON writes them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz import checks

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


def _billing_file(tmp_path: Path, given: dict[str, Any]) -> None:
    content = base64.b64decode(given["base64"]) if "base64" in given else given["text"].encode()
    checks.check_billing_file(tmp_path / given.get("name", "export.csv"), content)


RUN: dict[str, Callable[[Path, dict[str, Any]], None]] = {
    "spec": lambda _, i: checks.check_spec(i["raw"], [tuple(p) for p in i["places"]]) and None,
    "crd_and_model": lambda _, i: checks.check_crd_and_model_agree(i["raw"]),
    "pod_body": lambda _, i: checks.check_pod_body(i["body"]) and None,
    "node_body": lambda _, i: checks.check_node_body(i["body"]) and None,
    "evaluation": lambda _, i: checks.check_evaluation(i["spec"], i["nodes"], i["pods"], i["hours"]),
    "overrides_text": lambda _, i: checks.check_overrides_text(i["text"]),
    "overrides_mapping": lambda _, i: checks.check_overrides_mapping(i["data"]),
    "billing_file": _billing_file,
    "billing_bad_cell": lambda tmp, i: checks.check_billing_bad_cell(
        tmp / "export.csv", i["header"], i["row"], i["column"]
    ),
    "slurm_answer": lambda _, i: checks.check_slurm_answer(i["kind"], i["document"]),
    "ec2_instances": lambda _, i: checks.check_ec2_instances(i["instances"]),
}
CASES = sorted(CORPUS.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def test_the_corpus_is_there_and_every_case_says_what_it_was() -> None:
    assert len(CASES) >= 30
    for path in CASES:
        case = _load(path)
        assert set(case) == {"check", "found", "fixed", "input"}, path.name
        assert case["check"] in RUN and case["found"] and case["fixed"], path.name


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_a_case_once_found_holds(path: Path, tmp_path: Path) -> None:
    case = _load(path)
    RUN[case["check"]](tmp_path, checks.decode(case["input"]))
