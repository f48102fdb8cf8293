"""Background work with per-key ordering and a bound: what keeps slow calls off the passes.

Jobs of one key (a budget) run one after another, in submission order; jobs of different keys
run concurrently, at most ``concurrency`` at a time. At most ``capacity`` jobs wait: beyond that
``submit`` refuses (returns False) and the caller leaves the work for a later pass, so a dead
receiver can never grow memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class KeyedWorkQueue:
    def __init__(self, name: str, *, concurrency: int, capacity: int) -> None:
        if concurrency < 1 or capacity < 1:
            raise ValueError(f"work queue {name}: concurrency and capacity must be positive")
        self.name = name
        self._capacity = capacity
        self._semaphore = asyncio.Semaphore(concurrency)
        self._waiting: dict[Hashable, deque[Job]] = {}
        self._runners: dict[Hashable, asyncio.Task[None]] = {}
        self._queued = 0
        self.refused = 0

    def submit(self, key: Hashable, job: Job) -> bool:
        if self._queued >= self._capacity:
            self.refused += 1
            return False
        self._waiting.setdefault(key, deque()).append(job)
        self._queued += 1
        if key not in self._runners:
            self._runners[key] = asyncio.create_task(self._drain(key), name=f"{self.name}:{key}")
        return True

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def running(self) -> int:
        """Keys with a runner (a job running or waiting for its turn)."""
        return len(self._runners)

    async def _drain(self, key: Hashable) -> None:
        try:
            while self._waiting.get(key):
                job = self._waiting[key].popleft()
                self._queued -= 1
                async with self._semaphore:
                    try:
                        await job()
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception(
                            "%s job for %s failed; its work is retried on a later pass", self.name, key
                        )
        finally:
            self._queued -= len(self._waiting.pop(key, ()))
            self._runners.pop(key, None)

    async def close(self) -> None:
        """Cancel every job, waiting or running."""
        runners = list(self._runners.values())
        for task in runners:
            task.cancel()
        for task in runners:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._waiting.clear()
        self._runners.clear()
        self._queued = 0

    async def idle(self) -> None:
        """Wait until nothing is queued or running (tests, graceful shutdown)."""
        while self._runners:
            await asyncio.gather(*self._runners.values(), return_exceptions=True)
