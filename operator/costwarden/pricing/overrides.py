"""Operator price overrides: a YAML/JSON file (Helm values carry it) that beats the catalog.

```yaml
instances:            # USD/hour for a whole node; the most specific key wins
  p5.48xlarge: 40.00
  aws/us-east-1/p5.48xlarge/spot: 18.5
defaults: {gpu: 2.5, cpu: 0.031611, ramGiB: 0.004237, spotCpu: 0.006655, spotRamGiB: 0.000892}
gpuModels: {"NVIDIA H100 80GB HBM3": 6.88}   # per GPU, for instance types no other rule prices
slurm:                # Slurm jobs (--slurm): per GPU-, vCPU- and GiB-hour of their allocation
  nodes:              # a node's own rates, or the cloud VM it is (priced as a Kubernetes node)
    gpu-a100-01: {gpu: 3.10, cpu: 0.03, ramGiB: 0.004}
    gpu-h100-[01-08]: {instance: aws/us-east-1/p5.48xlarge}
  partitions:
    gpu: {gpu: 2.50}  # unset units take the defaults above
```

Instance keys are ``[cloud/][region/]instance-type[/capacity-type]`` (a region needs a cloud).

Money never passes through float: YAML numbers are read by a loader that builds ``Decimal``
from the scalar's own text, and a mapping handed to ``parse_overrides`` (e.g. from
``json.loads``) has its floats converted through ``str()``, which is their shortest repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from costwarden.pricing.catalog import CAPACITY_TYPES, CLOUDS

_LARGEST = Decimal(10**15)
_SMALLEST = Decimal("1e-15")


def _no_dust(price: Decimal) -> Decimal:
    if 0 < price < _SMALLEST:
        raise PydanticCustomError("greater_than_equal", "Input should be 0 or at least 0.000000000000001")
    return price


def _not_dust(price: Decimal) -> Decimal:
    if price < _SMALLEST:
        raise PydanticCustomError("greater_than_equal", "Input should be at least 0.000000000000001")
    return price


# USD/hour, below 10^15 and (other than 0) at least 10^-15: figures beyond those are no price, and
# the exact arithmetic of pricing (integer ratios in engine.money) cannot afford them (1e999999
# overflows, 1e-999999 is a million digits).
Money = Annotated[Decimal, Field(ge=0, lt=_LARGEST, allow_inf_nan=False), AfterValidator(_no_dust)]
PositiveMoney = Annotated[Decimal, Field(gt=0, lt=_LARGEST, allow_inf_nan=False), AfterValidator(_not_dust)]

# USD/hour, from OpenCost's configs/default.json ("Default prices based on GCP us-central1"):
# https://github.com/opencost/opencost/blob/develop/configs/default.json
OPENCOST_GPU = Decimal("0.95")
OPENCOST_CPU = Decimal("0.031611")
OPENCOST_RAM_GIB = Decimal("0.004237")
OPENCOST_SPOT_CPU = Decimal("0.006655")
OPENCOST_SPOT_RAM_GIB = Decimal("0.000892")

InstanceKey = tuple[str | None, str | None, str, str | None]  # cloud, region, instance type, capacity


class OverridesError(ValueError):
    """An overrides file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class PriceDefaults(_Strict):
    """Per-unit prices for nodes no other rule prices, and for splitting a node's price."""

    gpu: Money = OPENCOST_GPU
    cpu: Money = OPENCOST_CPU
    ram_gib: Money = Field(default=OPENCOST_RAM_GIB, alias="ramGiB")
    spot_cpu: Money = Field(default=OPENCOST_SPOT_CPU, alias="spotCpu")
    spot_ram_gib: Money = Field(default=OPENCOST_SPOT_RAM_GIB, alias="spotRamGiB")
    # OpenCost's defaults carry no spot GPU price; unset means spot GPUs cost ``gpu``.
    spot_gpu: Money | None = Field(default=None, alias="spotGpu")

    def rates(self, capacity_type: str) -> tuple[Decimal, Decimal, Decimal]:
        """(per GPU, per vCPU, per GiB) for a node of this capacity type."""
        if capacity_type == "spot":
            gpu = self.spot_gpu if self.spot_gpu is not None else self.gpu
            return gpu, self.spot_cpu, self.spot_ram_gib
        return self.gpu, self.cpu, self.ram_gib


class UnitRates(_Strict):
    """Per-unit USD/hour of a Slurm partition or node; unset units take ``defaults``. With
    ``instance`` (an instance key), the node is priced as that cloud VM and split per unit."""

    gpu: Money | None = None
    cpu: Money | None = None
    ram_gib: Money | None = Field(default=None, alias="ramGiB")
    instance: str | None = None

    @field_validator("instance")
    @classmethod
    def _instance_parses(cls, instance: str | None) -> str | None:
        if instance is not None:
            parse_instance_key(instance)
        return instance


class SlurmPrices(_Strict):
    """``slurm:`` of the overrides file. Node keys are names or Slurm host lists
    (``gpu-[01-04]``), matched against a job's first allocated node; partitions by name."""

    nodes: dict[str, UnitRates] = Field(default_factory=dict)
    partitions: dict[str, UnitRates] = Field(default_factory=dict)


class PriceOverrides(_Strict):
    instances: dict[str, PositiveMoney] = Field(default_factory=dict)
    defaults: PriceDefaults = Field(default_factory=PriceDefaults)
    gpu_models: dict[str, PositiveMoney] = Field(default_factory=dict, alias="gpuModels")
    slurm: SlurmPrices = Field(default_factory=SlurmPrices)
    _origin: str = PrivateAttr(default="<inline>")

    @field_validator("instances")
    @classmethod
    def _keys_parse(cls, instances: dict[str, Decimal]) -> dict[str, Decimal]:
        for key in instances:
            parse_instance_key(key)
        return instances

    @property
    def origin(self) -> str:
        return self._origin

    @property
    def defaults_changed(self) -> bool:
        return self.defaults != PriceDefaults()

    def instance_price(self, candidates: list[InstanceKey]) -> tuple[str, Decimal] | None:
        """The (key as written, price) of the most specific key among ``candidates``, in order."""
        parsed = {parse_instance_key(key): (key, price) for key, price in self.instances.items()}
        for candidate in candidates:
            if candidate in parsed:
                return parsed[candidate]
        return None

    def gpu_model_price(self, model: str | None) -> tuple[str, Decimal] | None:
        if not model:
            return None
        wanted = normalize_model(model)
        for key, price in self.gpu_models.items():
            if normalize_model(key) == wanted:
                return key, price
        return None


def parse_instance_key(key: str) -> InstanceKey:
    """``[cloud/][region/]type[/capacity]`` lowercased; raises ValueError for any other shape."""
    parts = [p.strip().lower() for p in key.split("/")]
    if not all(parts):
        raise ValueError(f"instance key {key!r} has an empty segment")
    capacity = parts.pop() if len(parts) > 1 and parts[-1] in CAPACITY_TYPES else None
    if len(parts) == 1:
        return (None, None, parts[0], capacity)
    if parts[0] not in CLOUDS:
        raise ValueError(f"instance key {key!r}: {parts[0]!r} is not a cloud ({', '.join(CLOUDS)})")
    if len(parts) == 2:
        return (parts[0], None, parts[1], capacity)
    if len(parts) == 3:
        return (parts[0], parts[1], parts[2], capacity)
    raise ValueError(f"instance key {key!r} is not [cloud/][region/]instance-type[/capacity-type]")


def normalize_model(model: str) -> str:
    """'NVIDIA H100 80GB HBM3' and the label value 'NVIDIA-H100-80GB-HBM3' compare equal."""
    return "-".join(model.lower().replace("_", " ").replace("-", " ").split())


def parse_overrides(data: Mapping[str, Any] | None, origin: str) -> PriceOverrides:
    """Validate an already-parsed overrides mapping; errors name ``origin`` and the field path."""
    try:
        overrides = PriceOverrides.model_validate(_decimals(dict(data or {})))
    except ValidationError as exc:
        problems = "; ".join(f"{_path(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise OverridesError(f"{origin}: {problems}") from None
    overrides._origin = origin
    return overrides


def load_overrides_text(text: str, origin: str) -> PriceOverrides:
    """Parse YAML (or JSON) overrides text; an empty document means no overrides."""
    try:
        data = yaml.load(text, Loader=_DecimalLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise OverridesError(f"{origin}: {where}not valid YAML: {problem}") from None
    if data is not None and not isinstance(data, Mapping):
        raise OverridesError(f"{origin}: the top level must be a mapping, not {type(data).__name__}")
    return parse_overrides(data, origin)


class _DecimalLoader(yaml.SafeLoader):
    """SafeLoader that turns YAML floats into Decimal built from the scalar text."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal | str:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    try:
        return Decimal(text)
    except InvalidOperation:
        return text  # e.g. ".inf": left for validation to refuse with a field path


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def _decimals(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals(v) for v in value]
    return value


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{_key(part)}" if path else _key(part))
    return path or "(top level)"


def _key(part: str) -> str:
    """A key as written, quoted where it would not read as one: empty, with spaces around it,
    control characters, a quote first, or the message's own separators (``: `` and ``;``)."""
    text = str(part)
    odd = not text or text != text.strip() or not text.isprintable() or text[0] in "'\""
    if odd or ": " in text or ";" in text:
        return repr(text)
    return text
