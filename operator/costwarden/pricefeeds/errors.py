"""One request failing must not cost a feed its other answers; all of them failing is the feed's
failure. A feed makes several requests (per region, per instance type): ``collect`` keeps each
failure as one line, and ``result`` raises FeedError only when nothing at all was priced."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from costwarden.pricefeeds.model import FeedError, FeedPrice, FeedPrices


def one_line(exc: BaseException) -> str:
    """``ClientError: An error occurred (AccessDenied) ...`` on one line, at most 300 characters."""
    text = " ".join(str(exc).split()) or "(no message)"
    line = f"{type(exc).__name__}: {text}"
    return line if len(line) <= 300 else line[:297] + "..."


class Failures:
    def __init__(self) -> None:
        self._lines: list[str] = []

    @contextmanager
    def attempt(self, what: str) -> Iterator[None]:
        """Run one request; an exception from it is recorded as ``what: error``, not raised."""
        try:
            yield
        except Exception as exc:  # an SDK or HTTP error of this request; the others still count
            self._lines.append(f"{what}: {one_line(exc)}")

    def result(self, prices: Iterable[FeedPrice], notes: Iterable[str]) -> FeedPrices:
        found = tuple(prices)
        if self._lines and not found:
            more = f" (and {len(self._lines) - 1} more failed request(s))" if len(self._lines) > 1 else ""
            raise FeedError(self._lines[0] + more)
        return FeedPrices(found, (*notes, *self._lines))


def collect() -> Failures:
    return Failures()
