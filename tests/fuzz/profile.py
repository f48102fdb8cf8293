"""How much the fuzz tests search.

``make test`` runs a small search (each test's ``examples``), so the fuzz tests stay within a few
seconds all together; the cases they once found run every time from tests/data/corpus without any
search (test_corpus.py). A larger search is opt-in: ``RUN_SLOW=1`` multiplies every test's
examples by 25, ``COSTWARDEN_FUZZ_SCALE=<n>`` by ``n``. Settings are per test (never a loaded
profile), so the rest of the suite's hypothesis settings stay as they are.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_SCALE = 25


def scale() -> float:
    given = os.environ.get("COSTWARDEN_FUZZ_SCALE")
    if given:
        return max(float(given), 0.01)
    return float(_SLOW_SCALE) if os.environ.get("RUN_SLOW") else 1.0


def fuzz(examples: int) -> settings:
    """Settings for one fuzz test: ``examples`` in ``make test``, scaled up on request."""
    return settings(
        max_examples=max(1, int(examples * scale())),
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
