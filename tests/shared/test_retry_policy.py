"""The import function's retries (shared.retry_policy, applied by shared.pipeline), one
delivery at a time, against Azurite and the Graph simulator: re-queued with a growing delay
and the attempt in the message, `queued` "retrying until" meanwhile, then `failed` in the
poison queue keeping what was written; each mailbox `imported` on whichever delivery wrote
it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from azure.storage.queue import QueueClient

from shared.clients import Runtime, graph_mailboxes
from shared.importer import Importer
from shared.mailbox_writer import FolderCache, MailboxWriter
from shared.mapping import Directory, Mapper, MappingTable
from shared.messages import ItemMessage, new_run
from shared.outcomes import ItemOutcome, Outcome
from shared.pipeline import import_queue_message
from shared.retry_policy import RetryPolicy
from shared.settings import Settings
from shared.throttle import MailboxGate
from simulators.graph import GraphSimulator, SimUser
from simulators.telemessage.eml_builder import SimItem, build_eml
from simulators.telemessage.org import Person
from tests.conftest import isolated_env

pytestmark = pytest.mark.azurite
TOKEN = "pipeline-test-token"
DANA = SimUser(id="11111111-1111-4111-8111-111111111111", user_principal_name="dana@contoso.com",
               mail="dana@contoso.com", display_name="Dana Levi")
ERAN = SimUser(id="33333333-3333-4333-8333-333333333333", user_principal_name="eran@contoso.com",
               mail="eran@contoso.com", display_name="Eran Bar")


def test_delays_double_up_to_the_cap_and_stop_at_the_horizon() -> None:
    policy = RetryPolicy(base_seconds=30, max_delay_seconds=3600, horizon_seconds=24 * 3600)
    message = ItemMessage("e.zip", "m.eml", "e/m.eml", 10, run="r")
    now, delays = 1_000_000.0, []
    while (step := policy.next(message, now)) is not None:
        message, delay = step
        delays.append(delay)
        now += delay
    assert delays[:8] == [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert set(delays[8:-1]) == {3600}
    assert now == 1_000_000 + 24 * 3600  # the last attempt is at the horizon, not after it
    assert message.attempt == len(delays) and message.retry_until == now
    assert ItemMessage.from_json(message.to_json()) == message


@dataclass
class Kit:
    runtime: Runtime
    sim: GraphSimulator
    body: str
    archive_key: str

    def queue(self, name: str) -> QueueClient:
        return self.runtime.queue(name)

    def outcome(self) -> ItemOutcome:
        [row] = self.runtime.outcomes.for_export("e.zip")
        return row


@pytest.fixture
def sim() -> Iterator[GraphSimulator]:
    with GraphSimulator(users=[DANA, ERAN], token=TOKEN) as graph_sim:
        yield graph_sim


@pytest.fixture
async def kit(sim: GraphSimulator, azurite, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
              ) -> AsyncIterator[Kit]:
    env = isolated_env(azurite, GRAPH_BASE_URL=sim.base_url, GRAPH_STATIC_TOKEN=TOKEN,
                       RETRY_BASE_SECONDS="1", RETRY_MAX_DELAY_SECONDS="1",
                       RETRY_HORIZON_SECONDS="3")
    rt = Runtime(Settings.from_env(env))
    dana = Person("Dana", "Levi", "972541234567", DANA.mail)
    eran = Person("Eran", "Bar", "972541234568", ERAN.mail)
    item = SimItem(kind="text", archive_id="TG-20261125-retry", sender=dana, recipients=(eran,),
                   initiator=dana, thread_id="tm-1", sid="s-1", text="hello",
                   captured_at=datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    rt.blob_service.get_container_client(env["ITEMS_CONTAINER"]).upload_blob(
        "e/m.eml", build_eml(item))
    graph = graph_mailboxes(rt.settings, MailboxGate(), backoff_base=0.01)
    # A short claim wait, so a mailbox whose row another worker holds fails fast.
    writer = MailboxWriter(graph, FolderCache(graph, "Telegram Archiver"), rt.ledger,
                           rt.run_io, claim_wait_seconds=0.2)
    importer = Importer(rt.blob_service.get_container_client(env["ITEMS_CONTAINER"]),
                        rt.blob_service.get_container_client(env["QUARANTINE_CONTAINER"]),
                        rt.outcomes, Mapper(MappingTable, Directory(graph.get_user), True),
                        writer, rt.settings.max_item_bytes, rt.run_io)
    monkeypatch.setattr(rt, "importer", lambda: importer)
    body = ItemMessage("e.zip", "m.eml", "e/m.eml", 500, run=new_run()).to_json()
    yield Kit(rt, sim, body, item.archive_id)


def next_delivery(kit: Kit, timeout: float = 10.0) -> str:
    """The re-queued message, once its delay has passed."""
    queue = kit.queue(kit.runtime.settings.items_queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in queue.receive_messages(max_messages=1, visibility_timeout=60):
            queue.delete_message(message)
            return str(message.content)
        time.sleep(0.1)
    raise AssertionError("nothing re-queued")


async def test_retries_then_failed_with_what_was_written_then_replay_completes(
        kit: Kit) -> None:
    # Another worker holds Eran's row: Eran's write fails on every attempt; Dana's works.
    kit.runtime.ledger.claim(ERAN.id, kit.archive_key, None, "someone-else", 1)
    first = await import_queue_message(kit.runtime, kit.body, 1)
    assert first.outcome is Outcome.QUEUED and first.reason == "retrying"
    assert first.detail.startswith("retrying until ") and "attempt 1" in first.detail
    row = kit.outcome()
    assert row.outcome is Outcome.QUEUED and row.retry_until > time.time()
    assert row.archive_key == kit.archive_key
    assert row.mailboxes == {DANA.user_principal_name: "imported",
                             ERAN.user_principal_name: "failed"}
    body = next_delivery(kit)
    assert ItemMessage.from_json(body).attempt == 1

    second = await import_queue_message(kit.runtime, body, 1)
    # Dana's mailbox was written by this item on its first delivery: still `imported`.
    assert second.mailboxes[DANA.user_principal_name] == "imported"
    assert second.outcome is Outcome.QUEUED and "attempt 2" in second.detail
    body = next_delivery(kit)
    while (message := ItemMessage.from_json(body)).retry_until > time.time():
        await asyncio.sleep(message.retry_until - time.time() + 0.05)
    last = await import_queue_message(kit.runtime, body, 1)
    assert last.outcome is Outcome.FAILED and last.reason == "retries_exhausted"
    row = kit.outcome()
    assert row.outcome is Outcome.FAILED and row.archive_key == kit.archive_key
    assert row.mailboxes == {DANA.user_principal_name: "imported",
                             ERAN.user_principal_name: "failed"}
    poison = kit.queue(f"{kit.runtime.settings.items_queue}-poison")
    [poisoned] = list(poison.receive_messages())
    assert poisoned.content == body
    assert kit.queue(kit.runtime.settings.items_queue).get_queue_properties() \
        .approximate_message_count == 0

    # The other worker's claim ends; replaying the poisoned message completes the item, and
    # the report names both mailboxes as this item's.
    held = kit.runtime.ledger.get(ERAN.id, kit.archive_key)
    assert held is not None
    kit.runtime.ledger.release(ERAN.id, kit.archive_key, held)
    done = await import_queue_message(kit.runtime, str(poisoned.content), 1)
    assert done.outcome is Outcome.IMPORTED
    assert done.mailboxes == {DANA.user_principal_name: "imported",
                              ERAN.user_principal_name: "imported"}
    assert len(kit.sim.messages(DANA.id)) == 1 and len(kit.sim.messages(ERAN.id)) == 1
