"""One recorded outcome per item of every export (Table storage), the basis of the reports.

Split writes `queued` (or `quarantined` for a member it could not extract) for every member;
import replaces it with the final outcome. Keys are deterministic, so a replay updates the
same row instead of adding one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.data.tables import TableClient, UpdateMode

from shared.tables import hashed_key, safe_key
from shared.throttle import backoff_seconds


class Outcome(StrEnum):
    QUEUED = "queued"  # split, not yet imported (pending)
    IMPORTED = "imported"
    STUBBED = "stubbed"  # imported with attachments over the size limit replaced by notes
    IMPORTED_DAMAGED = "imported_damaged"  # damaged EML imported with what could be read
    DUPLICATE = "duplicate"  # already in every target mailbox
    UNMAPPED = "unmapped"
    OVERSIZE = "oversize"
    QUARANTINED = "quarantined"
    FAILED = "failed"  # gave up after retries; the message is in the poison queue


class MailboxOutcome(StrEnum):
    IMPORTED = "imported"
    STUBBED = "stubbed"  # imported with attachments over the size limit replaced by notes
    IMPORTED_DAMAGED = "imported_damaged"  # damaged EML imported with what could be read
    DUPLICATE = "duplicate"
    NO_MAILBOX = "no_mailbox"  # the user exists but has no usable mailbox
    REJECTED = "rejected"  # Graph refused the item itself (a permanent 400-class answer)


@dataclass
class ItemOutcome:
    export: str
    member: str
    outcome: Outcome
    reason: str = ""
    detail: str = ""
    size: int = 0
    archive_key: str = ""
    kind: str = ""
    mailboxes: dict[str, str] = field(default_factory=dict)  # mailbox UPN -> MailboxOutcome
    unmapped: list[str] = field(default_factory=list)  # participant numbers/addresses
    updated: float = 0.0
    captured: float = 0.0  # when the item was captured (epoch seconds; 0 before parsing)

    @staticmethod
    def combine(per_mailbox: dict[str, MailboxOutcome]) -> Outcome:
        values = set(per_mailbox.values())
        if MailboxOutcome.REJECTED in values:  # an admin must look, even if others got it
            return Outcome.QUARANTINED
        if MailboxOutcome.IMPORTED in values:
            return Outcome.IMPORTED
        if MailboxOutcome.DUPLICATE in values:
            return Outcome.DUPLICATE
        return Outcome.UNMAPPED


class OutcomeStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def record(self, outcome: ItemOutcome) -> None:
        self._table.upsert_entity(_entity(outcome), mode=UpdateMode.REPLACE)

    def record_many(self, outcomes: Iterable[ItemOutcome]) -> None:
        """Batched: one Table transaction per 100 rows of the same export."""
        by_partition: dict[str, list[dict[str, Any]]] = {}
        for outcome in outcomes:
            entity = _entity(outcome)
            by_partition.setdefault(entity["PartitionKey"], []).append(entity)
        for entities in by_partition.values():
            unique = list({e["RowKey"]: e for e in entities}.values())
            for start in range(0, len(unique), 100):
                self._submit([("upsert", e, {"mode": UpdateMode.REPLACE})
                              for e in unique[start: start + 100]])

    def _submit(self, operations: list[Any], attempts: int = 4) -> None:
        """The SDK does not retry a `$batch` whose connection broke; upserts are idempotent,
        so this does (a reset once ended a 17-minute split of a 1 GB export)."""
        for attempt in range(1, attempts + 1):
            try:
                self._table.submit_transaction(operations)
                return
            except (ServiceRequestError, ServiceResponseError):
                if attempt == attempts:
                    raise
                time.sleep(backoff_seconds(attempt, base=0.5, cap=5.0))

    def for_export(self, export: str) -> list[ItemOutcome]:
        query = self._table.query_entities("PartitionKey eq @pk",
                                           parameters={"pk": safe_key(export)})
        return [_from_entity(e) for e in query]


def _entity(outcome: ItemOutcome) -> dict[str, Any]:
    return {
        "PartitionKey": safe_key(outcome.export),
        "RowKey": hashed_key(outcome.member),
        "export": outcome.export,
        "member": outcome.member,
        "outcome": outcome.outcome.value,
        "reason": outcome.reason,
        "detail": outcome.detail[:4000],
        "size": outcome.size,
        "archive_key": outcome.archive_key,
        "kind": outcome.kind,
        "mailboxes": json.dumps(outcome.mailboxes, sort_keys=True),
        "unmapped": json.dumps(outcome.unmapped[:200]),
        "updated": time.time(),
        "captured": outcome.captured,
    }


def _from_entity(entity: dict[str, Any]) -> ItemOutcome:
    return ItemOutcome(
        export=entity["export"], member=entity["member"], outcome=Outcome(entity["outcome"]),
        reason=entity.get("reason", ""), detail=entity.get("detail", ""),
        size=int(entity.get("size", 0)), archive_key=entity.get("archive_key", ""),
        kind=entity.get("kind", ""), mailboxes=json.loads(entity.get("mailboxes") or "{}"),
        unmapped=json.loads(entity.get("unmapped") or "[]"),
        updated=float(entity.get("updated", 0)), captured=float(entity.get("captured", 0)))
