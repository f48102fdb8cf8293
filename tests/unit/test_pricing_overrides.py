"""The price overrides file: parsing, exact money, key matching and error messages."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from costwarden.pricing import OverridesError, PriceOverrides, load_overrides_text, parse_overrides
from costwarden.pricing.overrides import normalize_model, parse_instance_key

EXAMPLE = """
instances:            # USD/hour for a whole node, most specific key wins
  p5.48xlarge: 40.00
  aws/us-east-1/p5.48xlarge/spot: 18.5
defaults: {gpu: 2.5, cpu: 0.031611, ramGiB: 0.004237, spotCpu: 0.006655, spotRamGiB: 0.000892}
gpuModels: {"NVIDIA H100 80GB HBM3": 6.88}   # per-GPU price for unknown instance types with that GPU
"""


def test_example_file_parses_to_decimals() -> None:
    overrides = load_overrides_text(EXAMPLE, "values.yaml")
    assert overrides.origin == "values.yaml"
    assert overrides.instances == {
        "p5.48xlarge": Decimal("40.00"),
        "aws/us-east-1/p5.48xlarge/spot": Decimal("18.5"),
    }
    assert overrides.defaults.gpu == Decimal("2.5")
    assert overrides.defaults.spot_ram_gib == Decimal("0.000892")
    assert overrides.gpu_models == {"NVIDIA H100 80GB HBM3": Decimal("6.88")}
    assert overrides.defaults_changed


def test_yaml_numbers_keep_their_digits() -> None:
    # 18.123456789012345678 is not representable as a float; the loader must not go through one.
    overrides = load_overrides_text("instances: {g5.xlarge: 18.123456789012345678}", "f.yaml")
    assert overrides.instances["g5.xlarge"] == Decimal("18.123456789012345678")


def test_json_text_and_parsed_json_both_work() -> None:
    text = '{"instances": {"gcp/a3-highgpu-8g": 30.5}, "gpuModels": {"L4": 0.7}}'
    from_text = load_overrides_text(text, "o.json")
    from_mapping = parse_overrides(json.loads(text), "o.json")
    assert from_text.instances == from_mapping.instances == {"gcp/a3-highgpu-8g": Decimal("30.5")}
    assert from_mapping.gpu_models["L4"] == Decimal("0.7")


def test_empty_file_means_no_overrides_and_opencost_defaults() -> None:
    overrides = load_overrides_text("", "empty.yaml")
    assert overrides.instances == {} and overrides.gpu_models == {}
    assert overrides.defaults.gpu == Decimal("0.95")
    assert overrides.defaults.cpu == Decimal("0.031611")
    assert overrides.defaults.ram_gib == Decimal("0.004237")
    assert overrides.defaults.rates("spot") == (Decimal("0.95"), Decimal("0.006655"), Decimal("0.000892"))
    assert not overrides.defaults_changed


def test_spot_gpu_default_is_used_for_spot_nodes_when_set() -> None:
    overrides = load_overrides_text("defaults: {spotGpu: 0.4}", "f")
    assert overrides.defaults.rates("spot")[0] == Decimal("0.4")
    assert overrides.defaults.rates("on-demand")[0] == Decimal("0.95")


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("defaults: {gpu: cheap}", "defaults.gpu", "decimal"),
        ("defaults: {gpu: -1}", "defaults.gpu", "greater than or equal to 0"),
        ("defaults: {ramGiB: .inf}", "defaults.ramGiB", ""),
        ("instances: {p5.48xlarge: 0}", "instances.p5.48xlarge", "greater than 0"),
        ("instances: {p5.48xlarge: [40]}", "instances.p5.48xlarge", ""),
        ("instances: {ibm/us-south/bx2-4x16: 1}", "instances", "'ibm' is not a cloud"),
        ("instances: {aws/us-east-1/extra/p5.48xlarge/spot: 1}", "instances", "is not [cloud/][region/]"),
        ("gpuModels: {H100: free}", "gpuModels.H100", "decimal"),
        ("instanses: {p5.48xlarge: 40}", "instanses", "Extra inputs are not permitted"),
        ("defaults: {gpuPrice: 1}", "defaults.gpuPrice", "Extra inputs are not permitted"),
    ],
)
def test_malformed_file_error_names_file_and_field(text: str, field: str, problem: str) -> None:
    with pytest.raises(OverridesError) as caught:
        load_overrides_text(text, "/etc/costwarden/prices.yaml")
    message = str(caught.value)
    assert message.startswith(f"/etc/costwarden/prices.yaml: {field}: ")
    assert problem in message


def test_yaml_syntax_error_names_file_and_line() -> None:
    with pytest.raises(OverridesError) as caught:
        load_overrides_text("instances:\n  p5.48xlarge: 40\n   g5.xlarge: 1\n", "prices.yaml")
    assert str(caught.value) == (
        "prices.yaml: line 3, column 13: not valid YAML: mapping values are not allowed here"
    )


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(OverridesError, match=r"^p\.yaml: the top level must be a mapping, not list$"):
        load_overrides_text("- 1\n- 2\n", "p.yaml")


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("p5.48xlarge", (None, None, "p5.48xlarge", None)),
        ("P5.48XLARGE/Spot", (None, None, "p5.48xlarge", "spot")),
        ("aws/p5.48xlarge", ("aws", None, "p5.48xlarge", None)),
        ("aws/p5.48xlarge/reserved", ("aws", None, "p5.48xlarge", "reserved")),
        ("aws/us-east-1/p5.48xlarge", ("aws", "us-east-1", "p5.48xlarge", None)),
        ("aws/us-east-1/p5.48xlarge/spot", ("aws", "us-east-1", "p5.48xlarge", "spot")),
        (
            "azure/eastus/Standard_NC24ads_A100_v4/on-demand",
            ("azure", "eastus", "standard_nc24ads_a100_v4", "on-demand"),
        ),
    ],
)
def test_instance_key_shapes(key: str, parsed: tuple[str | None, str | None, str, str | None]) -> None:
    assert parse_instance_key(key) == parsed


@pytest.mark.parametrize("key", ["", "aws//p5.48xlarge", "us-east-1/p5.48xlarge", "a/b/c/d/e"])
def test_bad_instance_keys(key: str) -> None:
    with pytest.raises(ValueError, match="instance key"):
        parse_instance_key(key)


def test_most_specific_candidate_wins() -> None:
    overrides = PriceOverrides.model_validate(
        {"instances": {"p5.48xlarge": 40, "aws/p5.48xlarge/spot": 20, "aws/us-east-1/p5.48xlarge/spot": 18.5}}
    )
    east_spot = [
        ("aws", "us-east-1", "p5.48xlarge", "spot"),
        ("aws", "us-east-1", "p5.48xlarge", None),
        ("aws", None, "p5.48xlarge", "spot"),
        ("aws", None, "p5.48xlarge", None),
        (None, None, "p5.48xlarge", "spot"),
        (None, None, "p5.48xlarge", None),
    ]
    assert overrides.instance_price(east_spot) == ("aws/us-east-1/p5.48xlarge/spot", Decimal("18.5"))
    assert overrides.instance_price(east_spot[2:]) == ("aws/p5.48xlarge/spot", Decimal("20"))
    assert overrides.instance_price(east_spot[5:]) == ("p5.48xlarge", Decimal("40"))
    assert overrides.instance_price([(None, None, "g5.xlarge", None)]) is None


def test_gpu_model_names_match_label_spelling() -> None:
    overrides = parse_overrides({"gpuModels": {"NVIDIA H100 80GB HBM3": "6.88"}}, "f")
    assert overrides.gpu_model_price("NVIDIA-H100-80GB-HBM3") == ("NVIDIA H100 80GB HBM3", Decimal("6.88"))
    assert overrides.gpu_model_price("NVIDIA-A100-SXM4-80GB") is None
    assert overrides.gpu_model_price(None) is None
    assert normalize_model("nvidia_h100  80gb-HBM3") == "nvidia-h100-80gb-hbm3"
