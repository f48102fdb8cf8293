"""SkyPilot's EC2 instances as its AWS provisioner leaves them, made in moto: a cluster, another
cluster's instance and an untagged one (the unit tests of the AWS adapter and the operator's
component test of --cloud share them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CLUSTER = "llama-sweep-2ea4"
DECOY = "decoy-7f10"
USER = "alice"


def skypilot_tags(cluster: str, head: bool, **extra: str) -> list[dict[str, str]]:
    """The tags SkyPilot's AWS provisioner leaves on an instance (sky/provision/aws/instance.py
    _create_instances + _create_node_tag, skypilot-user from sky/templates/aws-ray.yml.j2)."""
    tags = {
        "Name": f"sky-{cluster}-{'head' if head else 'worker'}",
        "ray-cluster-name": cluster,
        "skypilot-cluster-name": cluster,
        "ray-node-type": "head" if head else "worker",
        "skypilot-head-node": "1" if head else "0",
        "skypilot-user": USER,
        **extra,
    }
    return [{"Key": k, "Value": v} for k, v in tags.items()]


@dataclass
class Fleet:
    client: Any
    head: str
    workers: list[str]
    decoy: str  # another SkyPilot cluster's instance (spot, in another zone)
    untagged: str  # nobody's: no SkyPilot tag at all

    def launch(self, kind: str, zone: str, tags: list[dict[str, str]], spot: bool = False) -> str:
        params: dict[str, Any] = {
            "ImageId": "ami-12c6146b",
            "MinCount": 1,
            "MaxCount": 1,
            "InstanceType": kind,
            "Placement": {"AvailabilityZone": zone},
        }
        if tags:
            params["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tags}]
        if spot:
            params["InstanceMarketOptions"] = {"MarketType": "spot"}
        return str(self.client.run_instances(**params)["Instances"][0]["InstanceId"])

    def state(self, vm_id: str) -> str:
        answer = self.client.describe_instances(InstanceIds=[vm_id])
        return str(answer["Reservations"][0]["Instances"][0]["State"]["Name"])
