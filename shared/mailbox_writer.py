"""Writes one item into one mailbox exactly once: ledger claim, folder, message, attachments.

A write whose result was not seen (timeout, reset, 5xx) is never simply repeated: Graph is
asked for the archive key first. A message that exists with attachments missing (a crash
between creating it and uploading them) is completed, not written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.graph import Failure, GraphError, GraphMailboxes
from shared.item import Attachment, Item
from shared.ledger import ClaimConflict, Ledger, LedgerEntry, LedgerState
from shared.outcomes import MailboxOutcome
from shared.render import body_html, render_message
from shared.throttle import backoff_seconds

SINGLE_POST_MAX = 3 * 1024 * 1024 - 1  # raw bytes; above this Graph wants an upload session
CREATE_BODY_BUDGET = 3_900_000  # bytes of JSON, under Graph's 4 MB request limit
UPLOAD_SESSION_MIN = 3 * 1024 * 1024
FOLDER_FAILURE_MEMORY = 5.0  # seconds a failed folder look-up/create answers for the mailbox


class RetryLater(Exception):
    """Not done and not failed: the queue message should come back later."""


@dataclass(frozen=True)
class AttachmentPlan:
    inline: list[Attachment]
    separate: list[Attachment]


def plan_attachments(item: Item, body_bytes: int) -> AttachmentPlan:
    """Inline what fits in the create request; the rest goes one by one afterwards."""
    budget = CREATE_BODY_BUDGET - body_bytes
    inline: list[Attachment] = []
    separate: list[Attachment] = []
    for attachment in item.attachments:
        cost = _b64_len(attachment.size) + 512
        if attachment.size <= SINGLE_POST_MAX and cost <= budget:
            inline.append(attachment)
            budget -= cost
        else:
            separate.append(attachment)
    return AttachmentPlan(inline, separate)


def _b64_len(size: int) -> int:
    return (size + 2) // 3 * 4


class FolderCache:
    """The archive folder's id per mailbox, created once; a concurrent create is handled, and
    a create whose outcome is unknown is looked up and retried in place. A mailbox Graph says
    is not usable is remembered for `no_mailbox_seconds` (the directory cache's time-to-live),
    not asked again for every item."""

    def __init__(self, graph: GraphMailboxes, name: str, no_mailbox_seconds: float = 3600.0,
                 attempts: int = 5) -> None:
        self._graph = graph
        self._name = name
        self._no_mailbox_seconds = no_mailbox_seconds
        self._attempts = attempts
        self._ids: dict[str, str] = {}
        self._no_mailbox: dict[str, tuple[float, GraphError]] = {}
        self._failed: dict[str, tuple[float, GraphError]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.created: set[str] = set()  # mailboxes whose folder this cache created

    async def folder_id(self, mailbox: str) -> str:
        cached = self._ids.get(mailbox)
        if cached:
            return cached
        self._raise_if_no_mailbox(mailbox)
        async with self._locks.setdefault(mailbox, asyncio.Lock()):
            if mailbox in self._ids:
                return self._ids[mailbox]
            self._raise_if_no_mailbox(mailbox)
            failed = self._failed.get(mailbox)
            if failed is not None and failed[0] > time.monotonic():
                raise failed[1]  # the writers that queued behind a failure do not repeat it
            try:
                folder = await self._find_or_create(mailbox)
            except GraphError as error:
                if error.failure is Failure.NO_MAILBOX:
                    self._no_mailbox[mailbox] = (time.monotonic() + self._no_mailbox_seconds,
                                                 error)
                else:
                    self._failed[mailbox] = (time.monotonic() + FOLDER_FAILURE_MEMORY, error)
                raise
            self._ids[mailbox] = folder
            return folder

    def _raise_if_no_mailbox(self, mailbox: str) -> None:
        refused = self._no_mailbox.get(mailbox)
        if refused is not None and refused[0] > time.monotonic():
            raise refused[1]

    async def _find_or_create(self, mailbox: str) -> str:
        for attempt in range(self._attempts):
            folder = await self._graph.find_folder(mailbox, self._name)
            if folder is not None:
                return folder
            folder = await self._graph.create_folder(mailbox, self._name)
            if folder is not None:
                self.created.add(mailbox)
                return folder
            # ErrorFolderExists (another worker's create) or an unknown outcome: look again,
            # and create again if it is still not there.
            if attempt + 1 < self._attempts:
                await asyncio.sleep(backoff_seconds(attempt))
        raise GraphError(Failure.TRANSIENT, None, "FolderMissing",
                         "folder neither found nor created")


class MailboxWriter:
    def __init__(self, graph: GraphMailboxes, folders: FolderCache, ledger: Ledger,
                 run_io: Callable[..., Awaitable[Any]], max_attempts: int = 5,
                 claim_wait_seconds: float = 20.0) -> None:
        self._graph = graph
        self._folders = folders
        self._ledger = ledger
        self._run_io = run_io  # runs a blocking storage call off the event loop
        self._max_attempts = max_attempts
        self._claim_wait_seconds = claim_wait_seconds
        self._coverage: dict[str, bool] = {}

    async def write(self, item: Item, mailbox: str, owner: str = "", delivery: int = 0
                    ) -> MailboxOutcome:
        """`owner` names the item and run (see shared.messages): a mailbox this owner already
        wrote, on any delivery, is `imported`; one another item or run wrote is `duplicate`.
        `delivery` orders the owner's deliveries: a later one takes an earlier one's claim."""
        key = item.archive_key
        try:
            folder = await self._folders.folder_id(mailbox)  # cached after the first item
        except GraphError as error:
            if error.failure is Failure.NO_MAILBOX:
                return MailboxOutcome.NO_MAILBOX
            raise
        covered = await self._covered(mailbox)
        claimed = await self._claim(mailbox, key, owner, delivery)
        if isinstance(claimed, MailboxOutcome):
            return claimed
        held = claimed
        try:
            message_id = held.message_id
            result = MailboxOutcome.IMPORTED
            # An earlier attempt may have written it; without the mailbox's coverage row the
            # ledger itself may have been lost (re-created storage, a restore).
            if message_id is None and (held.attempts > 1 or not covered):
                message_id = await self._graph.find_message(mailbox, folder, key)
                if message_id is not None and held.attempts == 1:
                    result = MailboxOutcome.DUPLICATE  # not in the ledger: written before it
            if message_id is None:
                body = body_html(item)
                plan = plan_attachments(item, len(body.encode()) + 8192)
                message_id = await self._create(item, mailbox, folder,
                                                render_message(item, plan.inline, body))
                missing = plan.separate
                if missing:  # remember the message before the slower attachment uploads
                    held = await self._run_io(self._ledger.record, mailbox, key,
                                              LedgerState.CREATED, message_id, held)
            else:
                existing = await self._graph.list_attachments(mailbox, message_id)
                missing = _missing(item.attachments, Counter(a.name for a in existing))
            for attachment in missing:
                await self._attach(mailbox, message_id, attachment)
            await self._run_io(self._ledger.record, mailbox, key, LedgerState.IMPORTED,
                               message_id, held)
        except Exception:
            # Give the claim up so the item's next attempt need not wait out the lease.
            with contextlib.suppress(Exception):
                await self._run_io(self._ledger.release, mailbox, key, held)
            raise
        return result

    async def _covered(self, mailbox: str) -> bool:
        """Whether the ledger knows everything in this mailbox's archive folder."""
        known = self._coverage.get(mailbox)
        if known is not None:
            return known
        if mailbox in self._folders.created:
            await self._run_io(self._ledger.mark_covered, mailbox, "folder created")
            covered = True
        else:
            covered = await self._run_io(self._ledger.covered, mailbox)
        self._coverage[mailbox] = covered
        return covered

    async def _claim(self, mailbox: str, key: str, owner: str, delivery: int
                     ) -> LedgerEntry | MailboxOutcome:
        """The right to write, or the outcome when the item is already in the mailbox (also
        when another worker finishes it meanwhile: the same message captured from two phones
        often arrives in one batch). Most items are new, so creating the claim is tried first:
        one storage round trip on the common path."""
        deadline = time.monotonic() + self._claim_wait_seconds
        entry: LedgerEntry | None = None
        while True:
            try:
                claimed: LedgerEntry = await self._run_io(self._ledger.claim, mailbox, key,
                                                          entry, owner, delivery)
                return claimed
            except ClaimConflict as exc:
                conflict = exc
            entry = await self._run_io(self._ledger.get, mailbox, key)
            if entry is not None and entry.state is LedgerState.IMPORTED:
                mine = bool(owner) and entry.owner == owner
                return MailboxOutcome.IMPORTED if mine else MailboxOutcome.DUPLICATE
            if entry is not None and entry.state is LedgerState.WRITING \
                    and entry.claimed_until > time.time() \
                    and not entry.superseded_by(owner, delivery):
                if time.monotonic() >= deadline:
                    raise RetryLater(f"item is being written by another worker: {conflict}")
                await asyncio.sleep(0.5)

    async def _create(self, item: Item, mailbox: str, folder: str,
                      message: dict[str, Any]) -> str:
        for attempt in range(self._max_attempts):
            try:
                return await self._graph.create_message(mailbox, folder, message)
            except GraphError as error:
                if error.failure is not Failure.UNKNOWN or attempt + 1 >= self._max_attempts:
                    raise
            found = await self._graph.find_message(mailbox, folder, item.archive_key)
            if found:
                return found
            await asyncio.sleep(backoff_seconds(attempt))
        raise AssertionError("unreachable")

    async def _attach(self, mailbox: str, message_id: str, attachment: Attachment) -> None:
        for attempt in range(self._max_attempts):
            try:
                if attachment.size >= UPLOAD_SESSION_MIN:
                    await self._graph.upload_attachment(mailbox, message_id, attachment.name,
                                                        attachment.content_type, attachment.data)
                else:
                    await self._graph.add_attachment(mailbox, message_id, attachment.name,
                                                     attachment.content_type, attachment.data)
                return
            except GraphError as error:
                if error.failure is not Failure.UNKNOWN or attempt + 1 >= self._max_attempts:
                    raise
            existing = await self._graph.list_attachments(mailbox, message_id)
            if attachment.name in {a.name for a in existing}:
                return
            await asyncio.sleep(backoff_seconds(attempt))



def _missing(attachments: tuple[Attachment, ...], present: Counter[str]) -> list[Attachment]:
    """By name: Graph's attachment `size` counts store overhead, not the content's bytes."""
    missing: list[Attachment] = []
    for attachment in attachments:
        key = attachment.name
        if present[key] > 0:
            present[key] -= 1
        else:
            missing.append(attachment)
    return missing
