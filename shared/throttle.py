"""Back-pressure for Graph: at most N requests in flight per mailbox, pauses on Retry-After,
and capped exponential back-off with full jitter for everything else."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from shared.mailbox_slots import WANT_EVERY_SECONDS, BlobSlots, Lease


def backoff_seconds(attempt: int, base: float = 0.5, cap: float = 30.0,
                    rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * (2 ** attempt))
    return (rng or random).uniform(0, ceiling)


@dataclass
class _Mailbox:
    """One process's view of a mailbox's shared slots."""

    free: list[Lease] = field(default_factory=list)  # held by this process, not in use
    held: set[str] = field(default_factory=set)  # slot blobs this process holds
    waiters: deque[asyncio.Future[Lease | None]] = field(default_factory=deque)
    acquiring: bool = False
    not_before: float = 0.0  # after giving slots back, let other processes take them first
    want_again: float = 0.0  # when to tell the holders again that this process is waiting


class MailboxGate:
    """One per process, shared by every invocation on the event loop: at most N requests in
    flight per mailbox. With `slots` (shared.mailbox_slots) the N are shared by every process
    and instance of the app, as Graph counts them; without, they are this process's own."""

    def __init__(self, per_mailbox: int = 4, slots: BlobSlots | None = None,
                 poll_seconds: float = 0.25, linger_seconds: float = 2.0) -> None:
        self._per_mailbox = per_mailbox
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._slots = slots
        self._mailboxes: dict[str, _Mailbox] = {}
        self._poll = poll_seconds
        self._linger = linger_seconds
        self._releasing: set[asyncio.Task[None]] = set()
        self._paused_until: dict[str, float] = {}

    @asynccontextmanager
    async def slot(self, mailbox: str) -> AsyncIterator[None]:
        if self._slots is None:
            semaphore = self._semaphores.get(mailbox)
            if semaphore is None:
                semaphore = self._semaphores[mailbox] = asyncio.Semaphore(self._per_mailbox)
            async with semaphore:
                await self._wait_if_paused(mailbox)
                yield
            return
        box = self._mailboxes.setdefault(mailbox, _Mailbox())
        lease = await self._take(mailbox, box)
        try:
            await self._wait_if_paused(mailbox)
            yield
        finally:
            await self._give_back(mailbox, box, lease)

    async def _take(self, mailbox: str, box: _Mailbox) -> Lease:
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            while box.free:
                lease = box.free.pop()
                if lease.until > time.monotonic():
                    return lease
                await self._drop(box, lease)
            timeout: float | None = None
            if len(box.held) < self._per_mailbox:
                if not box.acquiring and time.monotonic() >= box.not_before:
                    box.acquiring = True
                    try:
                        lease_or_none = await self._slots.acquire(mailbox, set(box.held))
                        if lease_or_none is None and time.monotonic() >= box.want_again:
                            box.want_again = time.monotonic() + WANT_EVERY_SECONDS
                            with contextlib.suppress(Exception):  # advisory: a hint only
                                await self._slots.want(mailbox)
                    finally:
                        box.acquiring = False
                    if lease_or_none is not None:
                        box.held.add(lease_or_none.blob)
                        _wake(box, None)  # another waiter may try for the next slot
                        return lease_or_none
                # Held by other processes (or being asked for): look again soon.
                timeout = self._poll * random.uniform(0.8, 1.2)
            waiter: asyncio.Future[Lease | None] = loop.create_future()
            box.waiters.append(waiter)
            try:
                handed = await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                unused = waiter.result() if waiter.done() and not waiter.cancelled() else None
                if unused is not None:  # handed over just before the cancellation
                    await self._give_back(mailbox, box, unused)
                raise
            if handed is not None:
                return handed

    async def _give_back(self, mailbox: str, box: _Mailbox, lease: Lease) -> None:
        if lease.until <= time.monotonic():
            assert self._slots is not None
            try:
                extended = await self._slots.extend(mailbox, lease)
            except Exception:  # noqa: BLE001 - storage trouble: give it up, the lease expires
                extended = None
            if extended is None:  # another process asked: its turn
                box.not_before = time.monotonic() + 2 * self._poll
                with contextlib.suppress(Exception):  # unreleased, the lease still expires
                    await self._drop(box, lease)
                _wake(box, None)
                return
            lease = extended
        if not _wake(box, lease):
            lease.idle_since = time.monotonic()
            box.free.append(lease)
            loop = asyncio.get_running_loop()
            loop.call_later(self._linger, self._trim, box)
            loop.call_later(max(0.0, lease.until - time.monotonic()), self._trim, box)

    def _trim(self, box: _Mailbox) -> None:
        """Gives back slots this process no longer uses, so that other processes can have
        them: every expired one, and all idle ones but one (sparse traffic keeps one slot
        per mailbox until its hold ends instead of asking storage for each request)."""
        now = time.monotonic()
        keep = max(box.free, key=lambda lease: lease.idle_since, default=None)
        for lease in list(box.free):
            if lease.until <= now or (lease is not keep and now - lease.idle_since
                                      >= self._linger * 0.9):
                box.free.remove(lease)
                task = asyncio.ensure_future(self._drop(box, lease))
                self._releasing.add(task)
                task.add_done_callback(self._releasing.discard)

    async def _drop(self, box: _Mailbox, lease: Lease) -> None:
        assert self._slots is not None
        box.held.discard(lease.blob)
        await self._slots.release(lease)

    def pause(self, mailbox: str, seconds: float) -> None:
        """Graph said Retry-After: hold every request to this mailbox until then."""
        until = time.monotonic() + max(0.0, seconds)
        if until > self._paused_until.get(mailbox, 0.0):
            self._paused_until[mailbox] = until

    async def _wait_if_paused(self, mailbox: str) -> None:
        while (remaining := self._paused_until.get(mailbox, 0.0) - time.monotonic()) > 0:
            await asyncio.sleep(remaining)


def _wake(box: _Mailbox, lease: Lease | None) -> bool:
    """Hands `lease` (or a turn to ask for one) to the first live waiter."""
    while box.waiters:
        waiter = box.waiters.popleft()
        if not waiter.done():
            waiter.set_result(lease)
            return True
    return False
