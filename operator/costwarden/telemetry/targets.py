"""Which ``/metrics`` endpoints to scrape: running pods that match a label selector. Pure.

The selector is written as ``kubectl get pods -l`` takes it (Kubernetes label selector syntax,
k8s.io/apimachinery/pkg/labels: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``,
``k``, ``!k``, joined by commas, all of which must hold). ``exporter_targets`` turns the
operator's pod records into URLs; the operator calls it on each scrape, so exporters that come and
go are followed without a watch of their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from costwarden.engine.selection import selector_matches
from costwarden.models import LabelSelector, LabelSelectorRequirement

_KEY = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_REQUIREMENT = re.compile(
    rf"""\s*(?:
        !\s*(?P<absent>{_KEY})
      | (?P<set_key>{_KEY})\s+(?P<set_op>in|notin)\s*\((?P<values>[^()]*)\)
      | (?P<eq_key>{_KEY})\s*(?P<eq_op>==|=|!=)\s*(?P<value>{_VALUE})
      | (?P<present>{_KEY})
    )\s*(?:,|$)""",
    re.VERBOSE,
)


_OPERATORS = {"in": "In", "notin": "NotIn"}


@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed selector: its text, and the same selector as the CRD's ``LabelSelector``, so that
    matching is the one ``engine.selection`` does for budgets."""

    text: str
    selector: LabelSelector

    def matches(self, labels: Mapping[str, str]) -> bool:
        return selector_matches(self.selector, labels)


def parse_selector(text: str) -> Selector:
    """A label selector from its string form; ValueError saying where it is wrong.

    An empty selector is refused: it would match every pod of the cluster.
    """
    if not text.strip():
        raise ValueError("empty label selector (it would match every pod)")
    requirements: list[LabelSelectorRequirement] = []
    position = 0
    while position < len(text):
        match = _REQUIREMENT.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"label selector {text!r}: cannot read from {text[position:]!r}")
        requirements.append(_requirement(match))
        position = match.end()
    return Selector(text=text, selector=LabelSelector(match_expressions=requirements))


def _requirement(match: re.Match[str]) -> LabelSelectorRequirement:
    if match["absent"]:
        return LabelSelectorRequirement(key=match["absent"], operator="DoesNotExist")
    if match["present"]:
        return LabelSelectorRequirement(key=match["present"], operator="Exists")
    if match["set_key"]:
        values = sorted({v.strip() for v in match["values"].split(",") if v.strip()})
        if not values or any(re.fullmatch(_VALUE, v) is None for v in values):
            raise ValueError(f"label selector: bad value list ({match['values']})")
        return LabelSelectorRequirement(
            key=match["set_key"], operator=_OPERATORS[match["set_op"]], values=values
        )
    equal = "NotIn" if match["eq_op"] == "!=" else "In"
    return LabelSelectorRequirement(key=match["eq_key"], operator=equal, values=[match["value"]])


class ExporterPod(Protocol):
    """What ``exporter_targets`` reads of a pod (``records.PodRecord`` has it)."""

    @property
    def pod_ip(self) -> str | None: ...

    @property
    def label_map(self) -> Mapping[str, str]: ...

    @property
    def phase(self) -> str: ...

    @property
    def deleting(self) -> bool: ...


def exporter_targets(
    pods: Iterable[ExporterPod], selector: str | Selector, port: int, path: str = "/metrics"
) -> list[str]:
    """``http://<pod IP>:<port><path>`` for each running, not deleting pod with an IP that matches
    ``selector`` (a string is parsed, ValueError if malformed); sorted, without repeats."""
    compiled = parse_selector(selector) if isinstance(selector, str) else selector
    urls = {
        _url(pod.pod_ip, port, path)
        for pod in pods
        if pod.pod_ip and pod.phase == "Running" and not pod.deleting and compiled.matches(pod.label_map)
    }
    return sorted(urls)


def _url(ip: str, port: int, path: str) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}{path}"
