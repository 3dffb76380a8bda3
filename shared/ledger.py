"""The exactly-once ledger: one entity per (mailbox, archive key) in Table storage.

States: `writing` (claimed by a worker until `claimed_until`; a write may or may not have
reached Graph), `created` (the message exists, attachments may be missing), `imported`.
Claims use the entity's ETag, so two workers never write the same item to the same mailbox at
once; an expired claim means its outcome is unknown and Graph is asked before writing again.
Each row names its `owner` (the item and run that claimed it): a failed write releases its
claim, the owner's next delivery may take over a claim of its own at once, and a report can
tell an item's own earlier write (`imported`) from another item's (`duplicate`).

One more row per mailbox, `mailbox-covered`, says the ledger knows every item in the
mailbox's archive folder (it created the folder, or a rebuild read it). Without it the ledger
may have been lost, so the writer asks Graph before each new write (see ledger_rebuild).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.storage_retry import retry_connection
from shared.tables import hashed_key

COVERED_ROW = "mailbox-covered"  # never a hashed key (those are 64 hex digits)
REBUILD_OWNER = "ledger-rebuild"


class LedgerState(StrEnum):
    WRITING = "writing"
    CREATED = "created"
    IMPORTED = "imported"


@dataclass(frozen=True)
class LedgerEntry:
    state: LedgerState
    message_id: str | None
    claimed_until: float
    attempts: int
    etag: str | None
    owner: str = ""
    delivery: int = 0  # which delivery of the owner's item holds the claim


    def superseded_by(self, owner: str, delivery: int) -> bool:
        """A later delivery of the same item and run: this claim's delivery has ended."""
        return bool(owner) and self.owner == owner and delivery > self.delivery


class ClaimConflict(Exception):
    """Another worker holds a fresh claim on this (mailbox, item)."""


class Ledger:
    def __init__(self, table: TableClient, lease_seconds: float = 300.0) -> None:
        self._table = table
        self._lease_seconds = lease_seconds

    def get(self, mailbox: str, archive_key: str) -> LedgerEntry | None:
        try:
            entity = retry_connection(self._table.get_entity, mailbox, hashed_key(archive_key))
        except ResourceNotFoundError:
            return None
        return LedgerEntry(LedgerState(str(entity["state"])),
                           str(entity.get("message_id") or "") or None,
                           float(entity.get("claimed_until", 0)),  # type: ignore[arg-type]
                           int(entity.get("attempts", 0)),  # type: ignore[call-overload]
                           entity.metadata.get("etag"), str(entity.get("owner") or ""),
                           int(entity.get("delivery", 0)))  # type: ignore[call-overload]

    def claim(self, mailbox: str, archive_key: str, current: LedgerEntry | None,
              owner: str = "", delivery: int = 0) -> LedgerEntry:
        """Takes the right to write. Raises ClaimConflict if a fresh claim is held, unless it
        is the same owner's from an earlier delivery (which has ended: taken over at once)."""
        now = time.time()
        if current is not None and current.state is LedgerState.WRITING \
                and current.claimed_until > now and not current.superseded_by(owner, delivery):
            raise ClaimConflict(f"claimed for {current.claimed_until - now:.0f}s more")
        claimed_until = now + self._lease_seconds
        entity: dict[str, Any] = {
            "PartitionKey": mailbox, "RowKey": hashed_key(archive_key),
            "archive_key": archive_key,
            "state": (current.state if current and current.state is LedgerState.CREATED
                      else LedgerState.WRITING).value,
            "message_id": current.message_id if current and current.message_id else "",
            "claimed_until": claimed_until,
            "attempts": (current.attempts if current else 0) + 1,
            "owner": owner, "delivery": delivery,
        }
        try:
            etag = self._write(entity, current.etag if current else None)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise ClaimConflict("another worker claimed it first") from exc
        return LedgerEntry(LedgerState(entity["state"]), entity["message_id"] or None,
                           claimed_until, entity["attempts"], etag, owner, delivery)

    def record(self, mailbox: str, archive_key: str, state: LedgerState, message_id: str,
               held: LedgerEntry) -> LedgerEntry:
        claimed_until = held.claimed_until if state is not LedgerState.IMPORTED else 0.0
        entity: dict[str, Any] = {"PartitionKey": mailbox, "RowKey": hashed_key(archive_key),
                  "archive_key": archive_key, "state": state.value, "message_id": message_id,
                  "claimed_until": claimed_until, "attempts": held.attempts,
                  "owner": held.owner, "delivery": held.delivery, "recorded_at": time.time()}
        try:
            etag = self._write(entity, held.etag)
        except ResourceModifiedError as exc:
            raise ClaimConflict("claim lost while writing") from exc
        return LedgerEntry(state, message_id, claimed_until, held.attempts, etag, held.owner,
                           held.delivery)

    def release(self, mailbox: str, archive_key: str, held: LedgerEntry) -> None:
        """Gives a claim up after a failed write, so the next attempt need not wait for the
        lease. The state stays, and with it the attempt count that makes the next writer ask
        Graph whether this one's write happened after all."""
        entity: dict[str, Any] = {"PartitionKey": mailbox, "RowKey": hashed_key(archive_key),
                  "archive_key": archive_key, "state": held.state.value,
                  "message_id": held.message_id or "", "claimed_until": 0.0,
                  "attempts": held.attempts, "owner": held.owner, "delivery": held.delivery}
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._write(entity, held.etag)  # else someone else's now: nothing of ours to give

    def restore(self, mailbox: str, archive_key: str, message_id: str) -> bool:
        """Records a message found in the mailbox (ledger rebuild); False when a row exists
        (a worker's row is left alone: it knows more)."""
        entity: dict[str, Any] = {"PartitionKey": mailbox, "RowKey": hashed_key(archive_key),
                  "archive_key": archive_key, "state": LedgerState.IMPORTED.value,
                  "message_id": message_id, "claimed_until": 0.0, "attempts": 1,
                  "owner": REBUILD_OWNER, "recorded_at": time.time()}
        try:
            self._write(entity, None)
        except ResourceExistsError:
            return False
        return True

    def covered(self, mailbox: str) -> bool:
        try:
            retry_connection(self._table.get_entity, mailbox, COVERED_ROW)
        except ResourceNotFoundError:
            return False
        return True

    def mark_covered(self, mailbox: str, how: str) -> None:
        retry_connection(self._table.upsert_entity, {
            "PartitionKey": mailbox, "RowKey": COVERED_ROW, "how": how, "at": time.time()},
            mode=UpdateMode.REPLACE)

    def _write(self, entity: dict[str, Any], etag: str | None) -> str | None:
        """Inserts (no etag) or replaces if unchanged. A write retried after a broken
        connection may meet its own first success (409 or 412): the row's token tells."""
        entity = entity | {"token": uuid.uuid4().hex}
        try:
            if etag is None:
                meta = retry_connection(self._table.create_entity, entity)
            else:
                meta = retry_connection(self._table.update_entity, entity,
                                        mode=UpdateMode.REPLACE, etag=etag,
                                        match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError):
            try:
                stored = retry_connection(self._table.get_entity, entity["PartitionKey"],
                                          entity["RowKey"])
            except ResourceNotFoundError:
                raise ResourceModifiedError("row vanished") from None
            if stored.get("token") != entity["token"]:
                raise
            return str(stored.metadata.get("etag"))
        return meta.get("etag")
