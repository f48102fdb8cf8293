"""Handing freed heap memory back to the system (operator/heap.py): when the trimmer calls
malloc_trim, that glibc's gives memory freed in the middle of the heap back (RSS drops), and that
the evaluation pass trims on its interval only."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from costwarden.operator.heap import HeapTrimmer, glibc_malloc_trim
from tests.unit.test_operator_passes import EmptyView
from tests.unit.test_runtime import runtime as make_runtime


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_trim_is_due_every_interval_after_the_first_ask_and_never_at_zero() -> None:
    calls: list[int] = []
    trimmer = HeapTrimmer(300.0, load=lambda: lambda pad: calls.append(pad) or 1)
    assert not trimmer.due(1000.0)  # the first ask starts the interval
    assert not trimmer.due(1299.9)
    assert trimmer.due(1300.0)
    assert trimmer.trim(1300.0) is True
    assert not trimmer.due(1599.0) and trimmer.due(1600.0)
    assert calls == [0] and (trimmer.trims, trimmer.released) == (1, 1)
    never = HeapTrimmer(0.0)
    assert not never.due(0.0) and not never.due(1e9)


def test_without_malloc_trim_nothing_is_called_and_it_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    loads: list[int] = []

    def load() -> None:
        loads.append(1)

    trimmer = HeapTrimmer(1.0, load=load)
    with caplog.at_level(logging.INFO, logger="costwarden.operator.heap"):
        assert trimmer.trim(1.0) is False
        assert trimmer.trim(2.0) is False
    assert loads == [1] and trimmer.trims == 0
    assert [r.getMessage() for r in caplog.records] == [
        "the C library has no malloc_trim: freed heap memory is not handed back"
    ]


@pytest.mark.skipif(glibc_malloc_trim() is None, reason="the C library has no malloc_trim (not glibc)")
def test_glibc_gives_memory_freed_in_the_middle_of_the_heap_back() -> None:
    """~100 MB of 4 KiB blocks (malloc's, not pymalloc's) freed but for every 64th and the last:
    glibc keeps the free middle of its heap (RSS stays up) until malloc_trim returns it."""
    blocks = [bytearray(4000) for _ in range(25_000)]
    kept = blocks[::64] + blocks[-1:]
    del blocks
    before = _rss_bytes()
    trimmer = HeapTrimmer(1.0)
    assert trimmer.trim(0.0) is True
    after = _rss_bytes()
    assert before - after > 50 * 1024 * 1024, (before, after)
    assert len(kept) == 392


async def test_the_evaluation_pass_trims_the_heap_on_its_interval(tmp_path: Path) -> None:
    from costwarden.operator.loops import evaluate_all

    clock = [100.0]
    runtime = make_runtime(tmp_path, trim_heap_every=60.0)
    runtime.monotonic = lambda: clock[0]
    calls: list[int] = []
    runtime.heap.load = lambda: lambda pad: calls.append(pad) or 0
    runtime.start_work()
    try:
        for at in (100.0, 130.0, 159.0, 160.0, 200.0, 221.0):
            clock[0] = at
            await evaluate_all(runtime, EmptyView())  # type: ignore[arg-type]
        assert calls == [0, 0]  # at 160 and 221: 60 s after the first pass, then after the trim
        assert (runtime.heap.trims, runtime.heap.released) == (2, 0)
    finally:
        await runtime.work.close()
