"""The mailbox writer against the Graph simulator (HTTP) and the ledger in Azurite."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from shared.clients import Runtime, graph_mailboxes
from shared.graph import Failure, GraphError, GraphMailboxes
from shared.item import Attachment, Chat, Direction, Item, ItemKind, Participant
from shared.ledger import Ledger, LedgerState
from shared.mailbox_writer import FolderCache, MailboxWriter, RetryLater
from shared.outcomes import MailboxOutcome
from shared.render import render_message
from shared.settings import Settings
from shared.throttle import MailboxGate
from simulators.graph import FaultPlan, GraphSimulator, SimUser
from tests.conftest import isolated_env
from tests.e2e.graph_reader import GraphReader

pytestmark = pytest.mark.azurite
TOKEN = "writer-test-token"
DANA = SimUser(id="11111111-1111-4111-8111-111111111111", user_principal_name="dana@contoso.com",
               mail="dana@contoso.com", display_name="Dana Levi")
AVI = SimUser(id="22222222-2222-4222-8222-222222222222", user_principal_name="avi@contoso.com",
              mail="avi@contoso.com", display_name="Avi Cohen", mailbox_enabled=False)
CAPTURED = datetime(2026, 11, 25, 9, 30, 5, tzinfo=UTC)


def make_item(key: str, attachments: tuple[Attachment, ...] = ()) -> Item:
    return Item(
        archive_key=key, kind=ItemKind.MESSAGE, captured_at=CAPTURED,
        sender=Participant("Dana Levi", "+972541234567", "dana@contoso.com"),
        recipients=(Participant("Ext Person", "+447700900123", None),),
        subject="s", text="שלום 👋 hello", html=None, attachments=attachments,
        chat=Chat("tm-1", "Ext Person"), direction=Direction.OUTGOING,
        archive_initiator="+972541234567", internet_message_id=f"<{key}@telemessage.com>",
        telemessage_headers=(("X-TELEMESSAGE-ArchiveMessageID", key),))


@dataclass
class Kit:
    sim: GraphSimulator
    runtime: Runtime
    graph: GraphMailboxes
    writer: MailboxWriter
    reader: GraphReader

    def new_writer(self) -> MailboxWriter:
        """A second worker: its own folder cache and gate, the same ledger and Graph."""
        graph = graph_mailboxes(self.runtime.settings, MailboxGate(), backoff_base=0.01)
        return MailboxWriter(graph, FolderCache(graph, "Telegram Archiver"),
                             self.runtime.ledger, self.runtime.run_io)

    def archived(self, user: str = DANA.user_principal_name) -> list[dict]:
        return self.sim.messages(user)


@pytest.fixture
def sim() -> Iterator[GraphSimulator]:
    with GraphSimulator(users=[DANA, AVI], token=TOKEN) as graph_sim:
        yield graph_sim


@pytest.fixture
async def kit(sim: GraphSimulator, azurite) -> AsyncIterator[Kit]:  # noqa: ANN001
    env = isolated_env(azurite, GRAPH_BASE_URL=sim.base_url, GRAPH_STATIC_TOKEN=TOKEN)
    runtime = Runtime(Settings.from_env(env))
    graph = graph_mailboxes(runtime.settings, MailboxGate(), backoff_base=0.01)
    writer = MailboxWriter(graph, FolderCache(graph, "Telegram Archiver"), runtime.ledger,
                           runtime.run_io)
    yield Kit(sim, runtime, graph, writer, GraphReader(sim.base_url, TOKEN))


def ext_value(message: dict, prop: str) -> str | None:
    for entry in message.get("singleValueExtendedProperties") or []:
        if entry["id"].lower() == prop.lower():
            return str(entry["value"])
    return None


async def test_item_is_written_once_as_a_non_draft_with_the_captured_time(kit: Kit) -> None:
    item = make_item("TG-1", (Attachment("photo.jpg", "image/jpeg", b"\xff\xd8" + b"x" * 5000),))
    assert await kit.writer.write(item, DANA.id) is MailboxOutcome.IMPORTED
    assert await kit.writer.write(item, DANA.id) is MailboxOutcome.DUPLICATE
    [message] = kit.archived()
    assert message["isDraft"] is False
    assert message["receivedDateTime"].startswith("2026-11-25T09:30:05")
    assert message["sentDateTime"].startswith("2026-11-25T09:30:05")
    assert message["from"]["emailAddress"] == {"name": "Dana Levi (+972541234567)",
                                               "address": "dana@contoso.com"}
    assert [r["emailAddress"]["address"] for r in message["toRecipients"]] == ["+447700900123"]
    assert "שלום 👋 hello" in message["body"]["content"]
    assert {h["name"] for h in message["internetMessageHeaders"]} >= {
        "X-TELEMESSAGE-ArchiveMessageID", "X-Telegram-Archive-Key"}
    assert message["internetMessageId"] == "<TG-1@telemessage.com>"
    assert [a["name"] for a in message["attachments"]] == ["photo.jpg"]


async def test_large_attachment_goes_through_an_upload_session_without_the_token(
        kit: Kit) -> None:
    big = bytes(range(256)) * (5 * 1024 * 1024 // 256)  # 5 MiB: too big for a request body
    small = b"%PDF-1.7" + b"y" * 200_000
    item = make_item("TG-big", (Attachment("video.mp4", "video/mp4", big),
                                Attachment("doc.pdf", "application/pdf", small)))
    assert await kit.writer.write(item, DANA.id) is MailboxOutcome.IMPORTED
    [message] = kit.archived()
    by_name = {a["name"]: a for a in message["attachments"]}
    for attachment in item.attachments:
        stored = base64.b64decode(by_name[attachment.name]["contentBytes"])
        assert hashlib.sha256(stored).hexdigest() == attachment.sha256
    upload_port = kit.sim.upload_base_url.rsplit(":", 1)[-1].split("/")[0]
    uploads = [r for r in kit.sim.request_log if r.host_port.endswith(upload_port)]
    assert len(uploads) >= 2  # 5 MiB in chunks under 4 MiB
    assert all(r.authorization is None for r in uploads)


async def test_gateway_timeouts_after_write_never_duplicate(kit: Kit) -> None:
    kit.sim.set_faults(FaultPlan(gateway_timeout_after_write_ratio=1.0))  # every POST 504s
    item = make_item("TG-504", (Attachment("a.jpg", "image/jpeg", b"\xff\xd8" * 100),))
    assert await kit.writer.write(item, DANA.id) is MailboxOutcome.IMPORTED
    messages = kit.archived()
    assert len(messages) == 1
    assert [a["name"] for a in messages[0]["attachments"]] == ["a.jpg"]
    assert len(kit.sim.folders(DANA.id)) == len({f["id"] for f in kit.sim.folders(DANA.id)})


async def test_throttling_and_unavailability_become_waits_not_failures(kit: Kit) -> None:
    kit.sim.set_faults(FaultPlan(throttle_ratio=0.3, unavailable_ratio=0.2,
                                 retry_after_seconds=0, only_methods=("POST", "GET")))
    items = [make_item(f"TG-t{i}") for i in range(12)]
    results = await asyncio.gather(*(kit.writer.write(i, DANA.id) for i in items))
    assert set(results) == {MailboxOutcome.IMPORTED}
    keys = sorted(ext_value(m, "String {541bbd6f-e9a4-4003-a777-0a9eeced438d} Name ArchiveKey")
                  or "" for m in kit.archived())
    assert keys == sorted(i.archive_key for i in items)
    assert kit.sim.max_concurrency(DANA.id) <= 4


async def test_a_crash_after_creating_the_message_is_completed_not_repeated(kit: Kit) -> None:
    item = make_item("TG-crash", (Attachment("a.jpg", "image/jpeg", b"\xff\xd8" * 100),))
    folder = await FolderCache(kit.graph, "Telegram Archiver").folder_id(DANA.id)
    # A worker claimed, created the message without its attachment, died; its lease ran out.
    expired = Ledger(kit.runtime.table(kit.runtime.settings.ledger_table), lease_seconds=-1)
    expired.claim(DANA.id, item.archive_key, None)
    await kit.graph.create_message(DANA.id, folder, render_message(item, []))
    assert await kit.writer.write(item, DANA.id) is MailboxOutcome.IMPORTED
    [message] = kit.archived()
    assert [a["name"] for a in message["attachments"]] == ["a.jpg"]
    entry = kit.runtime.ledger.get(DANA.id, item.archive_key)
    assert entry is not None and entry.state is LedgerState.IMPORTED


async def test_two_workers_racing_on_a_new_mailbox_make_one_folder_and_one_message(
        kit: Kit) -> None:
    item = make_item("TG-race")
    other = kit.new_writer()
    results = await asyncio.gather(kit.writer.write(item, DANA.id), other.write(item, DANA.id))
    assert sorted(results) == sorted([MailboxOutcome.IMPORTED, MailboxOutcome.DUPLICATE])
    archive_folders = [f for f in kit.sim.folders(DANA.id)
                       if f["displayName"] == "Telegram Archiver"]
    assert len(archive_folders) == 1
    assert len(kit.archived()) == 1


async def test_folder_race_between_two_caches_is_resolved(kit: Kit) -> None:
    caches = [FolderCache(kit.graph, "Telegram Archiver") for _ in range(4)]
    ids = await asyncio.gather(*(c.folder_id(DANA.id) for c in caches))
    assert len(set(ids)) == 1


async def test_user_without_a_mailbox_is_an_outcome_not_an_error(kit: Kit) -> None:
    assert await kit.writer.write(make_item("TG-2"), AVI.id) is MailboxOutcome.NO_MAILBOX


async def test_an_existing_hidden_archive_folder_is_found_not_duplicated(kit: Kit) -> None:
    created = httpx.post(f"{kit.sim.base_url}/users/{DANA.id}/mailFolders/msgfolderroot/"
                         "childFolders", headers={"Authorization": f"Bearer {TOKEN}"},
                         json={"displayName": "Telegram Archiver", "isHidden": True})
    assert created.status_code == 201
    folder = await FolderCache(kit.graph, "Telegram Archiver").folder_id(DANA.id)
    assert folder == created.json()["id"]


async def test_graph_refusal_is_permanent_not_retried(kit: Kit) -> None:
    # Just under 3 MiB: too big for one request once base64-encoded, too small for an upload
    # session (3 MiB minimum). Graph refuses it; that must surface as a permanent refusal.
    awkward = Attachment("gap.bin", "application/octet-stream", b"z" * (3 * 1024 * 1024 - 50))
    with pytest.raises(GraphError) as refused:
        await kit.writer.write(make_item("TG-gap", (awkward,)), DANA.id)
    assert refused.value.failure is Failure.REJECTED and refused.value.status == 413


def writer_with(kit: Kit, **options: float) -> MailboxWriter:
    return MailboxWriter(kit.graph, FolderCache(kit.graph, "Telegram Archiver"),
                         kit.runtime.ledger, kit.runtime.run_io, **options)  # type: ignore[arg-type]


async def test_a_failed_write_releases_its_claim_so_another_attempt_goes_at_once(
        kit: Kit) -> None:
    writer = writer_with(kit, max_attempts=2, claim_wait_seconds=2)
    await kit.writer.write(make_item("TG-warm"), DANA.id)  # folder exists before the outage
    item = make_item("TG-release")
    kit.sim.set_faults(FaultPlan(unavailable_ratio=1.0, retry_after_seconds=0))
    with pytest.raises(GraphError):
        await writer.write(item, DANA.id, "owner-a", 1)
    entry = kit.runtime.ledger.get(DANA.id, item.archive_key)
    assert entry is not None and entry.state is LedgerState.WRITING
    assert entry.claimed_until == 0  # released, not held for the lease
    kit.sim.set_faults(FaultPlan())
    # Another item with the same key (the same message from a second phone) need not wait.
    assert await writer.write(item, DANA.id, "owner-b", 1) is MailboxOutcome.IMPORTED
    assert len(kit.archived()) == 2  # TG-warm and TG-release, once each


async def test_the_owners_next_delivery_takes_over_its_own_claim_at_once(kit: Kit) -> None:
    writer = writer_with(kit, claim_wait_seconds=1)
    item = make_item("TG-takeover")
    # Delivery 1 claimed and died without releasing (a crash, or storage down at the time).
    kit.runtime.ledger.claim(DANA.id, item.archive_key, None, "owner-a", 1)
    with pytest.raises(RetryLater):  # another item's writer still waits for the lease
        await writer.write(item, DANA.id, "owner-b", 9)
    with pytest.raises(RetryLater):  # a duplicate of the same delivery does too
        await writer.write(item, DANA.id, "owner-a", 1)
    assert await writer.write(item, DANA.id, "owner-a", 2) is MailboxOutcome.IMPORTED
    assert len(kit.archived()) == 1


async def test_imported_on_any_delivery_of_the_item_duplicate_for_anyone_else(kit: Kit) -> None:
    item = make_item("TG-exact")
    assert await kit.writer.write(item, DANA.id, "owner-a", 1) is MailboxOutcome.IMPORTED
    assert await kit.writer.write(item, DANA.id, "owner-a", 2) is MailboxOutcome.IMPORTED
    assert await kit.writer.write(item, DANA.id, "owner-b", 1) is MailboxOutcome.DUPLICATE
    assert await kit.writer.write(item, DANA.id) is MailboxOutcome.DUPLICATE
    assert len(kit.archived()) == 1


async def test_a_user_without_a_mailbox_is_asked_once_per_cache_lifetime(kit: Kit) -> None:
    def asked() -> int:
        return sum(1 for r in kit.sim.request_log if AVI.id in r.path or
                   AVI.user_principal_name in r.path)

    for number in range(5):
        assert await kit.writer.write(make_item(f"TG-nm{number}"), AVI.id) \
            is MailboxOutcome.NO_MAILBOX
    assert asked() == 1
    forgetful = MailboxWriter(kit.graph, FolderCache(kit.graph, "Telegram Archiver",
                                                     no_mailbox_seconds=0),
                              kit.runtime.ledger, kit.runtime.run_io)
    for number in range(2):
        await forgetful.write(make_item(f"TG-nm{number}"), AVI.id)
    assert asked() == 3


async def test_folder_creation_with_an_unknown_outcome_is_retried_in_place(kit: Kit) -> None:
    kit.sim.set_faults(FaultPlan(unavailable_ratio=1.0, retry_after_seconds=0))

    async def end_outage_after_first_refusal() -> None:
        while not kit.sim.stats()["faults"].get("503"):
            await asyncio.sleep(0.005)
        kit.sim.set_faults(FaultPlan())

    healer = asyncio.create_task(end_outage_after_first_refusal())
    folder = await FolderCache(kit.graph, "Telegram Archiver").folder_id(DANA.id)
    await healer
    assert [f["id"] for f in kit.sim.folders(DANA.id)
            if f["displayName"] == "Telegram Archiver"] == [folder]


async def test_a_lost_ledger_does_not_mean_duplicates(kit: Kit) -> None:
    items = [make_item(f"TG-lost{n}") for n in range(3)]
    for item in items:
        assert await kit.writer.write(item, DANA.id, "run-1", 1) is MailboxOutcome.IMPORTED
    table = kit.runtime.table(kit.runtime.settings.ledger_table)
    for entity in list(table.list_entities()):
        table.delete_entity(entity["PartitionKey"], entity["RowKey"])
    # A new process (new caches) on the empty ledger: the folder exists, the ledger does not
    # cover it, so Graph is asked before each write.
    results = [await kit.new_writer().write(item, DANA.id, "run-2", 1) for item in items]
    assert results == [MailboxOutcome.DUPLICATE] * 3
    assert len(kit.archived()) == 3
    assert await kit.new_writer().write(make_item("TG-new"), DANA.id, "run-2", 1) \
        is MailboxOutcome.IMPORTED
    assert len(kit.archived()) == 4
