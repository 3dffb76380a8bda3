"""Ledger rebuild from the mailboxes, against the Graph simulator and Azurite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from shared.clients import Runtime, graph_mailboxes
from shared.graph import ARCHIVE_KEY_PROPERTY, GraphMailboxes
from shared.ledger import REBUILD_OWNER, LedgerState
from shared.ledger_rebuild import LedgerRebuilder
from shared.mailbox_writer import FolderCache, MailboxWriter
from shared.outcomes import MailboxOutcome
from shared.render import render_message
from shared.settings import Settings
from shared.throttle import MailboxGate
from simulators.graph import GraphSimulator, SimUser
from tests.conftest import isolated_env
from tests.shared.test_mailbox_writer import AVI, DANA, make_item

pytestmark = pytest.mark.azurite
TOKEN = "rebuild-test-token"
NOBODY = "nobody@contoso.com"


@pytest.fixture
async def setup(azurite) -> AsyncIterator[tuple[GraphSimulator, Runtime,  # noqa: ANN001
                                                GraphMailboxes]]:
    with GraphSimulator(users=[DANA, AVI, SimUser(
            id="44444444-4444-4444-8444-444444444444", user_principal_name="empty@contoso.com")],
            token=TOKEN) as sim:
        env = isolated_env(azurite, GRAPH_BASE_URL=sim.base_url, GRAPH_STATIC_TOKEN=TOKEN)
        runtime = Runtime(Settings.from_env(env))
        graph = graph_mailboxes(runtime.settings, MailboxGate(), backoff_base=0.01)
        yield sim, runtime, graph


async def test_rebuild_restores_every_archived_key_page_by_page(setup) -> None:  # noqa: ANN001
    sim, runtime, graph = setup
    folders = FolderCache(graph, "Telegram Archiver")
    writer = MailboxWriter(graph, folders, runtime.ledger, runtime.run_io)
    items = [make_item(f"TG-rb{n}") for n in range(7)]
    for item in items:
        assert await writer.write(item, DANA.id, "run-1", 1) is MailboxOutcome.IMPORTED
    folder = await folders.folder_id(DANA.id)
    # A second copy of one key (e.g. written by another deployment) and a message of someone
    # else's in the same folder (no archive key): counted, and skipped.
    await graph.create_message(DANA.id, folder, render_message(items[0], []))
    plain = httpx.post(f"{sim.base_url}/users/{DANA.id}/mailFolders/{folder}/messages",
                       headers={"Authorization": f"Bearer {TOKEN}"},
                       json={"subject": "not ours"})
    assert plain.status_code == 201
    table = runtime.table(runtime.settings.ledger_table)
    for entity in list(table.list_entities()):
        table.delete_entity(entity["PartitionKey"], entity["RowKey"])
    before = len(sim.request_log)

    progress: list[str] = []
    rebuilder = LedgerRebuilder(graph, runtime.ledger, runtime.run_io, "Telegram Archiver",
                                lambda done, total, what: progress.append(what), page_size=3)
    results = {r.mailbox: r for r in await rebuilder.run(
        [DANA.user_principal_name, AVI.user_principal_name, "empty@contoso.com", NOBODY])}

    dana = results[DANA.user_principal_name]
    assert (dana.messages, dana.restored, dana.known, dana.duplicates, dana.error) == \
        (7, 7, 0, 1, "")
    assert results[AVI.user_principal_name].error == "no mailbox"
    assert results[NOBODY].error == "not in the directory"
    assert results["empty@contoso.com"].messages == 0  # no archive folder yet
    for item in items:
        entry = runtime.ledger.get(DANA.id, item.archive_key)
        assert entry is not None and entry.state is LedgerState.IMPORTED
        assert entry.owner == REBUILD_OWNER and entry.message_id
    assert runtime.ledger.covered(DANA.id)
    assert not runtime.ledger.covered("44444444-4444-4444-8444-444444444444")
    assert any("dana@contoso.com: 7 message(s)" in p for p in progress)

    listing = [r for r in sim.request_log[before:]
               if r.method == "GET"
               and unquote(r.path.split("?")[0]).endswith(f"{folder}/messages")]
    assert len(listing) == 3  # 9 messages, 3 a page, following @odata.nextLink
    query = parse_qs(urlsplit(unquote(listing[0].path)).query)
    assert query["$select"] == ["id"] and query["$top"] == ["3"]
    assert query["$expand"] == [
        f"singleValueExtendedProperties($filter=id eq '{ARCHIVE_KEY_PROPERTY}')"]
    assert all(r.status == 200 for r in listing)

    # Rebuilt: writing the items again is a duplicate, with no Graph lookup or write.
    fresh = MailboxWriter(graph, FolderCache(graph, "Telegram Archiver"), runtime.ledger,
                          runtime.run_io)
    after = len(sim.request_log)
    for item in items:
        assert await fresh.write(item, DANA.id, "run-2", 1) is MailboxOutcome.DUPLICATE
    assert [r.method for r in sim.request_log[after:]] == ["GET"]  # the folder look-up
