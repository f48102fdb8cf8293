"""The store's columns (FOCUS 1.x names) and the SQL that turns an export's text into them.

FOCUS, the FinOps Open Cost and Usage Specification (https://focus.finops.org/, columns in
specification/columns/*.md of github.com/FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec), is the
common shape: every format module maps its export onto ``TARGET_COLUMNS``. Money is
``DECIMAL(38, 18)`` from the text of the file, never a float; timestamps are ``TIMESTAMPTZ`` in UTC.

Pure: builds SQL strings, reads nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

# 18 places, 20 integer digits: Azure exports write costs with 16 places and amortized ones with
# up to 28 (.NET decimals: 0.0616438356164383561643835616), which round half away from zero to
# 18 places, an attodollar, far below any invoice's precision.
MONEY_TYPE = "DECIMAL(38, 18)"

# Target column -> DuckDB type, in store order.
TARGET_COLUMNS: dict[str, str] = {
    "ProviderName": "VARCHAR",
    "BillingAccountId": "VARCHAR",
    "SubAccountId": "VARCHAR",
    "BillingPeriodStart": "TIMESTAMPTZ",
    "ChargePeriodStart": "TIMESTAMPTZ",
    "ChargePeriodEnd": "TIMESTAMPTZ",
    "ChargeCategory": "VARCHAR",
    "BillingCurrency": "VARCHAR",
    "BilledCost": MONEY_TYPE,
    "EffectiveCost": MONEY_TYPE,
    "ListCost": MONEY_TYPE,
    "ResourceId": "VARCHAR",
    "SkuId": "VARCHAR",
    "ServiceName": "VARCHAR",
    "RegionId": "VARCHAR",
    "Tags": "VARCHAR",  # JSON text as the export wrote it (an object where the export has one)
}

# Extra formats of a date or time seen in real exports (a US date in Azure EA files); ISO 8601,
# with or without ``T``/``Z``/offset, is read by DuckDB's own cast first.
_TIME_FORMATS = ("%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%Y%m%d")


def quote(name: str) -> str:
    """``name`` as a DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """``value`` as a DuckDB string literal."""
    return "'" + value.replace("'", "''") + "'"


def text(expression: str) -> str:
    """The value as trimmed text, NULL when empty (a typed Parquet column is turned into text first)."""
    return f"NULLIF(TRIM(CAST({expression} AS VARCHAR)), '')"


def money(expression: str) -> str:
    """The value as an exact decimal, NULL when it is not a number (plain or exponent notation).

    A Parquet DOUBLE goes through its shortest text form, so 0.1 stays 0.1."""
    return f"TRY_CAST({text(expression)} AS {MONEY_TYPE})"


def stamp(expression: str) -> str:
    """The value as a UTC timestamp, NULL when it is no date or time this module knows."""
    formats = ", ".join(literal(f) for f in _TIME_FORMATS)
    return (
        f"COALESCE(TRY_CAST({text(expression)} AS TIMESTAMPTZ), "
        f"CAST(TRY_STRPTIME({text(expression)}, [{formats}]) AS TIMESTAMPTZ))"
    )


def month_start(expression: str) -> str:
    """The first instant of the UTC month of a timestamp expression."""
    return f"CAST(DATE_TRUNC('month', CAST({expression} AS TIMESTAMP)) AS TIMESTAMPTZ)"


@dataclass(frozen=True, slots=True)
class Check:
    """A source column whose non-empty values must parse: ``parsed`` NULL where ``raw`` is not is an error."""

    column: str  # the column's name in the file, for the error message
    kind: str  # "decimal" or "timestamp"
    raw: str
    parsed: str


@dataclass(frozen=True, slots=True)
class Header:
    """A file's column names, found by a canonical key (each format says how keys are made)."""

    names: tuple[str, ...]
    by_key: Mapping[str, str]
    types: Mapping[str, str]  # file name -> DuckDB type ("VARCHAR" for every CSV column)

    @classmethod
    def of(
        cls, names: Iterable[str], key: Callable[[str], str], types: Mapping[str, str] | None = None
    ) -> Header:
        names = tuple(names)
        by_key: dict[str, str] = {}
        for name in names:
            by_key.setdefault(key(name), name)  # the first of two spellings wins
        return cls(names, by_key, dict(types or {}))

    def json(self, *keys: str) -> str:
        """The first of ``keys`` as JSON text: text columns as written, a Parquet MAP, STRUCT or
        LIST (CUR 2.0 ``resource_tags``, GCP ``labels``) through ``TO_JSON``; ``NULL`` when absent."""
        name = self.get(*keys)
        if name is None:
            return "NULL"
        if self.types.get(name, "VARCHAR").upper() == "VARCHAR":
            return text(quote(name))
        return f"CAST(TO_JSON({quote(name)}) AS VARCHAR)"

    def get(self, *keys: str) -> str | None:
        """The file's name of the first of ``keys`` it has."""
        return next((self.by_key[k] for k in keys if k in self.by_key), None)

    def keys_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.by_key.items() if k.startswith(prefix)]


@dataclass(frozen=True, slots=True)
class MissingColumn(Exception):
    """A file of a known format lacks a column the mapping cannot do without."""

    format: str
    column: str  # the name(s) the column goes by, "A or B"

    def __str__(self) -> str:
        return f"{self.format} file without required column {self.column}"


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """How one file's columns become ``TARGET_COLUMNS``: a SELECT list over the raw relation."""

    format: str
    expressions: Mapping[str, str]  # target column -> SQL expression over the file's columns
    checks: tuple[Check, ...]
    source: str  # SQL expression naming the row's source (format, provider, billing account)

    def select_list(self) -> str:
        parts = [
            f"CAST({self.expressions.get(name, 'NULL')} AS {kind}) AS {quote(name)}"
            for name, kind in TARGET_COLUMNS.items()
        ]
        parts.append(f"CAST({self.source} AS VARCHAR) AS source")
        return ",\n  ".join(parts)


def require(header: Header, format: str, *keys: str) -> str:
    """The file's name for the first of ``keys``; MissingColumn naming them all when it has none."""
    name = header.get(*keys)
    if name is None:
        raise MissingColumn(format, " or ".join(keys))
    return name


def optional(header: Header, *keys: str) -> str:
    """``"col"`` for the first of ``keys`` the file has, else ``NULL``."""
    name = header.get(*keys)
    return quote(name) if name is not None else "NULL"


def money_check(column: str) -> Check:
    return Check(column, "decimal", text(quote(column)), money(quote(column)))


# The times a billing line may carry: none before the Unix epoch, none Python cannot hold. DuckDB
# reads more ("infinity", year 294247, BC dates, "1/2/3" as the year 3), which would come back to
# Python as a naive datetime.max or as text.
_EARLIEST = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
_LATEST = "TIMESTAMPTZ '9999-12-31 00:00:00+00'"


def stamp_check(column: str) -> Check:
    parsed = stamp(quote(column))
    in_range = f"CASE WHEN {parsed} >= {_EARLIEST} AND {parsed} < {_LATEST} THEN {parsed} END"
    return Check(column, "timestamp", text(quote(column)), in_range)
