"""Which billed resource a node is: one key for a node's ``spec.providerID`` and for a billing
line's ``ResourceId``, so the two can be joined.

The forms (docs/billing.md, "Reconciliation"):

* AWS: ``spec.providerID`` is ``aws:///<zone>/<instance id>``; CUR's ``line_item_resource_id``
  and FOCUS's ``ResourceId`` hold the instance id ``i-…`` (an ARN ``…:instance/i-…`` in some
  exports). Key: ``aws:i-…``.
* GCE: ``spec.providerID`` is ``gce://<project>/<zone>/<instance name>``; the detailed export's
  ``resource.name`` is that name and ``resource.global_name``
  (``//compute.googleapis.com/projects/<p>/zones/<z>/instances/<id>``) ends in the VM's numeric
  id, which GKE writes on the node as ``container.googleapis.com/instance_id``. Keys: ``gce:<name>``
  and, as an alias, ``gce:<id>``.
* Azure: ``spec.providerID`` is ``azure://`` + the VM's resource id. An AKS node is an instance
  of a scale set (``…/virtualMachineScaleSets/<set>/virtualMachines/<n>``), and Azure bills the
  scale set, not its instances: the key is the set's resource id, lower-cased, and the estimates
  of all its nodes add up under it. A plain VM's key is its own resource id.

``billing_key_sql`` is the same rule as SQL over a ``ResourceId`` column; the tests hold the two
to agreement. Pure: strings in, strings out.
"""

from __future__ import annotations

import re

from costwarden.records import NodeRecord

_AWS_INSTANCE = re.compile(r"(i-[0-9a-f]{8,17})$")
_AZURE_VMSS_INSTANCE = re.compile(r"(/virtualmachinescalesets/[^/]+)/virtualmachines/[^/]+$")
_SCALE_SET = r"\1"


def node_keys(node: NodeRecord) -> tuple[str, ...]:
    """The node's resource key first, then its aliases; empty when its provider id is unknown."""
    provider_id = node.provider_id.strip()
    if provider_id.startswith("aws://"):
        found = _AWS_INSTANCE.search(provider_id)
        return (f"aws:{found.group(1)}",) if found else ()
    if provider_id.startswith("gce://"):
        parts = [p for p in provider_id[len("gce://") :].split("/") if p]
        if len(parts) != 3:
            return ()
        keys = [f"gce:{parts[2].lower()}"]
        if node.instance_id and node.instance_id.isdigit():
            keys.append(f"gce:{node.instance_id}")
        return tuple(keys)
    if provider_id.startswith("azure://"):
        resource = provider_id[len("azure://") :].lower()
        if not resource.startswith("/subscriptions/"):
            return ()
        return ("azure:" + _AZURE_VMSS_INSTANCE.sub(_SCALE_SET, resource),)
    return ()


def billing_key(resource_id: str | None) -> str | None:
    """The key of a billing line's ``ResourceId`` (what ``billing_key_sql`` computes)."""
    if not resource_id:
        return None
    text = resource_id.strip()
    found = _AWS_INSTANCE.search(text)
    if found:
        return f"aws:{found.group(1)}"
    lowered = text.lower()
    if lowered.startswith("/subscriptions/"):
        return "azure:" + _AZURE_VMSS_INSTANCE.sub(_SCALE_SET, lowered)
    if lowered.startswith("//compute.googleapis.com/") and "/instances/" in lowered:
        return f"gce:{lowered.rsplit('/', 1)[1]}"
    if "/" not in lowered and ":" not in lowered:
        return f"gce:{lowered}"  # the detailed export's resource.name of a VM
    return None


def billing_key_sql(column: str) -> str:
    """``billing_key`` as a DuckDB expression over the (quoted) column ``column``."""
    text = f"TRIM({column})"
    lowered = f"LOWER({text})"
    return (
        f"CASE WHEN {column} IS NULL OR {text} = '' THEN NULL "
        f"WHEN regexp_matches({text}, '(i-[0-9a-f]{{8,17}})$') "
        f"THEN 'aws:' || regexp_extract({text}, '(i-[0-9a-f]{{8,17}})$', 1) "
        f"WHEN starts_with({lowered}, '/subscriptions/') THEN 'azure:' || regexp_replace({lowered}, "
        f"'(/virtualmachinescalesets/[^/]+)/virtualmachines/[^/]+$', '\\1') "
        f"WHEN starts_with({lowered}, '//compute.googleapis.com/') AND contains({lowered}, '/instances/') "
        f"THEN 'gce:' || regexp_extract({lowered}, '([^/]+)$', 1) "
        f"WHEN NOT contains({lowered}, '/') AND NOT contains({lowered}, ':') THEN 'gce:' || {lowered} "
        "ELSE NULL END"
    )
