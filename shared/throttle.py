"""Back-pressure for Graph: at most N requests in flight per mailbox, pauses on Retry-After,
and capped exponential back-off with full jitter for everything else."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


def backoff_seconds(attempt: int, base: float = 0.5, cap: float = 30.0,
                    rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * (2 ** attempt))
    return (rng or random).uniform(0, ceiling)


class MailboxGate:
    """One per process, shared by every invocation on the event loop, so the whole batch a
    worker processes respects Graph's 4-concurrent-requests-per-mailbox limit."""

    def __init__(self, per_mailbox: int = 4) -> None:
        self._per_mailbox = per_mailbox
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._paused_until: dict[str, float] = {}

    @asynccontextmanager
    async def slot(self, mailbox: str) -> AsyncIterator[None]:
        semaphore = self._slots.get(mailbox)
        if semaphore is None:
            semaphore = self._slots[mailbox] = asyncio.Semaphore(self._per_mailbox)
        async with semaphore:
            await self._wait_if_paused(mailbox)
            yield

    def pause(self, mailbox: str, seconds: float) -> None:
        """Graph said Retry-After: hold every request to this mailbox until then."""
        until = time.monotonic() + max(0.0, seconds)
        if until > self._paused_until.get(mailbox, 0.0):
            self._paused_until[mailbox] = until

    async def _wait_if_paused(self, mailbox: str) -> None:
        while (remaining := self._paused_until.get(mailbox, 0.0) - time.monotonic()) > 0:
            await asyncio.sleep(remaining)
