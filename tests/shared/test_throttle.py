import asyncio
import random
import time

from shared.throttle import MailboxGate, backoff_seconds


def test_backoff_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    values = [backoff_seconds(attempt, base=0.5, cap=4.0, rng=rng) for attempt in range(12)]
    assert all(0 <= v <= 4.0 for v in values)
    assert len(set(values)) == len(values)  # jitter: no two waits alike


async def test_gate_allows_at_most_n_concurrent_per_mailbox() -> None:
    gate = MailboxGate(per_mailbox=4)
    active = {"a": 0, "b": 0}
    peak = {"a": 0, "b": 0}

    async def call(mailbox: str) -> None:
        async with gate.slot(mailbox):
            active[mailbox] += 1
            peak[mailbox] = max(peak[mailbox], active[mailbox])
            await asyncio.sleep(0.01)
            active[mailbox] -= 1

    await asyncio.gather(*(call("a") for _ in range(20)), *(call("b") for _ in range(20)))
    assert peak == {"a": 4, "b": 4}


async def test_pause_holds_the_mailbox_but_not_others() -> None:
    gate = MailboxGate()
    gate.pause("a", 0.3)
    started = time.monotonic()
    async with gate.slot("b"):
        assert time.monotonic() - started < 0.1
    async with gate.slot("a"):
        assert time.monotonic() - started >= 0.29
