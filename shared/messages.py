"""The items-queue message: a claim check pointing at the item's bytes in blob storage."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass

from shared.blob_names import check_blob_name, normal_member_name
from shared.tables import hashed_key

MAX_MESSAGE_BYTES = 48 * 1024  # Azure allows 64 KB after base64; stay well under it


@dataclass(frozen=True)
class ItemMessage:
    export: str  # export blob name in the exports container
    member: str  # member name inside the export ZIP
    blob: str  # item blob name in the items container
    size: int  # bytes of the EML
    version: int = 1
    trace: str = ""  # W3C traceparent of the item's trace, begun at split
    run: str = ""  # one split or replay; kept by retries, so an item knows its own writes
    attempt: int = 0  # deliveries that failed and were re-queued with a delay
    retry_until: float = 0.0  # epoch seconds: after the first failure, when retries stop

    def to_json(self) -> str:
        text = json.dumps(asdict(self), ensure_ascii=True, separators=(",", ":"))
        if len(text) > MAX_MESSAGE_BYTES:
            raise ValueError("item message over the queue's size budget")
        return text

    @property
    def owner(self) -> str:
        """Who writes the ledger rows of this item in this run (hashed: no names in storage
        beyond what the outcome rows already hold)."""
        return hashed_key(f"{self.export}\n{self.member}\n{self.run}")

    def delivery(self, dequeue_count: int) -> int:
        """Orders this item's deliveries within its run (re-queued attempts, then the queue's
        own redeliveries of each)."""
        return self.attempt * 1000 + min(max(dequeue_count, 1), 999)

    @classmethod
    def from_json(cls, text: str) -> ItemMessage:
        try:
            data = json.loads(text)
            return cls(export=str(data["export"]), member=str(data["member"]),
                       blob=check_blob_name(str(data["blob"])), size=int(data["size"]),
                       version=int(data.get("version", 1)), trace=str(data.get("trace", "")),
                       run=str(data.get("run", "")), attempt=int(data.get("attempt", 0)),
                       retry_until=float(data.get("retry_until", 0.0)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not an item message: {exc}") from exc


def item_blob_name(export: str, member: str) -> str:
    """Deterministic, so splitting an export again overwrites rather than adds; the member's
    name is normalised, so `./TG-1.eml` and `TG-1.eml` name one blob (and are duplicates)."""
    stem = export[:-4] if export.lower().endswith(".zip") else export
    return f"{stem}/{normal_member_name(member)}"


def new_run() -> str:
    return uuid.uuid4().hex[:16]
