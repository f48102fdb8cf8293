"""Where the clouds put their exports, and how one listing becomes deliveries (pure).

* AWS Data Exports (CUR 2.0, FOCUS 1.0;
  https://docs.aws.amazon.com/cur/latest/userguide/dataexports-export-delivery.html):
  ``<prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/…`` and
  ``<prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/[<execution>/]<export>-Manifest.json``, whose
  ``dataFiles`` lists the period's files as ``s3://`` URIs
  (https://docs.aws.amazon.com/cur/latest/userguide/dataexports-manifest.html).
* Legacy CUR (https://docs.aws.amazon.com/cur/latest/userguide/understanding-report-versions.html):
  ``<prefix>/<report>/<yyyymmdd-yyyymmdd>/<report>-Manifest.json`` with ``reportKeys`` (keys in
  the bucket) and ``billingPeriod``.
* Azure Cost Management exports
  (https://learn.microsoft.com/azure/cost-management-billing/costs/tutorial-improved-exports):
  ``<prefix>/<export>/<YYYYMMDD-YYYYMMDD>/<run-id>/manifest.json`` with ``blobs[].blobName`` (names
  in the container) and ``runInfo``.

Per (export, period) the newest manifest (last written) is the delivery. Without a manifest:
files under a ``BILLING_PERIOD=`` partition are one delivery (all its files; of the newest
sub-folder when the export writes one per run); under a ``YYYYMMDD-YYYYMMDD`` range, the newest
run folder, or the newest file alone (older Azure exports write a month-to-date file per run);
any other data files, one delivery per folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from costwarden.billing.sources.base import ObjectInfo

AWS_EXPORT = "AWS Data Exports"
AWS_LEGACY = "AWS CUR (legacy)"
AZURE_EXPORT = "Azure cost export"

_AWS_EXPORT_MANIFEST = re.compile(
    r"^(?P<base>(?:.*/)?(?P<export>[^/]+))/metadata/BILLING_PERIOD=(?P<period>\d{4}-\d{2})/(?:.*/)?(?P=export)-Manifest\.json$"
)
_AWS_LEGACY_MANIFEST = re.compile(
    r"^(?P<base>(?:.*/)?(?P<report>[^/]+)/(?P<start>\d{8})-\d{8})/(?P=report)-Manifest\.json$"
)
_AZURE_MANIFEST = re.compile(r"^(?P<base>(?:.*/)?(?P<start>\d{8})-\d{8})/[^/]+/manifest\.json$")
_PARTITION = re.compile(r"^(?P<base>(?:.*/)?BILLING_PERIOD=(?P<period>\d{4}-\d{2}))/(?P<rest>.+)$")
_RANGE = re.compile(r"^(?P<base>(?:.*/)?(?P<start>\d{8})-\d{8})/(?P<rest>.+)$")
_DATA = re.compile(r"\.(parquet|csv|csv\.gz|gz)$", re.IGNORECASE)
MANIFEST_LIMIT = 64 << 20  # bytes: a manifest larger than this is refused, not read


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery: ``files`` as listed, or a ``manifest`` to read for them (``kind`` says how)."""

    name: str
    period: str  # YYYY-MM, or "" when only the lines know
    kind: str
    manifest: ObjectInfo | None = None
    files: tuple[ObjectInfo, ...] = ()


def is_data(key: str) -> bool:
    return bool(_DATA.search(key)) and not key.rsplit("/", 1)[-1].startswith(".")


def deliveries(listing: Sequence[ObjectInfo]) -> list[Delivery]:
    """The deliveries in ``listing`` (every object under the source's prefix), by name."""
    found: dict[str, Delivery] = {}
    claimed: set[str] = set()  # folders whose files a manifest speaks for
    for info in listing:
        for pattern, kind in (
            (_AWS_EXPORT_MANIFEST, AWS_EXPORT),
            (_AWS_LEGACY_MANIFEST, AWS_LEGACY),
            (_AZURE_MANIFEST, AZURE_EXPORT),
        ):
            match = pattern.match(info.key)
            if match is None:
                continue
            period = match.groupdict().get("period") or f"{match['start'][:4]}-{match['start'][4:6]}"
            base = match["base"]
            name = f"{base}/BILLING_PERIOD={period}" if kind == AWS_EXPORT else base
            claimed.add(f"{base}/data/BILLING_PERIOD={period}/" if kind == AWS_EXPORT else f"{base}/")
            current = found.get(name)
            if current is None or _newer(info, current.manifest):
                found[name] = Delivery(name, period, kind, manifest=info)
            break
    loose: dict[str, list[ObjectInfo]] = {}
    for info in listing:
        if not is_data(info.key) or any(info.key.startswith(c) for c in claimed):
            continue
        group = _PARTITION.match(info.key) or _RANGE.match(info.key)
        folder = group["base"] if group else (info.key.rsplit("/", 1)[0] if "/" in info.key else "")
        loose.setdefault(folder, []).append(info)
    for folder, files in loose.items():
        partition = _PARTITION.match(files[0].key)
        if partition is not None:
            found[folder] = Delivery(
                folder, partition["period"], "partition", files=_newest_run(folder, files, True)
            )
            continue
        span = _RANGE.match(files[0].key)
        if span is not None:
            period = f"{span['start'][:4]}-{span['start'][4:6]}"
            found[folder] = Delivery(folder, period, "range", files=_newest_run(folder, files, False))
            continue
        found[folder] = Delivery(folder or ".", "", "folder", files=tuple(sorted(files, key=lambda o: o.key)))
    return [found[name] for name in sorted(found)]


def _newer(info: ObjectInfo, than: ObjectInfo | None) -> bool:
    return than is None or (info.modified, info.key) > (than.modified, than.key)


def _newest_run(folder: str, files: list[ObjectInfo], all_direct: bool) -> tuple[ObjectInfo, ...]:
    """Files of the run folder holding the newest file; files written straight into ``folder``:
    all of them (parts of one export) or, when not ``all_direct``, the newest alone."""
    newest = max(files, key=lambda o: (o.modified, o.key))
    rest = newest.key[len(folder) + 1 :]
    if "/" in rest:
        run = folder + "/" + rest.split("/", 1)[0] + "/"
        chosen = [o for o in files if o.key.startswith(run)]
    elif all_direct:
        chosen = [o for o in files if "/" not in o.key[len(folder) + 1 :]]
    else:
        chosen = [newest]
    return tuple(sorted(chosen, key=lambda o: o.key))


class ManifestError(ValueError):
    """A manifest that is no JSON of the shape its kind has."""


def manifest_keys(kind: str, text: bytes, bucket: str = "") -> list[str]:
    """The data files a manifest lists, as keys in the bucket or container.

    AWS Data Exports list ``s3://bucket/key`` URIs (a file of another bucket is an error);
    legacy CUR lists keys (``reportKeys``); Azure lists blob names (``blobs[].blobName``)."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ManifestError(f"manifest is no JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ManifestError("manifest is no JSON object")
    if kind == AWS_EXPORT:
        uris = _strings(document, "dataFiles")
        keys = []
        for uri in uris:
            match = re.match(r"^s3://([^/]+)/(.+)$", uri)
            if match is None or (bucket and match[1] != bucket):
                raise ManifestError(f"dataFiles names {uri!r}, not an object of bucket {bucket}")
            keys.append(match[2])
        return keys
    if kind == AWS_LEGACY:
        return _strings(document, "reportKeys")
    blobs = document.get("blobs")
    if not isinstance(blobs, list) or not all(isinstance(b, dict) for b in blobs):
        raise ManifestError("manifest without a list of blobs")
    names = [b.get("blobName") for b in blobs]
    if not all(isinstance(n, str) and n for n in names):
        raise ManifestError("a blob of the manifest has no blobName")
    return [str(n).lstrip("/") for n in names]


def _strings(document: dict[str, object], field: str) -> list[str]:
    value = document.get(field)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ManifestError(f"manifest without a list of {field}")
    return [str(v) for v in value]


def under(prefix: str, keys: Iterable[str]) -> list[str]:
    """``keys`` that lie under ``prefix`` (all when the prefix is empty)."""
    base = prefix.rstrip("/") + "/" if prefix else ""
    return [k for k in keys if k.startswith(base)]
