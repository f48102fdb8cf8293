"""Fuzzed price override files: YAML text, valid, broken (cut short, tabs, unclosed, anchors) or of
the wrong shape (a list, a number, unknown keys, keys that are not instance keys, prices that are
negative, NaN, infinite, huge, sexagesimal or strings), and mappings as JSON or Helm values give them.

``load_overrides_text`` and ``parse_overrides`` return usable overrides or raise OverridesError
naming the file and the field (or the line of YAML that does not parse); usable overrides price
every node and Slurm job without a negative or NaN figure.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.checks import check_overrides_mapping, check_overrides_text
from tests.fuzz.profile import fuzz
from tests.fuzz.strategies import bad_values, json_values, mutated, odd_numbers, overrides_texts

_valid = st.fixed_dictionaries(
    {},
    optional={
        "instances": st.dictionaries(
            st.sampled_from(["p5.48xlarge", "aws/us-east-1/g5.xlarge/spot"]), odd_numbers, max_size=2
        ),
        "defaults": st.fixed_dictionaries(
            {}, optional={"gpu": odd_numbers, "cpu": odd_numbers, "spotGpu": odd_numbers}
        ),
        "gpuModels": st.dictionaries(
            st.sampled_from(["NVIDIA H100 80GB HBM3", "Tesla T4"]), odd_numbers, max_size=2
        ),
        "slurm": st.fixed_dictionaries(
            {},
            optional={
                "nodes": st.dictionaries(
                    st.sampled_from(["gpu-[01-04]", "gpu-[", "n1"]),
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "gpu": odd_numbers,
                            "instance": st.sampled_from(["p5.48xlarge", "mars/x", ""]),
                        },
                    ),
                    max_size=2,
                ),
                "partitions": st.dictionaries(
                    st.sampled_from(["gpu", "debug"]), st.fixed_dictionaries({"cpu": odd_numbers}), max_size=2
                ),
            },
        ),
    },
)


@fuzz(200)
@given(overrides_texts())
def test_an_overrides_file_is_read_or_refused_naming_the_file_and_field(text: str) -> None:
    check_overrides_text(text)


@fuzz(100)
@given(mutated(_valid, bad_values) | json_values.map(lambda v: (v, [])))
def test_an_overrides_mapping_is_read_or_refused_naming_the_file_and_field(case: tuple[Any, Any]) -> None:
    data = case[0]
    check_overrides_mapping(data if isinstance(data, dict) or data is None else {"instances": data})
