"""OVERSIZE_POLICY and DAMAGED_POLICY: what goes to the mailbox, what is withheld and why."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from datetime import UTC, datetime

import pytest

from shared.clients import Runtime
from shared.eml import parse_eml
from shared.item import Attachment, Defect, Item
from shared.messages import ItemMessage
from shared.outcomes import Outcome
from shared.policies import (
    MB,
    DamagedPolicy,
    Origin,
    OversizePolicy,
    Policies,
    export_day,
    prepare,
    with_damage_marked,
)
from shared.render import body_html, internet_headers, subject
from shared.settings import Settings

EXPORT = "202611250000-TeleMessage_1_20261126003000.zip"
ORIGIN = Origin(EXPORT, "TG-1.eml", "exports", "preserved")
SAMPLE = (b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
          b"From: Dana Levi 972541234567 <dana.levi@contoso.com>\r\n"
          b"To: Ext Person 447700900123 <>\r\nSubject: hi\r\n"
          b"X-TELEMESSAGE-ArchiveMessageID: TG-1\r\n\r\nhello\r\n")


def item_with(*sizes: int) -> Item:
    attachments = tuple(Attachment(f"file-{n}.bin", "application/octet-stream",
                                   bytes([n]) * size) for n, size in enumerate(sizes))
    return dataclasses.replace(parse_eml(SAMPLE), attachments=attachments)


def policies(oversize: OversizePolicy, mailbox_max: int = 35 * MB) -> Policies:
    return Policies(oversize, DamagedPolicy.QUARANTINE, 10 * MB, mailbox_max)


def test_an_item_within_the_limit_goes_in_unchanged_under_every_policy() -> None:
    item = item_with(3 * MB, 5 * MB)
    for policy in OversizePolicy:
        prepared = prepare(item, policies(policy), ORIGIN)
        assert prepared.item is item and prepared.withheld == ()
        assert prepared.outcome is Outcome.IMPORTED


def test_skip_records_oversize_and_writes_nothing() -> None:
    prepared = prepare(item_with(int(10.5 * MB)), policies(OversizePolicy.SKIP), ORIGIN)
    assert prepared.item is None
    assert (prepared.outcome, prepared.reason) == (Outcome.OVERSIZE, "oversize")


def test_stub_keeps_what_fits_and_replaces_the_rest_with_notes() -> None:
    big = int(10.5 * MB)
    item = item_with(2 * MB, big, 6 * MB, 3 * MB)  # 2 + 6 fit; 3 more would pass 10 MB
    prepared = prepare(item, policies(OversizePolicy.STUB), ORIGIN)
    assert prepared.item is not None
    names = [a.name for a in prepared.item.attachments]
    assert names == ["file-0.bin", "file-1.bin (withheld).txt", "file-2.bin",
                     "file-3.bin (withheld).txt"]
    assert [a.name for a in prepared.withheld] == ["file-1.bin", "file-3.bin"]
    assert prepared.outcome is Outcome.STUBBED and prepared.reason == "oversize"
    assert sum(a.size for a in prepared.item.attachments) <= 10 * MB

    note = prepared.item.attachments[1].data.decode()
    original = item.attachments[1]
    assert "Original file name: file-1.bin" in note
    assert f"Size: {big} bytes" in note
    assert f"SHA-256: {hashlib.sha256(original.data).hexdigest()}" in note
    assert f"blob '{EXPORT}', ZIP member 'TG-1.eml'" in note
    assert (f"container 'preserved', blob '202611250000-TeleMessage_1_20261126003000/TG-1.eml/"
            f"{original.sha256}'") in note
    assert ORIGIN.preserved_blob(original).endswith(original.sha256)


def test_a_stubbed_item_is_visibly_marked() -> None:
    prepared = prepare(item_with(int(10.5 * MB)), policies(OversizePolicy.STUB), ORIGIN)
    assert prepared.item is not None
    assert subject(prepared.item).startswith("[Attachments withheld] Telegram message")
    body = body_html(prepared.item)
    assert body.index("Attachments withheld") < body.index("hello")  # before the text
    assert "file-0.bin (11010048 bytes)" in body
    assert ("X-Telegram-Archive-Notice", "Attachments withheld") in [
        (h["name"], h["value"]) for h in internet_headers(prepared.item)]


def test_import_takes_the_whole_item_within_graphs_limits() -> None:
    item = item_with(40 * MB, 2 * MB)
    prepared = prepare(item, policies(OversizePolicy.IMPORT, mailbox_max=150 * MB), ORIGIN)
    assert prepared.item is item and prepared.withheld == ()
    assert prepared.outcome is Outcome.IMPORTED and prepared.reason == "oversize_imported"


@pytest.mark.parametrize(("sizes", "mailbox_max", "withheld"), [
    ((40 * MB,), 35 * MB, ["file-0.bin"]),  # over the mailbox's (default) message size
    ((151 * MB,), 150 * MB, ["file-0.bin"]),  # over an upload session's 150 MB
    ((20 * MB, 20 * MB, 2 * MB), 35 * MB, ["file-1.bin"]),  # together over the message size
])
def test_import_stubs_what_graph_would_refuse(sizes: tuple[int, ...], mailbox_max: int,
                                             withheld: list[str]) -> None:
    prepared = prepare(item_with(*sizes), policies(OversizePolicy.IMPORT, mailbox_max), ORIGIN)
    assert prepared.item is not None
    assert [a.name for a in prepared.withheld] == withheld
    assert prepared.outcome is Outcome.STUBBED and prepared.reason == "over_graph_limit"
    assert sum(a.size for a in prepared.item.attachments) <= mailbox_max


def test_a_damaged_item_carries_its_original_and_names_its_defects() -> None:
    raw = SAMPLE.replace(b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n", b"")
    item = parse_eml(raw, fallback_date=export_day(EXPORT))
    marked = with_damage_marked(item, raw, "TG-1.eml")
    assert marked.captured_at == datetime(2026, 11, 25, tzinfo=UTC)
    original = marked.attachments[-1]
    assert (original.name, original.content_type, original.data) == (
        "original-TG-1.eml", "message/rfc822", raw)
    assert [n.tag for n in marked.notices] == ["Damaged source", "Date unknown"]
    assert subject(marked).startswith("[Damaged source] [Date unknown] ")
    assert "unparsable_date" in body_html(marked) and "2026-11-25" in body_html(marked)
    prepared = prepare(marked, policies(OversizePolicy.SKIP), ORIGIN)
    assert prepared.item is marked
    assert (prepared.outcome, prepared.reason) == (Outcome.IMPORTED_DAMAGED, "unparsable_date")


def test_a_sound_item_is_not_marked() -> None:
    item = parse_eml(SAMPLE, fallback_date=export_day(EXPORT))
    assert with_damage_marked(item, SAMPLE, "TG-1.eml") is item


def test_a_damaged_oversize_item_under_stub_counts_as_damaged() -> None:
    item = dataclasses.replace(item_with(int(10.5 * MB)),
                               defects=(Defect("truncated_mime", "cut"),))
    prepared = prepare(item, policies(OversizePolicy.STUB), ORIGIN)
    assert prepared.outcome is Outcome.IMPORTED_DAMAGED
    assert prepared.reason == "truncated_mime,oversize"


def test_an_export_without_a_telemessage_name_falls_back_to_today() -> None:
    assert export_day(EXPORT) == datetime(2026, 11, 25, tzinfo=UTC)
    assert export_day("upload.zip").date() == datetime.now(UTC).date()


@pytest.mark.parametrize(("policy", "size", "expected"), [
    ("skip", 20 * MB, (Outcome.OVERSIZE, "oversize")),  # decided from the size alone
    ("stub", 20 * MB, (Outcome.QUARANTINED, "item_blob_missing")),  # read to be stubbed
    ("import", 20 * MB, (Outcome.QUARANTINED, "item_blob_missing")),
    ("stub", 129 * MB, (Outcome.OVERSIZE, "oversize")),  # too large to read in memory
])
def test_the_importer_reads_a_large_eml_only_when_a_policy_can_use_it(
        storage_env: dict[str, str], policy: str, size: int,
        expected: tuple[Outcome, str]) -> None:
    runtime = Runtime(Settings.from_env({**storage_env, "OVERSIZE_POLICY": policy}))
    body = ItemMessage(EXPORT, "TG-1.eml", "no-such-blob.eml", size).to_json()

    async def run() -> tuple[Outcome, str, str]:
        result = await runtime.importer().import_message(body)
        return result.outcome, result.reason, result.detail

    outcome, reason, detail = asyncio.run(run())
    assert (outcome, reason) == expected
    assert ("too large to read in memory" in detail) == (size > 128 * MB)
