"""``--cloud`` values: what parses, what each malformed part is called, and the inventories made."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from costwarden.clouds.aws import AwsInventory
from costwarden.clouds.factory import CloudSpec, inventories_from_specs, parse_cloud_spec

GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("aws:us-east-1", CloudSpec("aws", ("us-east-1",))),
        (" AWS:us-east-1, eu-central-2,us-east-1 ", CloudSpec("aws", ("us-east-1", "eu-central-2"))),
        (
            "aws:us-gov-west-1,cn-north-1,ap-southeast-4",
            CloudSpec("aws", ("us-gov-west-1", "cn-north-1", "ap-southeast-4")),
        ),
        ("gcp:my-project-123", CloudSpec("gcp", ("my-project-123",))),
        ("gcp:example.com:ml-prod", CloudSpec("gcp", ("example.com:ml-prod",))),
        (f"azure:{GUID.upper()}", CloudSpec("azure", (GUID,))),
    ],
)
def test_valid_values_parse(text: str, spec: CloudSpec) -> None:
    assert parse_cloud_spec(text) == spec


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("us-east-1", "expected aws:REGION"),
        (":us-east-1", "expected aws:REGION"),
        ("oci:us-ashburn-1", "unknown cloud 'oci'"),
        ("aws:", "no region given after 'aws:'"),
        ("aws: , ", "no region given"),
        ("aws:us-east-1,", "malformed aws region ''"),
        ("aws:us-east", "malformed aws region 'us-east'"),
        ("aws:us-east-1a", "malformed aws region 'us-east-1a'"),
        ("aws:us_east_1", "malformed aws region 'us_east_1'"),
        ("gcp:", "no project id given"),
        ("gcp:My-Project", "malformed gcp project id 'My-Project'"),
        ("gcp:proj", "malformed gcp project id 'proj'"),
        ("gcp:1project", "malformed gcp project id '1project'"),
        ("gcp:project-", "malformed gcp project id 'project-'"),
        ("azure:", "no subscription GUID given"),
        ("azure:not-a-guid", "malformed azure subscription GUID 'not-a-guid'"),
        (f"azure:{GUID[:-1]}", "malformed azure subscription GUID"),
    ],
)
def test_malformed_values_name_the_bad_part(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="--cloud") as caught:
        parse_cloud_spec(text)
    assert says in str(caught.value)


def test_one_aws_inventory_per_region_each_once() -> None:
    specs = [parse_cloud_spec("aws:us-east-1,us-west-2"), parse_cloud_spec("aws:us-west-2,eu-west-1")]

    inventories = inventories_from_specs(specs)

    assert all(isinstance(i, AwsInventory) for i in inventories)
    assert [i.scope for i in inventories] == ["aws:us-east-1", "aws:us-west-2", "aws:eu-west-1"]
    assert inventories_from_specs([]) == []


def test_the_factory_loads_no_cloud_sdk_until_a_cloud_is_named() -> None:
    probe = (
        "import json, sys\n"
        "from costwarden.clouds.factory import inventories_from_specs, parse_cloud_spec\n"
        "parse_cloud_spec('gcp:my-project-123'); parse_cloud_spec('azure:" + GUID + "')\n"
        "inventories_from_specs([])\n"
        "before = sorted(m for m in ('boto3', 'botocore', 'costwarden.clouds.aws') if m in sys.modules)\n"
        "inventories_from_specs([parse_cloud_spec('aws:us-east-1')])\n"
        "print(json.dumps([before, 'boto3' in sys.modules, 'costwarden.clouds.aws' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    before, boto3_after, module_after = json.loads(out.stdout)
    assert before == []
    assert module_after
    assert not boto3_after  # the client (and boto3) come on the inventory's first call
