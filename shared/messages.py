"""The items-queue message: a claim check pointing at the item's bytes in blob storage."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from shared.blob_names import check_blob_name, normal_member_name

MAX_MESSAGE_BYTES = 48 * 1024  # Azure allows 64 KB after base64; stay well under it


@dataclass(frozen=True)
class ItemMessage:
    export: str  # export blob name in the exports container
    member: str  # member name inside the export ZIP
    blob: str  # item blob name in the items container
    size: int  # bytes of the EML
    version: int = 1
    trace: str = ""  # W3C traceparent of the item's trace, begun at split

    def to_json(self) -> str:
        text = json.dumps(asdict(self), ensure_ascii=True, separators=(",", ":"))
        if len(text) > MAX_MESSAGE_BYTES:
            raise ValueError("item message over the queue's size budget")
        return text

    @classmethod
    def from_json(cls, text: str) -> ItemMessage:
        try:
            data = json.loads(text)
            return cls(export=str(data["export"]), member=str(data["member"]),
                       blob=check_blob_name(str(data["blob"])), size=int(data["size"]),
                       version=int(data.get("version", 1)), trace=str(data.get("trace", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not an item message: {exc}") from exc


def item_blob_name(export: str, member: str) -> str:
    """Deterministic, so splitting an export again overwrites rather than adds; the member's
    name is normalised, so `./TG-1.eml` and `TG-1.eml` name one blob (and are duplicates)."""
    stem = export[:-4] if export.lower().endswith(".zip") else export
    return f"{stem}/{normal_member_name(member)}"
