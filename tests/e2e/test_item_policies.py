"""End to end, OVERSIZE_POLICY and DAMAGED_POLICY: a 10.5 MB attachment stubbed, a 40 MB one
imported whole, a truncated multipart and an EML without a Date imported best effort. The real
functions run through the local host against Azurite and the Graph simulator; the mailboxes are
read back through the Graph API.

One export holds the four items. It is imported with the default policies (nothing of the four
reaches a mailbox), then replayed after each policy switch, as an admin would; a switch and a
replay never duplicate what is already in a mailbox."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import function_app
from devhost.host import LocalFunctionsHost
from devhost.stack import GRAPH_TOKEN, LocalStack
from shared.clients import Runtime, set_runtime
from shared.graph import UPLOAD_CHUNK_BYTES
from shared.outcomes import ItemOutcome, Outcome
from shared.replay import Replayer
from shared.settings import Settings
from simulators.telemessage.eml_builder import Attachment, SimItem, build_eml
from simulators.telemessage.export import write_export
from tests.e2e.graph_reader import ArchivedMessage, GraphReader

pytestmark = pytest.mark.e2e
MB = 1024 * 1024
DAY = datetime.now(UTC).date() - timedelta(days=1)
EXPORT = f"{DAY:%Y%m%d}0000-TeleMessage_9_{DAY + timedelta(days=1):%Y%m%d}003000.zip"
FOLDER = "Telegram Archiver"
KEYS = {"stub": "TG-POLICY-STUB", "import": "TG-POLICY-IMPORT",
        "truncated": "TG-POLICY-TRUNCATED", "undated": "TG-POLICY-UNDATED"}


@dataclass
class Policies:
    stack: LocalStack
    host: LocalFunctionsHost
    reader: GraphReader
    items: dict[str, SimItem]
    emls: dict[str, bytes]
    outcomes: dict[str, dict[str, ItemOutcome]]  # phase -> member -> outcome
    mailbox: str
    runtime: Runtime | None = None
    final: dict[str, list[ArchivedMessage]] = field(default_factory=dict)  # after all phases

    def use(self, **settings: str) -> Runtime:
        """The app restarted with these settings (as after changing app settings in Azure)."""
        self.runtime = Runtime(Settings.from_env({**os.environ, **settings}))
        set_runtime(self.runtime)
        return self.runtime

    def replay(self, *members: str) -> None:
        assert self.runtime
        for member in members:
            Replayer(self.runtime).item(EXPORT, member)
        asyncio.run(self.host.run_until_idle(timeout=300))

    def record(self, phase: str) -> None:
        assert self.runtime
        self.outcomes[phase] = {o.member: o for o in self.runtime.outcomes.for_export(EXPORT)}

    def messages(self) -> dict[str, list[ArchivedMessage]]:
        folder = self.reader.folder_id(self.mailbox, FOLDER)
        found: dict[str, list[ArchivedMessage]] = {}
        for message in [] if folder is None else self.reader.messages(self.mailbox, folder):
            found.setdefault(message.archive_key, []).append(message)
        return found


def sim_items(stack: LocalStack) -> dict[str, SimItem]:
    assert stack.telemessage
    staff = stack.telemessage.org.employees
    sender, recipient = staff[3], staff[4]  # both have mailboxes (devhost.stack.graph_users_for)
    when = datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(hours=9)

    def item(key: str, text: str, *attachments: Attachment) -> SimItem:
        return SimItem(kind="media" if attachments else "text", archive_id=KEYS[key],
                       captured_at=when, sender=sender, recipients=(recipient,),
                       initiator=sender, thread_id="tm-77", sid=f"sid-{key}", text=text,
                       attachments=attachments)

    return {
        "stub": item("stub", "the site video, and the floor plan",
                     Attachment("site.mp4", "video/mp4", int(10.5 * MB), 1),
                     Attachment("plan.jpg", "image/jpeg", 200_000, 2)),
        "import": item("import", "the full prospectus",
                       Attachment("prospectus.pdf", "application/pdf", 40 * MB, 3)),
        "truncated": item("truncated", "see the attached contract",
                          Attachment("contract.pdf", "application/pdf", 300_000, 4)),
        "undated": item("undated", "call me when you land"),
    }


def damaged_emls(items: dict[str, SimItem]) -> dict[str, bytes]:
    emls = {key: build_eml(item) for key, item in items.items()}
    truncated = emls["truncated"]
    emls["truncated"] = truncated[: truncated.index(b"filename=\"contract.pdf\"") + 150_000]
    undated = emls["undated"]
    start = undated.index(b"Date: ")
    emls["undated"] = undated[:start] + undated[undated.index(b"\r\n", start) + 2:]
    return emls


def member(key: str) -> str:
    return f"{KEYS[key]}.eml"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Policies]:
    workdir: Path = tmp_path_factory.mktemp("policies")
    stack = LocalStack(workdir, days=[DAY], items_per_day=4, employees=8, seed=14,
                       telemessage_options={"oversize": 0, "large_attachments": 0,
                                            "encrypted": 0})
    with stack:
        assert stack.azurite and stack.graph
        items = sim_items(stack)
        emls = damaged_emls(items)
        zip_path = workdir / EXPORT
        write_export(zip_path, ((member(k), items[k].captured_at, emls[k]) for k in KEYS),
                     datetime.now(UTC))
        host = LocalFunctionsHost(function_app.app, stack.azurite.connection_string)
        recipient = items["stub"].recipients[0].email
        assert recipient
        result = Policies(stack, host, GraphReader(stack.graph.base_url, GRAPH_TOKEN), items,
                          emls, {}, recipient)
        try:
            # 1. The defaults: skip and quarantine.
            runtime = result.use()
            exports = runtime.blob_service.get_container_client(runtime.settings.exports_container)
            with zip_path.open("rb") as stream:
                exports.upload_blob(EXPORT, stream, overwrite=True)
            asyncio.run(host.run_until_idle(timeout=300))
            result.record("defaults")
            # 2. stub and best_effort: the oversize and the damaged items replayed.
            result.use(OVERSIZE_POLICY="stub", DAMAGED_POLICY="best_effort")
            result.replay(member("stub"), member("truncated"), member("undated"))
            result.record("stub")
            # 3. import, the mailboxes' message size raised to 150 MB (as an Exchange admin
            #    would with Set-Mailbox -MaxReceiveSize 150MB): the 40 MB item, and the stubbed
            #    one again, which is in the mailbox already.
            for user in stack.graph_users:
                user.max_message_bytes = 150 * MB
            result.use(OVERSIZE_POLICY="import", DAMAGED_POLICY="best_effort",
                       MAILBOX_MAX_MESSAGE_BYTES=str(150 * MB))
            result.replay(member("import"), member("stub"))
            result.record("import")
            # 4. The whole export again under import (Event Grid delivering it twice).
            host.redeliver_blobs()
            asyncio.run(host.run_until_idle(timeout=300))
            result.record("again")
            result.final = result.messages()
            yield result
        finally:
            host.close()
            set_runtime(None)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_defaults_keep_all_four_out_of_the_mailbox(run: Policies) -> None:
    outcomes = run.outcomes["defaults"]
    assert {k: (outcomes[member(k)].outcome, outcomes[member(k)].reason) for k in KEYS} == {
        "stub": (Outcome.OVERSIZE, "oversize"), "import": (Outcome.OVERSIZE, "oversize"),
        "truncated": (Outcome.QUARANTINED, "truncated_mime"),
        "undated": (Outcome.QUARANTINED, "unparsable_date")}


def test_a_10_5_mb_attachment_is_stubbed_and_its_original_preserved(run: Policies) -> None:
    assert run.outcomes["stub"][member("stub")].outcome is Outcome.STUBBED
    [message] = run.final[KEYS["stub"]]
    video, photo = run.items["stub"].attachments
    assert message.subject.startswith("[Attachments withheld] Telegram message")
    assert "Attachments withheld" in message.body and "site.mp4" in message.body
    assert not message.is_draft
    assert message.sent.startswith(run.items["stub"].captured_at.strftime("%Y-%m-%dT%H:%M:%S"))
    names = dict(message.attachments)
    assert names["plan.jpg"] == sha(photo.data())  # what fits goes in, byte for byte
    assert "site.mp4" not in names
    note = run.reader.attachment_bytes(run.mailbox, message.id,
                                       "site.mp4 (withheld).txt").decode()
    assert f"SHA-256: {sha(video.data())}" in note and f"Size: {video.size} bytes" in note
    assert f"blob '{EXPORT}', ZIP member '{member('stub')}'" in note
    preserved_name = f"{EXPORT[:-4]}/{member('stub')}/{sha(video.data())}"
    assert f"container 'preserved', blob '{preserved_name}'" in note
    assert run.runtime
    preserved = run.runtime.blob_service.get_container_client("preserved")
    assert sha(preserved.download_blob(preserved_name).readall()) == sha(video.data())


def test_a_40_mb_attachment_is_imported_whole_in_chunks(run: Policies) -> None:
    outcome = run.outcomes["import"][member("import")]
    assert (outcome.outcome, outcome.reason) == (Outcome.IMPORTED, "oversize_imported")
    [message] = run.final[KEYS["import"]]
    [attachment] = run.items["import"].attachments
    assert dict(message.attachments) == {"prospectus.pdf": sha(attachment.data())}
    assert not message.subject.startswith("[")  # nothing withheld, nothing to mark
    assert run.stack.graph
    upload_port = run.stack.graph.upload_base_url.rsplit(":", 1)[-1].split("/")[0]
    puts = [r for r in run.stack.graph.request_log
            if r.host_port.endswith(upload_port) and r.method == "PUT"]
    # Only the 40 MB attachment needs an upload session here (one per participant's mailbox),
    # sent in 3.125 MiB ranges (the simulator refuses a range of 4 MB or more).
    per_mailbox = Counter(r.mailbox for r in puts)
    assert list(per_mailbox.values()) == [math.ceil(attachment.size / UPLOAD_CHUNK_BYTES)] * 2
    assert all(r.status in (200, 201) and r.authorization is None for r in puts)


def test_a_truncated_multipart_is_imported_with_its_original_and_marked(run: Policies) -> None:
    outcome = run.outcomes["stub"][member("truncated")]
    assert (outcome.outcome, outcome.reason) == (Outcome.IMPORTED_DAMAGED, "truncated_mime")
    assert outcome.captured == run.items["truncated"].captured_at.timestamp()
    [message] = run.final[KEYS["truncated"]]
    assert message.subject.startswith("[Damaged source] Telegram message")
    assert "truncated_mime" in message.body and "see the attached contract" in message.body
    names = dict(message.attachments)
    assert names[f"original-{KEYS['truncated']}.eml"] == sha(run.emls["truncated"])
    captured = run.items["truncated"].captured_at.strftime("%Y-%m-%dT%H:%M:%S")
    assert message.received.startswith(captured)  # its Date was readable


def test_an_eml_without_a_date_gets_the_exports_day_and_says_so(run: Policies) -> None:
    outcome = run.outcomes["stub"][member("undated")]
    assert (outcome.outcome, outcome.reason) == (Outcome.IMPORTED_DAMAGED, "unparsable_date")
    assert outcome.captured == 0  # unknown: no lag is computed from the stand-in date
    [message] = run.final[KEYS["undated"]]
    assert message.subject.startswith("[Damaged source] [Date unknown] Telegram message")
    assert message.received.startswith(f"{DAY.isoformat()}T00:00:00")
    assert message.sent.startswith(f"{DAY.isoformat()}T00:00:00")
    assert "no readable Date" in message.body and "call me when you land" in message.body
    assert dict(message.attachments) == {
        f"original-{KEYS['undated']}.eml": sha(run.emls["undated"])}


def test_switching_a_policy_and_replaying_duplicates_nothing(run: Policies) -> None:
    assert run.outcomes["import"][member("stub")].outcome is Outcome.DUPLICATE
    again = run.outcomes["again"]
    assert {k: again[member(k)].outcome for k in KEYS} == dict.fromkeys(KEYS, Outcome.DUPLICATE)
    messages = run.final
    assert {k: len(messages.get(v, [])) for k, v in KEYS.items()} == dict.fromkeys(KEYS, 1)
    # The stubbed item stays as it was written: the full video was not added by the replay.
    assert "site.mp4" not in dict(messages[KEYS["stub"]][0].attachments)
