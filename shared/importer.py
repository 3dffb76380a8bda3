"""Import: one queue message -> the item's outcome in each target mailbox, recorded.

Permanent problems (oversize, quarantined, unmapped) are recorded outcomes, never retries.
Transient ones raise, so the queue delivers the message again (and, after maxDequeueCount,
moves it to the poison queue, from which it can be replayed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

from shared.eml import InvalidItem, parse_eml
from shared.graph import Failure, GraphError
from shared.item import Attachment, Item
from shared.mailbox_writer import MailboxWriter, RetryLater
from shared.mapping import Mapper
from shared.messages import ItemMessage
from shared.outcomes import ItemOutcome, MailboxOutcome, Outcome, OutcomeStore
from shared.policies import (
    MAX_EML_BYTES,
    DamagedPolicy,
    Origin,
    OversizePolicy,
    Policies,
    export_day,
    prepare,
    with_damage_marked,
)
from shared.telemetry import digest, event, item_trace_context, items_outcome, tracer

log = logging.getLogger(__name__)

# An EML this much larger than the limit cannot hold an item under it (base64 is 4/3).
RAW_OVERSIZE_FACTOR = 1.4


@dataclass
class Importer:
    items: ContainerClient
    quarantine: ContainerClient
    outcomes: OutcomeStore
    mapper: Mapper
    writer: MailboxWriter
    max_item_bytes: int
    run_io: Callable[..., Awaitable[Any]]
    policies: Policies = Policies()
    preserved: ContainerClient | None = None  # withheld attachments (OVERSIZE_POLICY=stub)
    exports_container: str = "exports"

    async def import_message(self, body: str) -> ItemOutcome:
        try:
            message = ItemMessage.from_json(body)
        except ValueError as exc:
            # Nothing to attach an outcome to; say so loudly and drop the message.
            log.error("unreadable queue message", extra={"reason": "bad_message",
                                                        "detail": str(exc)[:200]})
            return ItemOutcome("", "", Outcome.QUARANTINED, reason="bad_message", detail=str(exc))
        with tracer.start_as_current_span("import item", context=item_trace_context(
                message.trace), attributes={"export": message.export,
                                             "member": digest(message.member)}) as span:
            outcome = await self._import(message)
            await self.run_io(self.outcomes.record, outcome)
            span.set_attribute("outcome", outcome.outcome.value)
            span.set_attribute("archive_key", digest(outcome.archive_key))
        items_outcome.add(1, {"outcome": outcome.outcome.value, "reason": outcome.reason})
        # lag_seconds: from capture to the recorded outcome (-1: not parsed, capture unknown).
        lag = round(time.time() - outcome.captured, 1) if outcome.captured else -1
        event(log, "item outcome", export=message.export, outcome=outcome.outcome.value,
              reason=outcome.reason, archive_key=digest(outcome.archive_key),
              mailboxes=len(outcome.mailboxes), lag_seconds=lag)
        return outcome

    async def _import(self, message: ItemMessage) -> ItemOutcome:
        def outcome(result: Outcome, **fields: Any) -> ItemOutcome:
            return ItemOutcome(message.export, message.member, result, size=message.size,
                               **fields)

        skip = self.policies.oversize is OversizePolicy.SKIP
        if message.size > (self.max_item_bytes * RAW_OVERSIZE_FACTOR if skip else MAX_EML_BYTES):
            detail = f"EML is {message.size} bytes; limit {self.max_item_bytes}"
            if not skip:
                detail += f"; over {MAX_EML_BYTES} bytes, too large to read in memory"
            return outcome(Outcome.OVERSIZE, reason="oversize", detail=detail)
        try:
            data: bytes = await self.run_io(self._download, message.blob)
        except ResourceNotFoundError:
            return outcome(Outcome.QUARANTINED, reason="item_blob_missing",
                           detail=f"item blob {message.blob} not found; split the export again")
        best_effort = self.policies.damaged is DamagedPolicy.BEST_EFFORT
        try:
            # CPU-bound: off the event loop.
            item = await self.run_io(functools.partial(
                parse_eml, fallback_date=export_day(message.export) if best_effort else None),
                data)
        except InvalidItem as invalid:
            # Kept apart from the items container (whose blobs expire) for inspection/replay.
            kept = f"{self.quarantine.container_name}/{message.blob}"
            await self.run_io(self._keep, message.blob, data)
            return outcome(Outcome.QUARANTINED, reason=invalid.reason,
                           detail=f"{invalid.detail} (kept as {kept})")
        # The capture time, for the lag metric; unknown when the Date was unreadable.
        captured = 0.0 if any(d.code == "unparsable_date" for d in item.defects) \
            else item.captured_at.timestamp()
        origin = Origin(message.export, message.member, self.exports_container,
                        self.preserved.container_name if self.preserved else "")
        prepared = prepare(with_damage_marked(item, data, message.member), self.policies, origin)
        del data  # a large item's EML need not stay in memory while it is written
        if prepared.item is None:
            return outcome(prepared.outcome, reason=prepared.reason, detail=prepared.detail,
                           archive_key=item.archive_key, kind=item.kind.value,
                           captured=captured)
        item = prepared.item
        resolution = await self.mapper.resolve(item)
        unmapped = resolution.unmapped_labels()
        if not resolution.targets:
            return outcome(Outcome.UNMAPPED, archive_key=item.archive_key,
                           reason="routing_conflict" if resolution.conflicts else "unmapped",
                           kind=item.kind.value, unmapped=unmapped, captured=captured,
                           detail="no participant maps to a Microsoft 365 user")
        for original in prepared.withheld:  # kept before any note in a mailbox points at it
            await self.run_io(self._preserve, origin.preserved_blob(original), original)
        per_mailbox, refusals = await self._write_all(
            item, [(t.mailbox, t.upn) for t in resolution.targets])
        combined = ItemOutcome.combine(per_mailbox)
        # A user found in the directory without a usable mailbox is something to fix too.
        unmapped += [f"{upn} (no mailbox)" for upn, result in per_mailbox.items()
                     if result is MailboxOutcome.NO_MAILBOX]
        reason = {Outcome.UNMAPPED: "no_mailbox", Outcome.QUARANTINED: "graph_rejected"}.get(
            combined, "")
        detail = "; ".join(refusals)
        if combined is Outcome.IMPORTED:  # stubbed or damaged items are counted apart
            combined, reason, detail = prepared.outcome, prepared.reason, prepared.detail
        return outcome(combined, archive_key=item.archive_key, kind=item.kind.value,
                       captured=captured,
                       mailboxes={upn: value.value for upn, value in per_mailbox.items()},
                       unmapped=unmapped, reason=reason, detail=detail)

    async def _write_all(self, item: Item, targets: list[tuple[str, str]]
                         ) -> tuple[dict[str, MailboxOutcome], list[str]]:
        """Per mailbox: imported, duplicate, no mailbox, or refused by Graph (a permanent
        400-class answer, recorded with its code). Anything transient raises, so the message
        comes back; mailboxes already written are in the ledger and the retry skips them."""
        results = await asyncio.gather(*(self.writer.write(item, mailbox)
                                         for mailbox, _ in targets), return_exceptions=True)
        per_mailbox: dict[str, MailboxOutcome] = {}
        refusals: list[str] = []
        for (_, upn), result in zip(targets, results, strict=True):
            if isinstance(result, GraphError) and result.failure is Failure.REJECTED:
                per_mailbox[upn] = MailboxOutcome.REJECTED
                refusals.append(f"{upn}: HTTP {result.status} {result.code}")
            elif isinstance(result, BaseException):
                raise RetryLater(f"{type(result).__name__}: {result}") from result
            else:
                per_mailbox[upn] = result
        return per_mailbox, refusals

    def _preserve(self, blob: str, original: Attachment) -> None:
        """A withheld attachment into the WORM container, which refuses overwrites: already
        there (a retry or a replay) means done."""
        if self.preserved is None:
            raise RuntimeError("withheld attachments need the preserved container")
        with contextlib.suppress(ResourceExistsError):
            self.preserved.upload_blob(blob, original.data, overwrite=False,
                                       content_settings=ContentSettings(
                                           content_type=original.content_type))

    def _keep(self, blob: str, data: bytes) -> None:
        self.quarantine.upload_blob(blob, data, overwrite=True)

    def _download(self, blob: str) -> bytes:
        return self.items.get_blob_client(blob).download_blob().readall()


