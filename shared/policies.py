"""What reaches the mailbox when an item is too large or its EML is damaged (issue 14).

OVERSIZE_POLICY, for an item over MAX_ITEM_BYTES:
  skip    recorded `oversize`, nothing written (the default, as Microsoft's connector does);
  stub    written with its text, participants, times and every attachment that fits; each
          attachment that does not is replaced by a small text note (file name, size, SHA-256,
          where the original is kept) and kept in the `preserved` container (WORM, infra/);
  import  written whole, within Graph's limits below; what exceeds them is stubbed as above.
DAMAGED_POLICY, for a truncated or malformed MIME body or a missing or unparsable Date:
  quarantine   recorded `quarantined` with the reason (the default);
  best_effort  written with what could be read, the original EML attached byte for byte and a
               visible marker naming the defects; no readable Date: the export's day is used.
An item without participants, or BYOK-encrypted, is quarantined whatever the policy.

Every written item carries its archive key, so the ledger keeps writes exactly once whatever
the policy: switching it and replaying turns what is already in a mailbox into duplicates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum

from shared.export_format import parse_export_name
from shared.item import Attachment, Item, Notice
from shared.messages import item_blob_name
from shared.outcomes import Outcome

MB = 1024 * 1024

# Graph's and Exchange Online's limits for one message, checked before any request:
# - an attachment through an upload session is at most 150 MB ("Attach large files to Outlook
#   messages", learn.microsoft.com/graph/outlook-large-attachments; attachment-createuploadsession),
#   sent in ranges under 4 MB each (graph.UPLOAD_CHUNK_BYTES); smaller than 3 MB it is POSTed;
# - the whole message, attachments included, is at most the mailbox's maximum message size:
#   35 MB by default, up to 150 MB where an admin raised it (same pages; Graph answers
#   ErrorMessageSizeExceeded). MAILBOX_MAX_MESSAGE_BYTES says which applies.
UPLOAD_SESSION_MAX_BYTES = 150 * MB
EXCHANGE_MAX_MESSAGE_BYTES = 150 * MB

# Parsing an EML holds several times its size (Python's email package: about 8x, measured on a
# 55 MB EML with one 40 MB attachment), so under stub or import a larger one is recorded
# `oversize` rather than risking the worker's memory (Flex Consumption: 2 GB by default).
MAX_EML_BYTES = 128 * MB


class OversizePolicy(StrEnum):
    SKIP = "skip"
    STUB = "stub"
    IMPORT = "import"


class DamagedPolicy(StrEnum):
    QUARANTINE = "quarantine"
    BEST_EFFORT = "best_effort"


@dataclass(frozen=True)
class Policies:
    oversize: OversizePolicy = OversizePolicy.SKIP
    damaged: DamagedPolicy = DamagedPolicy.QUARANTINE
    max_item_bytes: int = 10 * MB
    mailbox_max_message_bytes: int = 35 * MB


@dataclass(frozen=True)
class Origin:
    """Where an item came from, and where a withheld attachment's copy is kept."""

    export: str
    member: str
    exports_container: str
    preserved_container: str

    def preserved_blob(self, attachment: Attachment) -> str:
        """Deterministic: a replay finds the copy already there (WORM forbids overwrites)."""
        return f"{item_blob_name(self.export, self.member)}/{attachment.sha256}"


@dataclass(frozen=True)
class Prepared:
    """The item as it goes to the mailboxes (None: not written, recorded as `outcome`), the
    original attachments to preserve first, and the outcome a successful write records."""

    item: Item | None
    withheld: tuple[Attachment, ...]
    outcome: Outcome
    reason: str = ""
    detail: str = ""


def content_bytes(item: Item) -> int:
    return len(item.text.encode()) + sum(a.size for a in item.attachments)


def export_day(export: str) -> datetime:
    """Midnight UTC of the export's day (its TeleMessage name), for an item without a Date."""
    day = parse_export_name(export).day or datetime.now(UTC).date()
    return datetime.combine(day, time(), UTC)


def with_damage_marked(item: Item, original: bytes, member: str) -> Item:
    """A best-effort item: the original EML attached byte for byte, the defects named."""
    if not item.defects:
        return item
    codes = ", ".join(d.code for d in item.defects)
    notices = [Notice("Damaged source", f"The captured EML is damaged ({codes}): this item shows "
                      "what could be read. The original EML is attached unchanged. "
                      + " ".join(f"{d.code}: {d.detail}." for d in item.defects))]
    if any(d.code == "unparsable_date" for d in item.defects):
        day: date = item.captured_at.date()
        notices.append(Notice("Date unknown", f"The EML has no readable Date; the export's day "
                              f"({day.isoformat()}, 00:00 UTC) is shown instead."))
    stem = member[:-4] if member.lower().endswith(".eml") else member
    source = Attachment(name=f"original-{stem}.eml"[:255], content_type="message/rfc822",
                        data=original)
    return dataclasses.replace(item, attachments=(*item.attachments, source),
                               notices=(*item.notices, *notices))


def prepare(item: Item, policies: Policies, origin: Origin) -> Prepared:
    """Applies OVERSIZE_POLICY to an item (already marked if damaged)."""
    damaged = [d.code for d in item.defects]
    success = Outcome.IMPORTED_DAMAGED if damaged else Outcome.IMPORTED
    size = content_bytes(item)
    if size <= policies.max_item_bytes:
        return Prepared(item, (), success, ",".join(damaged),
                        "; ".join(d.detail for d in item.defects))
    over = f"item content is {size} bytes; limit {policies.max_item_bytes}"
    if policies.oversize is OversizePolicy.SKIP:
        return Prepared(None, (), Outcome.OVERSIZE, "oversize", over)
    if policies.oversize is OversizePolicy.IMPORT:
        budget = policies.mailbox_max_message_bytes
        per_attachment = UPLOAD_SESSION_MAX_BYTES
        if size <= budget and all(a.size <= per_attachment for a in item.attachments):
            return Prepared(item, (), success, ",".join([*damaged, "oversize_imported"]), over)
        reason = "over_graph_limit"
        why = (f"over Graph's limits (attachments up to {per_attachment} bytes, messages up to "
               f"MAILBOX_MAX_MESSAGE_BYTES={budget})")
    else:
        budget, per_attachment = policies.max_item_bytes, policies.max_item_bytes
        reason, why = "oversize", f"over MAX_ITEM_BYTES={budget}"
    stubbed, withheld = stub(item, budget, per_attachment, why, origin)
    outcome = Outcome.IMPORTED_DAMAGED if damaged else Outcome.STUBBED
    detail = (f"{over}; {len(withheld)} attachment(s) of {sum(a.size for a in withheld)} bytes "
              f"withheld, kept in {origin.preserved_container}/"
              f"{item_blob_name(origin.export, origin.member)}/")
    return Prepared(stubbed, withheld, outcome, ",".join([*damaged, reason]), detail)


def stub(item: Item, budget: int, per_attachment: int, why: str,
         origin: Origin) -> tuple[Item, tuple[Attachment, ...]]:
    """Keeps attachments in order while they fit `budget` (and `per_attachment`); each other
    one becomes a note. Returns the item to write and the withheld originals."""
    remaining = budget - len(item.text.encode())
    kept: list[Attachment] = []
    withheld: list[Attachment] = []
    for attachment in item.attachments:
        if attachment.size <= per_attachment and attachment.size <= remaining:
            kept.append(attachment)
            remaining -= attachment.size
        else:
            withheld.append(attachment)
            kept.append(stub_note(attachment, why, origin))
    notice = Notice("Attachments withheld", f"{len(withheld)} attachment(s) {why} are not in "
                    "this item; each is replaced by a text note saying where the original is "
                    "kept: " + "; ".join(f"{a.name} ({a.size} bytes)" for a in withheld) + ".")
    return (dataclasses.replace(item, attachments=tuple(kept), notices=(*item.notices, notice)),
            tuple(withheld))


def stub_note(attachment: Attachment, why: str, origin: Origin) -> Attachment:
    text = (f"This attachment was not imported into the mailbox: it is {why}.\r\n\r\n"
            f"Original file name: {attachment.name}\r\n"
            f"Content type: {attachment.content_type}\r\n"
            f"Size: {attachment.size} bytes\r\n"
            f"SHA-256: {attachment.sha256}\r\n\r\n"
            "The original is kept:\r\n"
            f"- in the export as delivered: container '{origin.exports_container}', blob "
            f"'{origin.export}', ZIP member '{origin.member}' (a MIME part of that EML);\r\n"
            f"- as a copy under a time-based retention policy: container "
            f"'{origin.preserved_container}', blob '{origin.preserved_blob(attachment)}'.\r\n")
    return Attachment(name=f"{attachment.name[:230]} (withheld).txt", content_type="text/plain",
                      data=text.encode("utf-8"))
