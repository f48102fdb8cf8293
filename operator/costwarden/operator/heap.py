"""Handing the memory the heap has freed back to the system.

Under churn (pods replaced, records rebuilt from watch events) the operator's live memory stays
flat while its RSS creeps up: glibc's malloc keeps the chunks CPython frees inside its heaps and
returns pages only from a heap's top, so free memory in the middle stays counted in RSS
(bench/RESULTS.md, "Soak": glibc's free-but-kept memory grew 5 MB in half an hour at 10,000 pods,
RSS with it). glibc's ``malloc_trim(0)`` gives every whole free page back (``madvise``).

``costwarden run`` calls it every ``trim_heap_every`` seconds after an evaluation pass, on a worker
thread (the call takes malloc's locks, not the GIL). Where the C library has no ``malloc_trim``
(musl, macOS) nothing is called.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Trim = Callable[[int], int]


def glibc_malloc_trim() -> Trim | None:
    """The C library's ``malloc_trim``, or None where it has none."""
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols, the C library's among them
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


@dataclass
class HeapTrimmer:
    """Trims the heap at most every ``every`` seconds (of the monotonic clock passed in)."""

    every: float
    load: Callable[[], Trim | None] = glibc_malloc_trim
    trims: int = 0  # calls made
    released: int = 0  # calls that gave memory back
    _trim: Trim | None = field(default=None, init=False)
    _loaded: bool = field(default=False, init=False)
    _last: float | None = field(default=None, init=False)

    def due(self, now: float) -> bool:
        """Whether a trim is due at ``now``; the first is ``every`` after the first ask."""
        if self.every <= 0:
            return False
        if self._last is None:
            self._last = now
            return False
        return now - self._last >= self.every

    def trim(self, now: float) -> bool:
        """Give free heap pages back; True when some were. Never raises."""
        self._last = now
        if not self._loaded:
            self._loaded, self._trim = True, self.load()
            if self._trim is None:
                log.info("the C library has no malloc_trim: freed heap memory is not handed back")
        if self._trim is None:
            return False
        self.trims += 1
        try:
            given = bool(self._trim(0))
        except OSError as exc:  # ctypes reports a failed foreign call so
            log.warning("malloc_trim failed: %s", exc)
            return False
        self.released += given
        return given
