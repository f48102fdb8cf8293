"""The operator's own estimates, kept in the billing store beside the bill, and the SQL that
reconciles the two (the rules: costwarden.engine.reconcile).

Tables (in the same DuckDB file as ``billing_lines``):

* ``node_hours``: per billed resource (``billing.resources`` key) and UTC hour, what the operator
  estimated (``estimated``, as charged, effective-rate factor included), the same at list price
  (``listed``) and how many seconds of the hour it saw the node; the cloud, instance type and
  capacity type it priced;
* ``budget_hours``: per budget, resource and hour, the part of the estimate the budget's pods
  accrued;
* ``resource_aliases``: other keys of a resource (a GKE node's numeric VM id);
* ``estimate_marks``: per node, until when its estimate is recorded; an operator that starts
  continues from there, so the hours it was down are not lost (the node was running: it still is).

Money is summed in whole nanodollars (HUGEINT): DuckDB divides decimals in floating point, and
the budgets' shares of a bill are a division.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb

from costwarden.billing.resources import billing_key_sql
from costwarden.engine.reconcile import MAX_FUTURE_FILES, evidence_horizon

NANO = Decimal("1e-9")
_DDL = (
    """CREATE TABLE IF NOT EXISTS node_hours (
  resource VARCHAR NOT NULL, hour TIMESTAMPTZ NOT NULL, cloud VARCHAR NOT NULL,
  instance_type VARCHAR NOT NULL, capacity_type VARCHAR NOT NULL,
  estimated HUGEINT NOT NULL, listed HUGEINT NOT NULL, seconds DOUBLE NOT NULL,
  PRIMARY KEY (resource, hour))""",
    """CREATE TABLE IF NOT EXISTS budget_hours (
  budget VARCHAR NOT NULL, resource VARCHAR NOT NULL, hour TIMESTAMPTZ NOT NULL,
  estimated HUGEINT NOT NULL, PRIMARY KEY (budget, resource, hour))""",
    "CREATE TABLE IF NOT EXISTS resource_aliases (alias VARCHAR PRIMARY KEY, resource VARCHAR NOT NULL)",
    "CREATE TABLE IF NOT EXISTS estimate_marks (node VARCHAR PRIMARY KEY, until TIMESTAMPTZ NOT NULL)",
)
# A window is "fully seen" when the operator's estimates cover this much of it.
FULL_COVERAGE = 0.95
# The cluster's tag in an object (AWS ``user:``/``user_`` prefixes too) or a GCP label list.
_TAG_KEY = r'"(?:user[:_])?skypilot[-_]cluster[-_]name"'
_TAG_IN_OBJECT = _TAG_KEY + r'\s*:\s*"([^"]*)"'
_TAG_IN_LIST = r'"key"\s*:\s*' + _TAG_KEY + r'\s*,\s*"value"\s*:\s*"([^"]*)"'
_CLUSTER_TAG = (
    f"COALESCE(NULLIF(regexp_extract(Tags, '{_TAG_IN_OBJECT}', 1), ''), "
    f"NULLIF(regexp_extract(Tags, '{_TAG_IN_LIST}', 1), ''))"
)
# The whole UTC hours a billing window [s, e) holds: windows are joined to estimates on (resource,
# hour) equality, linear in rows, not on a time range (which compares every hour of a node with
# every window of it: quadratic in the look-back; bench/RESULTS.md).
_HOURS_OF = (
    "unnest(range(date_trunc('hour', s) + CASE WHEN date_trunc('hour', s) < s THEN INTERVAL 1 HOUR "
    "ELSE INTERVAL 0 HOUR END, e, INTERVAL 1 HOUR))"
)
_BATCH = 500  # rows per INSERT … VALUES statement
# A line's end (no end: its start), and whether it is dated in the future (engine.reconcile's
# future_dated; parameters: the latest start and end of evidence_horizon).
_LINE_END = "COALESCE(ChargePeriodEnd, ChargePeriodStart)"
_FUTURE_DATED = f"(ChargePeriodStart > ? OR {_LINE_END} > ?)"
# Billed resources that are VMs (compute), whether or not they are nodes of this cluster.
_IS_VM = (
    "(starts_with(key, 'aws:') OR contains(key, '/virtualmachines') OR "
    "starts_with(lower(TRIM(ResourceId)), '//compute.googleapis.com/'))"
)


def nanos(amount: Decimal) -> int:
    """Whole nanodollars, half-even (estimates are nanodollar multiples already)."""
    return int(amount.scaleb(9).to_integral_value())


def dollars(value: object) -> Decimal:
    return Decimal(int(value or 0)).scaleb(-9)  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class NodeHour:
    resource: str
    hour: datetime
    cloud: str
    instance_type: str
    capacity_type: str
    estimated: Decimal
    listed: Decimal
    seconds: float


@dataclass(frozen=True, slots=True)
class BudgetHour:
    budget: str  # namespace/name
    resource: str
    hour: datetime
    estimated: Decimal


@dataclass(frozen=True, slots=True)
class ReconcileQuery:
    now: datetime
    lookback: timedelta  # how far back billing windows are reconciled
    anomaly_factor: Decimal
    anomaly_lookback: timedelta  # anomalies older than this are not reported


@dataclass(frozen=True, slots=True)
class ReconcileRows:
    """What the store returns: aggregates only, never a row per node-hour."""

    factors: Sequence[tuple[str, str, str, Decimal, Decimal, Decimal, datetime]]
    budget_days: Sequence[tuple[str, date, Decimal, Decimal, datetime]]
    anomalies: Sequence[tuple[str, str, datetime, datetime, Decimal, Decimal]]  # budget first
    clusters: Sequence[tuple[str, date, Decimal]]
    newest: datetime | None  # the latest end of a line not dated in the future
    future_lines: int = 0  # lines dated in the future (engine.reconcile.future_dated) at ``now``
    future: Sequence[tuple[str, int, datetime]] = ()  # by file (or source): lines, earliest start


def _insert(
    db: duckdb.DuckDBPyConnection, table: str, rows: Sequence[tuple[object, ...]], tail: str = ""
) -> None:
    """``rows`` into ``table``, ``_BATCH`` rows per statement (``executemany`` runs one statement a
    row: seconds for a thousand upserts)."""
    if not rows:
        return
    width = len(rows[0])
    one = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        values = ", ".join([one] * len(batch))
        db.execute(f"INSERT INTO {table} VALUES {values} {tail}", [v for row in batch for v in row])


class EstimateStore:
    """The estimate tables of one open billing store (one thread at a time, like the store)."""

    def __init__(self, db: duckdb.DuckDBPyConnection) -> None:
        self._db = db
        for statement in _DDL:
            db.execute(statement)

    def marks(self) -> dict[str, datetime]:
        return {
            str(n): until
            for n, until in self._db.execute("SELECT node, until FROM estimate_marks").fetchall()
        }

    def record(
        self,
        nodes: Iterable[NodeHour],
        budgets: Iterable[BudgetHour],
        aliases: Mapping[str, str],
        marks: Mapping[str, datetime],
    ) -> int:
        """Add the estimates (to what each hour already holds), in one transaction; rows written."""
        db = self._db
        node_rows = [
            (
                n.resource,
                n.hour,
                n.cloud,
                n.instance_type,
                n.capacity_type,
                nanos(n.estimated),
                nanos(n.listed),
                n.seconds,
            )
            for n in nodes
        ]
        budget_rows = [(b.budget, b.resource, b.hour, nanos(b.estimated)) for b in budgets]
        db.begin()
        try:
            if node_rows:
                db.execute("CREATE OR REPLACE TEMP TABLE new_node_hours AS SELECT * FROM node_hours LIMIT 0")
                _insert(db, "new_node_hours", node_rows)
                db.execute(
                    "INSERT INTO node_hours SELECT resource, hour, any_value(cloud), "
                    "any_value(instance_type), any_value(capacity_type), sum(estimated), sum(listed), "
                    "sum(seconds) FROM new_node_hours GROUP BY resource, hour "
                    "ON CONFLICT (resource, hour) DO UPDATE SET "
                    "estimated = node_hours.estimated + EXCLUDED.estimated, "
                    "listed = node_hours.listed + EXCLUDED.listed, "
                    "seconds = node_hours.seconds + EXCLUDED.seconds, cloud = EXCLUDED.cloud, "
                    "instance_type = EXCLUDED.instance_type, capacity_type = EXCLUDED.capacity_type"
                )
            if budget_rows:
                db.execute(
                    "CREATE OR REPLACE TEMP TABLE new_budget_hours AS SELECT * FROM budget_hours LIMIT 0"
                )
                _insert(db, "new_budget_hours", budget_rows)
                db.execute(
                    "INSERT INTO budget_hours SELECT budget, resource, hour, sum(estimated) "
                    "FROM new_budget_hours GROUP BY ALL ON CONFLICT (budget, resource, hour) DO UPDATE SET "
                    "estimated = budget_hours.estimated + EXCLUDED.estimated"
                )
            if aliases:
                _insert(
                    db,
                    "resource_aliases",
                    list(aliases.items()),
                    "ON CONFLICT (alias) DO UPDATE SET resource = EXCLUDED.resource",
                )
            if marks:
                _insert(
                    db,
                    "estimate_marks",
                    list(marks.items()),
                    "ON CONFLICT (node) DO UPDATE SET until = greatest(estimate_marks.until, EXCLUDED.until)",
                )
            db.commit()
        except BaseException:
            db.rollback()
            raise
        return len(node_rows) + len(budget_rows)

    def reconcile(self, query: ReconcileQuery) -> ReconcileRows:
        """Join billing with the estimates since ``now - lookback`` (module doc of engine.reconcile)."""
        db = self._db
        since = query.now - query.lookback
        factor = str(query.anomaly_factor)
        db.execute(
            f"""CREATE OR REPLACE TEMP TABLE billed AS
            SELECT COALESCE(a.resource, k.key) AS resource, k.s, k.e, sum(k.billed) AS billed
            FROM (SELECT {billing_key_sql("ResourceId")} AS key, ChargePeriodStart AS s,
                         COALESCE(ChargePeriodEnd, ChargePeriodStart + INTERVAL 1 HOUR) AS e,
                         CAST(round(EffectiveCost, 9) * 1000000000 AS HUGEINT) AS billed
                  FROM billing_lines WHERE ChargeCategory = 'Usage' AND ChargePeriodStart >= ?) k
            LEFT JOIN resource_aliases a ON a.alias = k.key
            WHERE k.key IS NOT NULL AND k.e > k.s
              AND COALESCE(a.resource, k.key) IN (SELECT DISTINCT resource FROM node_hours WHERE hour >= ?)
            GROUP BY ALL""",
            [since, since],
        )
        db.execute(
            f"""CREATE OR REPLACE TEMP TABLE windows AS
            SELECT b.resource, b.s, b.e, b.billed, sum(n.estimated) AS est, sum(n.listed) AS listed,
                   sum(n.seconds) AS seen, any_value(n.cloud) AS cloud, any_value(n.instance_type) AS itype,
                   any_value(n.capacity_type) AS ctype,
                   sum(n.seconds) >= {FULL_COVERAGE} * epoch(b.e - b.s) AS complete
            FROM (SELECT *, {_HOURS_OF} AS hour FROM billed) b
            JOIN node_hours n ON n.resource = b.resource AND n.hour = b.hour
            GROUP BY b.resource, b.s, b.e, b.billed"""
        )
        anomalous = f"(est > 0 AND billed * 1000000 > est * CAST(round({factor} * 1000000) AS HUGEINT))"
        db.execute(
            f"""CREATE OR REPLACE TEMP TABLE used AS SELECT *, {anomalous} AS anomalous FROM windows
            WHERE est > 0 AND (complete OR NOT {anomalous})"""
        )
        factors = db.execute(
            "SELECT cloud, itype, ctype, sum(billed), sum(listed), sum(seen) / 3600, max(e) FROM used "
            "WHERE complete AND NOT anomalous GROUP BY ALL"
        ).fetchall()
        budget_days = db.execute(
            f"""SELECT bh.budget, CAST(date_trunc('day', bh.hour) AS DATE) AS day, sum(bh.estimated),
                      sum((2 * bh.estimated * u.billed + u.est) // (2 * u.est)), max(u.e)
               FROM budget_hours bh JOIN (SELECT *, {_HOURS_OF} AS hour FROM used) u
                 ON bh.resource = u.resource AND bh.hour = u.hour
               GROUP BY ALL"""
        ).fetchall()
        anomalies = db.execute(
            f"""SELECT DISTINCT bh.budget, u.resource, u.s, u.e, u.est, u.billed
               FROM (SELECT *, {_HOURS_OF} AS hour FROM used WHERE anomalous AND complete AND s >= ?) u
               JOIN budget_hours bh ON bh.resource = u.resource AND bh.hour = u.hour""",
            [query.now - query.anomaly_lookback],
        ).fetchall()
        clusters = db.execute(
            f"""SELECT cluster, day, sum(cost) FROM (
                  SELECT {_CLUSTER_TAG} AS cluster, CAST(date_trunc('day', ChargePeriodStart) AS DATE) AS day,
                         CAST(round(EffectiveCost, 9) * 1000000000 AS HUGEINT) AS cost,
                         {billing_key_sql("ResourceId")} AS key, ResourceId
                  FROM billing_lines
                  WHERE ChargePeriodStart >= ? AND contains(lower(Tags), 'skypilot'))
                WHERE cluster IS NOT NULL AND (key IS NULL OR NOT {_IS_VM})
                GROUP BY ALL""",
            [since],
        ).fetchall()
        latest_start, latest_end = evidence_horizon(query.now)
        newest = db.execute(
            f"SELECT max({_LINE_END}) FROM billing_lines WHERE NOT {_FUTURE_DATED}",
            [latest_start, latest_end],
        ).fetchone()
        future = db.execute(
            f"""SELECT COALESCE(f.path, l.source), count(*), min(l.ChargePeriodStart)
               FROM billing_lines l LEFT JOIN billing_files f ON f.sha256 = l.file_sha256
               WHERE {_FUTURE_DATED} GROUP BY ALL ORDER BY 2 DESC, 1""",
            [latest_start, latest_end],
        ).fetchall()
        for table in ("billed", "windows", "used"):
            db.execute(f"DROP TABLE IF EXISTS temp.{table}")
        return ReconcileRows(
            factors=[
                (str(c), str(t), str(k), dollars(b), dollars(lst), Decimal(str(h)), e)
                for c, t, k, b, lst, h, e in factors
            ],
            budget_days=[
                (str(b), d, dollars(est), dollars(billed), e) for b, d, est, billed, e in budget_days
            ],
            anomalies=[
                (str(b), str(r), s, e, dollars(est), dollars(bl)) for b, r, s, e, est, bl in anomalies
            ],
            clusters=[(str(c), d, dollars(cost)) for c, d, cost in clusters],
            newest=newest[0] if newest else None,
            future_lines=sum(int(n) for _, n, _ in future),
            future=[(str(o), int(n), first) for o, n, first in future[:MAX_FUTURE_FILES]],
        )
