"""Graph's per-mailbox slots shared by several processes through blob leases (Azurite)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from shared.clients import Runtime
from shared.mailbox_slots import BlobSlots
from shared.settings import Settings
from shared.throttle import MailboxGate
from tests.conftest import isolated_env

pytestmark = pytest.mark.azurite


def gates(azurite, count: int, hold_seconds: float = 10.0) -> list[MailboxGate]:  # noqa: ANN001
    """`count` gates as separate processes would have them: own state, the same blobs."""
    runtime = Runtime(Settings.from_env(isolated_env(azurite)))
    container = runtime.blob_service.get_container_client(runtime.settings.gate_container)
    return [MailboxGate(4, BlobSlots(container, 4, runtime.run_io, hold_seconds),
                        poll_seconds=0.05) for _ in range(count)]


async def test_three_processes_never_have_more_than_four_requests_on_a_mailbox(
        azurite) -> None:  # noqa: ANN001
    active: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    done: Counter[int] = Counter()

    async def call(gate_no: int, gate: MailboxGate, mailbox: str) -> None:
        async with gate.slot(mailbox):
            active[mailbox] += 1
            peak[mailbox] = max(peak[mailbox], active[mailbox])
            await asyncio.sleep(0.02)
            active[mailbox] -= 1
        done[gate_no] += 1

    shared = gates(azurite, 3)
    await asyncio.gather(*(call(n, gate, mailbox) for n, gate in enumerate(shared)
                           for mailbox in ("a", "b") for _ in range(30)))
    assert peak == {"a": 4, "b": 4}  # all four used, never a fifth, across the processes
    assert done == {0: 60, 1: 60, 2: 60}


async def test_a_busy_process_gives_its_slots_back_after_the_hold(azurite) -> None:  # noqa: ANN001
    busy, waiting = gates(azurite, 2, hold_seconds=0.5)
    stop = asyncio.Event()

    async def stream() -> None:  # always a request waiting in the busy process
        while not stop.is_set():
            async with busy.slot("a"):
                await asyncio.sleep(0.01)

    streams = [asyncio.create_task(stream()) for _ in range(8)]
    await asyncio.sleep(0.3)  # the busy process holds all four slots now
    started = time.monotonic()
    async with waiting.slot("a"):
        waited = time.monotonic() - started
    stop.set()
    await asyncio.gather(*streams)
    assert waited < 2.0


async def test_a_process_nobody_waits_for_keeps_its_slots_past_the_hold(
        azurite) -> None:  # noqa: ANN001
    """Renewed, not given back and leased again: a busy mailbox served by one process loses
    no time to hand-overs nobody takes (each used to leave the slot idle ~0.5 s)."""
    [gate] = gates(azurite, 1, hold_seconds=0.3)
    slots = gate._slots  # noqa: SLF001 - counting its storage calls
    assert slots is not None
    calls: Counter[str] = Counter()
    for name in ("acquire", "release", "extend"):
        original = getattr(slots, name)

        async def counted(*args, _original=original, _name=name):  # noqa: ANN001,ANN002,ANN202
            calls[_name] += 1
            return await _original(*args)
        setattr(slots, name, counted)
    stop = asyncio.Event()

    async def stream() -> None:
        while not stop.is_set():
            async with gate.slot("a"):
                await asyncio.sleep(0.01)

    streams = [asyncio.create_task(stream()) for _ in range(8)]
    await asyncio.sleep(1.6)  # five holds
    stop.set()
    await asyncio.gather(*streams)
    assert calls["acquire"] == 4
    assert calls["extend"] >= 8  # each slot reached the end of its hold more than once
    assert calls["release"] == 0


async def test_without_shared_slots_each_process_has_its_own_four() -> None:
    """The per-process gate that the shared slots replace: two gates admit eight at once."""
    first, second = MailboxGate(4), MailboxGate(4)
    active, peak = 0, 0

    async def call(gate: MailboxGate) -> None:
        nonlocal active, peak
        async with gate.slot("a"):
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.02)
            active -= 1

    await asyncio.gather(*(call(g) for g in (first, second) for _ in range(10)))
    assert peak == 8
