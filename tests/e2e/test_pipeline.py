"""End to end: the real functions, through the local host, against Azurite and both simulators
over HTTP. Nothing of ours is mocked. The mailboxes are read back through the Graph API."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

import function_app
from devhost.host import LocalFunctionsHost
from devhost.stack import GRAPH_TOKEN, LocalStack
from shared.clients import Runtime, set_runtime
from shared.outcomes import Outcome
from shared.phone import to_e164
from shared.reports import all_reports
from shared.settings import Settings
from simulators.telemessage import MAX_ITEM_BYTES
from simulators.telemessage.eml_builder import SimItem, build_eml
from tests.e2e.graph_reader import ArchivedMessage, GraphReader

pytestmark = pytest.mark.e2e
DAY = datetime.now(UTC).date() - timedelta(days=1)
FOLDER = "Telegram Archiver"
ITEM_LIMITS = {"oversize": 0, "large_attachments": 0, "encrypted": 0}


@dataclass
class Run:
    stack: LocalStack
    runtime: Runtime
    host: LocalFunctionsHost
    reader: GraphReader

    def process(self) -> None:
        self.host.run_timer()
        asyncio.run(self.host.run_until_idle(timeout=300))

    def mailbox(self, upn: str) -> list[ArchivedMessage]:
        folder = self.reader.folder_id(upn, FOLDER)
        return [] if folder is None else self.reader.messages(upn, folder)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    stack = LocalStack(tmp_path_factory.mktemp("e2e"), days=[DAY], items_per_day=150,
                       employees=16, seed=5,
                       telemessage_options={"oversize": 1, "large_attachments": 2,
                                            "encrypted": 1, "max_items_per_zip": 80})
    with stack:
        assert stack.azurite and stack.graph
        runtime = Runtime(Settings.from_env())
        set_runtime(runtime)
        host = LocalFunctionsHost(function_app.app, stack.azurite.connection_string)
        result = Run(stack, runtime, host, GraphReader(stack.graph.base_url, GRAPH_TOKEN))
        result.process()
        yield result
        host.close()
        set_runtime(None)


def usable_mailboxes(run: Run) -> set[str]:
    return {u.user_principal_name for u in run.stack.graph_users if u.mailbox_enabled}


def expected_keys(stack: LocalStack, day: date) -> dict[str, set[str]]:
    """Ground truth from the simulator: which archive keys belong in which mailbox."""
    assert stack.telemessage
    usable = {u.user_principal_name for u in stack.graph_users if u.mailbox_enabled}
    placement: dict[str, set[str]] = {}
    for item in stack.telemessage.items(day):
        if item.encrypted or len(build_eml(item)) > MAX_ITEM_BYTES * 1.4:
            continue
        if sum(a.size for a in item.attachments) + len(item.body.encode()) > MAX_ITEM_BYTES:
            continue
        for person in (item.sender, *item.recipients):
            if person.email and person.email in usable:
                placement.setdefault(person.email, set()).add(item.archive_id)
    return placement


def expected_placement(run: Run) -> dict[str, set[str]]:
    return expected_keys(run.stack, DAY)


def items_by_key(run: Run) -> dict[str, SimItem]:
    assert run.stack.telemessage
    return {i.archive_id: i for i in run.stack.telemessage.items(DAY)}


def test_every_item_is_in_exactly_the_right_mailboxes_once(run: Run) -> None:
    expected = expected_placement(run)
    assert len(expected) >= 8  # the test means something
    for upn in sorted(usable_mailboxes(run)):
        keys = [m.archive_key for m in run.mailbox(upn)]
        assert len(keys) == len(set(keys)), f"duplicates in {upn}"
        assert set(keys) == expected.get(upn, set()), f"wrong items in {upn}"


def test_items_are_not_drafts_and_carry_the_captured_time(run: Run) -> None:
    truth = items_by_key(run)
    checked = 0
    for upn in sorted(usable_mailboxes(run))[:6]:
        for message in run.mailbox(upn):
            item = truth[message.archive_key]
            captured = item.captured_at.strftime("%Y-%m-%dT%H:%M:%S")
            assert message.is_draft is False
            assert message.received.startswith(captured)
            assert message.sent.startswith(captured)
            checked += 1
    assert checked > 20


def test_participants_and_attachments_are_faithful(run: Run) -> None:
    truth = items_by_key(run)
    upload_sized = 0
    for upn in sorted(usable_mailboxes(run)):
        for message in run.mailbox(upn):
            item = truth[message.archive_key]
            sender_address = item.sender.email or f"+{item.sender.mobile}"
            assert message.sender == (f"{item.sender.name} ({to_e164(item.sender.mobile)})",
                                      sender_address)
            assert [address for _, address in message.to] == [
                p.email or f"+{p.mobile}" for p in item.recipients]
            expected = sorted((a.filename, hashlib.sha256(a.data()).hexdigest())
                              for a in item.attachments)
            assert list(message.attachments) == expected
            upload_sized += sum(1 for a in item.attachments if a.size >= 3 * 1024 * 1024)
            if item.kind == "deleted":
                assert "deleted message" in message.subject.lower()
            if item.kind == "call":
                assert "call" in message.subject.lower()
    assert upload_sized >= 1  # at least one attachment went through an upload session


def test_upload_sessions_never_receive_the_graph_token(run: Run) -> None:
    assert run.stack.graph
    upload_port = run.stack.graph.upload_base_url.rsplit(":", 1)[-1].split("/")[0]
    uploads = [r for r in run.stack.graph.request_log if r.host_port.endswith(upload_port)]
    assert uploads, "no upload session was used"
    assert all(r.authorization is None for r in uploads)
    assert all(r.status in (200, 201) for r in uploads)


def test_reports_reconcile_with_the_manifests(run: Run) -> None:
    reports = all_reports(run.runtime.state, run.runtime.outcomes)
    assert len(reports) == 2  # 150 items, 80 per ZIP
    totals: Counter[str] = Counter()
    for report in reports:
        assert report.reconciled, report.discrepancy()
        assert report.manifest_count == report.total
        totals.update(report.outcomes)
    assert totals[Outcome.OVERSIZE.value] == 1
    assert totals[Outcome.QUARANTINED.value] == 1  # the BYOK-encrypted item
    assert totals[Outcome.UNMAPPED.value] >= 1
    assert totals[Outcome.IMPORTED.value] > 100


def test_processing_the_same_day_again_writes_nothing_twice(run: Run) -> None:
    before = {upn: sorted(m.archive_key for m in run.mailbox(upn))
              for upn in usable_mailboxes(run)}
    run.host.redeliver_blobs()  # Event Grid delivers the same export blobs again
    run.runtime.state.set_checkpoint(datetime.now(UTC) - timedelta(days=3))  # timer re-run
    run.process()
    after = {upn: sorted(m.archive_key for m in run.mailbox(upn))
             for upn in usable_mailboxes(run)}
    assert after == before
    outcomes: Counter[str] = Counter()
    for report in all_reports(run.runtime.state, run.runtime.outcomes):
        outcomes.update(report.outcomes)
    assert outcomes[Outcome.IMPORTED.value] == 0
    assert outcomes[Outcome.DUPLICATE.value] > 100
