"""The billing store: an embedded DuckDB file of FOCUS-shaped lines, filled from export files.

One ``import_files`` call is one transaction, and one delivery:

* a file is known by the SHA-256 of its bytes: a file already stored is skipped, so the same
  delivery imported twice is counted once;
* a file's lines carry their source (format, provider, billing account) and billing period; the
  lines of a (source, period) already stored from earlier imports are *replaced* by the new
  files' lines (a restated month). Files given together in one call are one delivery, so a
  month written as several parts is imported in one call;
* a file that cannot be read (corrupt, truncated gzip or Parquet, a short CSV row), that is of
  no known format, that lacks a required column, or whose money or time column holds a value
  that is no number or time, stops the import: nothing of the call is stored, and
  ``BillingImportError`` names the file (and the column).

Files are read by DuckDB itself (``read_csv``, gzip by content, ``read_parquet``) and mapped in
SQL (costwarden.billing.formats): rows never pass through Python.

The remote sources (costwarden.billing.sources) use ``import_delivery``, where a delivery is the
*whole* content of its periods (a file already known by its hash is read again, so a restated
month whose other parts did not change keeps them), and ``replace_lines``, for lines aggregated
elsewhere (BigQuery); both can record the source's own bookkeeping in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType

import duckdb

from costwarden.billing.columns import TARGET_COLUMNS, ColumnMapping, MissingColumn, literal, quote
from costwarden.billing.formats import detect, mapping

_LINES_DDL = (
    "CREATE TABLE IF NOT EXISTS billing_lines (\n  "
    + ",\n  ".join(f"{quote(name)} {kind}" for name, kind in TARGET_COLUMNS.items())
    + ",\n  source VARCHAR NOT NULL,\n  file_sha256 VARCHAR NOT NULL\n)"
)
_FILES_DDL = """CREATE TABLE IF NOT EXISTS billing_files (
  sha256 VARCHAR PRIMARY KEY,
  path VARCHAR NOT NULL,
  format VARCHAR NOT NULL,
  container VARCHAR NOT NULL,
  rows BIGINT NOT NULL,
  imported_at TIMESTAMPTZ NOT NULL
)"""

_PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"


class BillingImportError(Exception):
    """A file that cannot be stored; ``str`` names the file and, where one is at fault, the column."""

    def __init__(self, path: Path | str, message: str, column: str | None = None) -> None:
        self.path = str(path)
        self.column = column
        self.message = message
        super().__init__(f"{self.path}: {message}")


@dataclass(frozen=True, slots=True)
class ImportedFile:
    """What became of one file: ``stored`` with its rows, or skipped as ``already stored``."""

    path: str
    sha256: str
    format: str
    rows: int
    status: str  # "stored" | "already stored"
    replaced_rows: int = 0  # rows of earlier files this call replaced (restated periods)


@dataclass(frozen=True, slots=True)
class Totals:
    rows: int
    billed_cost: Decimal
    effective_cost: Decimal


@dataclass(frozen=True, slots=True)
class Summary:
    total: Totals
    by_provider: dict[str, Totals] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BillingLine:
    """One FOCUS-shaped line for ``BillingStore.replace_lines`` (money as Decimal, times in UTC)."""

    provider: str
    billing_account_id: str | None
    sub_account_id: str | None
    charge_period_start: datetime
    charge_period_end: datetime | None
    charge_category: str
    billing_currency: str | None
    billed_cost: Decimal
    effective_cost: Decimal
    list_cost: Decimal | None
    resource_id: str | None
    sku_id: str | None
    service_name: str | None
    region_id: str | None
    tags: str | None  # JSON text

    def values(self, period: datetime) -> list[object]:
        """In ``TARGET_COLUMNS`` order; money as text, so DuckDB parses it exactly."""
        money = [
            None if v is None else str(v) for v in (self.billed_cost, self.effective_cost, self.list_cost)
        ]
        return [
            self.provider,
            self.billing_account_id,
            self.sub_account_id,
            period,
            self.charge_period_start,
            self.charge_period_end,
            self.charge_category,
            self.billing_currency,
            *money,
            self.resource_id,
            self.sku_id,
            self.service_name,
            self.region_id,
            self.tags,
        ]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def container_of(path: Path) -> str:
    """``parquet``, ``csv.gz`` or ``csv``, from the file's first bytes (not its name)."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == _PARQUET_MAGIC:
        return "parquet"
    if head[:2] == _GZIP_MAGIC:
        return "csv.gz"
    return "csv"


def _reader(path: Path, container: str) -> str:
    if container == "parquet":
        return f"read_parquet({literal(str(path))})"
    compression = "gzip" if container == "csv.gz" else "none"
    # Every column as text (money is parsed exactly in SQL); a row with too few or too many
    # fields, or an unterminated quote, is an error, never a padded row. (strict_mode would also
    # refuse real Azure exports that Python's csv module and DuckDB otherwise read alike.)
    return (
        f"read_csv({literal(str(path))}, header = true, all_varchar = true, delim = ',', quote = '\"', "
        f"escape = '\"', nullstr = ['', 'NULL'], comment = '', strict_mode = false, null_padding = false, "
        f"ignore_errors = false, compression = {literal(compression)})"
    )


_DUCKDB_MAGIC = b"DUCK"  # at offset 8 of every DuckDB database file


def _refuse_other_files(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(12)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise BillingImportError(path, f"cannot open the store: {exc.strerror or exc}") from exc
    if head and head[8:12] != _DUCKDB_MAGIC:
        raise BillingImportError(path, "not a DuckDB store (is --store an export file?)")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class BillingStore:
    """The DuckDB file at ``path`` (created on first use); BillingImportError when ``path`` is some
    other file (DuckDB would open a CSV as a throwaway in-memory database and lose the import)."""

    def __init__(self, path: Path | str) -> None:
        _refuse_other_files(Path(path))
        self._db = duckdb.connect(str(path))
        self._db.execute("SET TimeZone = 'UTC'")
        self._db.execute(_LINES_DDL)
        self._db.execute(_FILES_DDL)

    def close(self) -> None:
        self._db.close()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The store's DuckDB connection, for the modules that keep their own tables in the same
        file (costwarden.billing.estimates); one thread at a time."""
        return self._db

    def __enter__(self) -> BillingStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def import_files(self, paths: Iterable[Path | str]) -> list[ImportedFile]:
        """Store ``paths`` as one delivery, atomically: on a bad file BillingImportError, nothing stored."""
        return self._import(paths, restage=False, then=None)

    def import_delivery(
        self,
        paths: Iterable[Path | str],
        then: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> list[ImportedFile]:
        """Store ``paths`` as the complete content of the (source, billing period)s they hold.

        Unlike ``import_files``, a file already stored is staged again (status ``stored``): the
        stored lines of its periods are replaced, so the unchanged parts of a restated month must
        be part of the delivery. ``then(connection)`` runs inside the same transaction (a source
        records which objects it fetched); nothing is stored when it raises."""
        return self._import(paths, restage=True, then=then)

    def _import(
        self,
        paths: Iterable[Path | str],
        restage: bool,
        then: Callable[[duckdb.DuckDBPyConnection], None] | None,
    ) -> list[ImportedFile]:
        db = self._db
        results: list[ImportedFile | None] = []
        db.begin()
        try:
            db.execute("DROP TABLE IF EXISTS temp.staged")
            db.execute("CREATE TEMP TABLE staged AS SELECT * FROM billing_lines LIMIT 0")
            seen: set[str] = set()
            new: list[tuple[int, Path, str, str, str, int]] = []
            for given in paths:
                path = Path(given)
                try:
                    sha = file_sha256(path)
                    container = container_of(path)
                except OSError as exc:
                    raise BillingImportError(path, f"cannot read: {exc.strerror or exc}") from exc
                stored = db.execute(
                    "SELECT format, rows FROM billing_files WHERE sha256 = ?", [sha]
                ).fetchone()
                if sha in seen or (stored is not None and not restage):
                    fmt, rows = stored if stored is not None else ("", 0)
                    results.append(ImportedFile(str(path), sha, str(fmt), int(rows), "already stored"))
                    continue
                seen.add(sha)
                fmt, rows = self._stage(path, container, sha)
                new.append((len(results), path, sha, fmt, container, rows))
                results.append(None)
            replaced = self._replace_periods()
            db.execute("INSERT INTO billing_lines SELECT * FROM staged")
            now = datetime.now(UTC)
            for index, path, sha, fmt, container, rows in new:
                db.execute(
                    "INSERT INTO billing_files VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [sha, str(path), fmt, container, rows, now],
                )
                results[index] = ImportedFile(str(path), sha, fmt, rows, "stored", replaced)
            db.execute("DROP TABLE temp.staged")
            if then is not None:
                then(db)
            db.commit()
        except BaseException:
            db.rollback()
            raise
        return [result for result in results if result is not None]

    def replace_lines(
        self,
        source: str,
        period: datetime,
        rows: Iterable[BillingLine],
        then: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> tuple[int, int]:
        """Replace every stored line of (``source``, billing ``period``) by ``rows``, atomically:
        (rows stored, rows replaced). For lines aggregated outside DuckDB (BigQuery); each row's
        ``BillingPeriodStart`` is ``period`` and its ``source`` is ``source``."""
        db = self._db
        columns = ", ".join(quote(name) for name in TARGET_COLUMNS)
        casts = ", ".join(f"CAST(? AS {kind})" for kind in TARGET_COLUMNS.values())
        db.begin()
        try:
            found = db.execute(
                "SELECT count(*) FROM billing_lines WHERE source = ? AND BillingPeriodStart = ?",
                [source, period],
            ).fetchone()
            db.execute(
                "DELETE FROM billing_lines WHERE source = ? AND BillingPeriodStart = ?", [source, period]
            )
            batch = [[*row.values(period), source, f"lines:{source}"] for row in rows]
            if batch:
                db.executemany(
                    f"INSERT INTO billing_lines ({columns}, source, file_sha256) VALUES ({casts}, ?, ?)",
                    batch,
                )
            stored = len(batch)
            if then is not None:
                then(db)
            db.commit()
        except BaseException:
            db.rollback()
            raise
        return stored, int(found[0]) if found else 0

    def _stage(self, path: Path, container: str, sha: str) -> tuple[str, int]:
        """Read, check and map ``path`` into ``staged``: its format and row count."""
        db = self._db
        relation = _reader(path, container)
        try:
            described = db.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        except duckdb.Error as exc:
            raise BillingImportError(
                path,
                f"not a readable {container} file (corrupt, truncated or rows of differing lengths): "
                f"{_first_line(exc)}",
            ) from exc
        names = [str(row[0]) for row in described]
        types = {str(row[0]): str(row[1]) for row in described}
        fmt = detect(names)
        if fmt is None:
            raise BillingImportError(
                path, "not a billing export costwarden knows (FOCUS, AWS CUR, GCP billing, Azure cost)"
            )
        try:
            columns = mapping(fmt, names, types)
        except MissingColumn as exc:
            raise BillingImportError(path, str(exc), exc.column) from exc
        try:
            self._check(path, relation, columns)
            before = self._staged_rows()
            db.execute(
                f"INSERT INTO staged SELECT *, {literal(sha)} FROM "
                f"(SELECT {columns.select_list()} FROM {relation})"
            )
            rows = self._staged_rows() - before
            missing = db.execute(
                "SELECT count(*) FROM staged WHERE file_sha256 = ? AND "
                "(BillingPeriodStart IS NULL OR ChargePeriodStart IS NULL)",
                [sha],
            ).fetchone()
        except duckdb.Error as exc:
            raise BillingImportError(path, f"not a readable {fmt} file: {_first_line(exc)}") from exc
        if missing and missing[0]:
            start = next((c.column for c in columns.checks if c.kind == "timestamp"), "the charge period")
            raise BillingImportError(
                path, f"{missing[0]} rows without a charge period in column {start}", start
            )
        return fmt, rows

    def _staged_rows(self) -> int:
        row = self._db.execute("SELECT count(*) FROM staged").fetchone()
        return int(row[0]) if row else 0

    def _check(self, path: Path, relation: str, columns: ColumnMapping) -> None:
        """BillingImportError naming the first column with a value that does not parse."""
        if not columns.checks:
            return
        parts = []
        for check in columns.checks:
            bad = f"({check.raw}) IS NOT NULL AND ({check.parsed}) IS NULL"
            parts.append(f"count(*) FILTER (WHERE {bad}), min({check.raw}) FILTER (WHERE {bad})")
        row = self._db.execute(f"SELECT {', '.join(parts)} FROM {relation}").fetchone()
        assert row is not None
        for i, check in enumerate(columns.checks):
            count, example = row[2 * i], row[2 * i + 1]
            if count:
                raise BillingImportError(
                    path,
                    f"column {check.column}: {count} values are not a {check.kind} (e.g. {example!r})",
                    check.column,
                )

    def _replace_periods(self) -> int:
        """Delete stored lines of every (source, billing period) the staged files hold: the count."""
        row = self._db.execute(
            "SELECT count(*) FROM billing_lines l WHERE EXISTS (SELECT 1 FROM staged s "
            "WHERE s.source = l.source AND s.BillingPeriodStart = l.BillingPeriodStart)"
        ).fetchone()
        replaced = int(row[0]) if row else 0
        if replaced:
            self._db.execute(
                "DELETE FROM billing_lines l WHERE EXISTS (SELECT 1 FROM staged s "
                "WHERE s.source = l.source AND s.BillingPeriodStart = l.BillingPeriodStart)"
            )
        return replaced

    def summary(self) -> Summary:
        """Rows, billed and effective cost in all, and by provider (``unknown`` where a file names none)."""
        query = (
            "SELECT COALESCE(ProviderName, 'unknown') AS p, count(*), COALESCE(sum(BilledCost), 0), "
            "COALESCE(sum(EffectiveCost), 0) FROM billing_lines GROUP BY p ORDER BY p"
        )
        by_provider = {
            str(name): Totals(int(rows), Decimal(billed), Decimal(effective))
            for name, rows, billed, effective in self._db.execute(query).fetchall()
        }
        total = Totals(
            sum(t.rows for t in by_provider.values()),
            sum((t.billed_cost for t in by_provider.values()), Decimal(0)),
            sum((t.effective_cost for t in by_provider.values()), Decimal(0)),
        )
        return Summary(total, by_provider)

    def files(self) -> Sequence[tuple[str, str, str, int]]:
        """(sha256, path, format, rows) of every stored file, oldest first."""
        rows = self._db.execute(
            "SELECT sha256, path, format, rows FROM billing_files ORDER BY imported_at, path"
        ).fetchall()
        return [(str(a), str(b), str(c), int(d)) for a, b, c, d in rows]
