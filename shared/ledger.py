"""The exactly-once ledger: one entity per (mailbox, archive key) in Table storage.

States: `writing` (claimed by a worker until `claimed_until`; a write may or may not have
reached Graph), `created` (the message exists, attachments may be missing), `imported`.
Claims use the entity's ETag, so two workers never write the same item to the same mailbox at
once; an expired claim means its outcome is unknown and Graph is asked before writing again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.tables import hashed_key


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


class ClaimConflict(Exception):
    """Another worker holds a fresh claim on this (mailbox, item)."""


class Ledger:
    def __init__(self, table: TableClient, lease_seconds: float = 300.0) -> None:
        self._table = table
        self._lease_seconds = lease_seconds

    def get(self, mailbox: str, archive_key: str) -> LedgerEntry | None:
        try:
            entity = self._table.get_entity(mailbox, hashed_key(archive_key))
        except ResourceNotFoundError:
            return None
        return LedgerEntry(LedgerState(str(entity["state"])),
                           str(entity.get("message_id") or "") or None,
                           float(entity.get("claimed_until", 0)),  # type: ignore[arg-type]
                           int(entity.get("attempts", 0)),  # type: ignore[call-overload]
                           entity.metadata.get("etag"))

    def claim(self, mailbox: str, archive_key: str, current: LedgerEntry | None) -> LedgerEntry:
        """Takes the right to write. Raises ClaimConflict if a fresh claim is held elsewhere."""
        now = time.time()
        if current is not None and current.state is LedgerState.WRITING \
                and current.claimed_until > now:
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
        }
        try:
            if current is None:
                meta = self._table.create_entity(entity)
            else:
                meta = self._table.update_entity(entity, mode=UpdateMode.REPLACE,
                                                 etag=current.etag,
                                                 match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise ClaimConflict("another worker claimed it first") from exc
        return LedgerEntry(LedgerState(entity["state"]), entity["message_id"] or None,
                           claimed_until, entity["attempts"], meta.get("etag"))

    def record(self, mailbox: str, archive_key: str, state: LedgerState, message_id: str,
               held: LedgerEntry) -> LedgerEntry:
        claimed_until = held.claimed_until if state is not LedgerState.IMPORTED else 0.0
        entity: dict[str, Any] = {"PartitionKey": mailbox, "RowKey": hashed_key(archive_key),
                  "archive_key": archive_key, "state": state.value, "message_id": message_id,
                  "claimed_until": claimed_until, "attempts": held.attempts,
                  "recorded_at": time.time()}
        try:
            meta = self._table.update_entity(entity, mode=UpdateMode.REPLACE, etag=held.etag,
                                             match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError as exc:
            raise ClaimConflict("claim lost while writing") from exc
        return LedgerEntry(state, message_id, claimed_until, held.attempts,
                           meta.get("etag"))
