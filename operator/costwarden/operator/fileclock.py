"""A clock read from a file: the time a test sets for ``costwarden run`` as a process.

``costwarden run --clock-file PATH`` (hidden from --help) makes the operator's clock, the one
every spend figure, mark and record time is taken from, read an RFC 3339 time from PATH instead
of the system clock. A test that runs the real command as a subprocess (tests/resilience: SIGKILL,
SIGSTOP, a partition) moves time by replacing the file, and its stand-in cluster reads the same
time, so figures are exact and independent of how long a restart took. Timers (pass intervals,
the Lease's durations) stay on the real monotonic clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path


class FileClock:
    """The time in ``path``; it never goes back: an unreadable file or an earlier time keeps the
    last one read (a test replaces the file with a rename, but a reader must not trip over a
    half-written one)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        first = self._read()
        if first is None:
            raise ValueError(f"clock file {self.path}: no RFC 3339 time with a zone in it")
        self._last = first

    def _read(self) -> datetime | None:
        try:
            text = self.path.read_text().strip()
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except (OSError, ValueError):
            return None
        return moment.astimezone(UTC) if moment.tzinfo is not None else None

    def __call__(self) -> datetime:
        now = self._read()
        if now is not None and now > self._last:
            self._last = now
        return self._last
