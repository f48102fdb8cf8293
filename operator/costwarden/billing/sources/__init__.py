"""Remote billing sources: where the clouds write their billing exports, synced into the store.

One interface (``BillingSource.sync(store) -> SyncReport``) and one way to make a source
(``source_from_uri``): ``s3://`` (AWS Data Exports, legacy CUR), ``bq://`` (GCP billing export,
aggregated in BigQuery), ``azure://`` (Cost Management exports in Blob storage), ``file://``.
Each cloud SDK is imported by its own module only, when a URI of its scheme is used.
"""

from costwarden.billing.sources.base import (
    FAILED,
    STORED,
    UNCHANGED,
    BillingSource,
    BillingSourceError,
    DeliveryResult,
    SyncReport,
)
from costwarden.billing.sources.uri import source_from_uri

__all__ = [
    "FAILED",
    "STORED",
    "UNCHANGED",
    "BillingSource",
    "BillingSourceError",
    "DeliveryResult",
    "SyncReport",
    "source_from_uri",
]
