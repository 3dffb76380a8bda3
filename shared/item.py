"""The item model: one captured Telegram event, the only contract between parsing and writing.

Everything the mailbox writer renders comes from here; nothing downstream looks at the EML.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ItemKind(StrEnum):
    MESSAGE = "message"
    DELETED = "deleted"
    CALL = "call"


class Direction(StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Participant:
    """A person on the item: display name, mobile number (E.164) and email, as captured."""

    name: str
    phone: str | None = None  # E.164, e.g. +972541234567, when the capture carries a number
    email: str | None = None  # lower-cased address, None for contacts without one
    # Why this entry must not decide whose mailbox gets the item (it is still shown as is).
    routing_conflict: str | None = None

    def label(self) -> str:
        parts = [self.name or "(no name)"]
        if self.phone:
            parts.append(self.phone)
        if self.email:
            parts.append(f"<{self.email}>")
        return " ".join(parts)


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    data: bytes = field(repr=False)
    content_id: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Chat:
    thread_id: str | None
    thread_name: str | None
    group_id: str | None = None
    group_name: str | None = None

    @property
    def is_group(self) -> bool:
        return self.group_id is not None or self.group_name is not None


@dataclass(frozen=True)
class CallRecord:
    call_id: str | None
    call_type: str | None  # Voice or Video
    direction: str | None  # relative to the archive initiator
    status: str | None  # Answered, Missed, Declined, ...
    start: datetime | None
    end: datetime | None
    duration_seconds: int | None


@dataclass(frozen=True)
class DeletedMessage:
    """A "DELETED For Me" event: the original text it quotes and when that was sent."""

    original_text: str
    original_sent: datetime | None
    original_archive_id: str | None


@dataclass(frozen=True)
class Defect:
    """What was wrong with a damaged EML that was imported anyway (DAMAGED_POLICY=best_effort):
    `code` is the reason code it would have been quarantined with."""

    code: str
    detail: str


@dataclass(frozen=True)
class Notice:
    """A visible marker on the mailbox item: `tag` goes in the subject, `text` in the body."""

    tag: str
    text: str


@dataclass(frozen=True)
class Item:
    archive_key: str
    kind: ItemKind
    captured_at: datetime  # aware, UTC
    sender: Participant
    recipients: tuple[Participant, ...]
    subject: str
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    chat: Chat
    direction: Direction
    archive_initiator: str | None  # E.164 of the employee whose phone captured the item
    internet_message_id: str | None
    telemessage_headers: tuple[tuple[str, str], ...]
    deleted: DeletedMessage | None = None
    call: CallRecord | None = None
    source_bytes: int = 0
    defects: tuple[Defect, ...] = ()
    notices: tuple[Notice, ...] = ()

    @property
    def participants(self) -> tuple[Participant, ...]:
        return (self.sender, *self.recipients)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (attachments by name, size and hash, not bytes)."""

        def person(p: Participant) -> dict[str, Any]:
            return {"name": p.name, "phone": p.phone, "email": p.email,
                    "routing_conflict": p.routing_conflict}

        def when(value: datetime | None) -> str | None:
            return value.isoformat().replace("+00:00", "Z") if value else None

        return {
            "archive_key": self.archive_key,
            "kind": self.kind.value,
            "captured_at": when(self.captured_at),
            "sender": person(self.sender),
            "recipients": [person(p) for p in self.recipients],
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "attachments": [
                {"name": a.name, "content_type": a.content_type, "size": a.size,
                 "sha256": a.sha256, "content_id": a.content_id}
                for a in self.attachments
            ],
            "chat": {"thread_id": self.chat.thread_id, "thread_name": self.chat.thread_name,
                     "group_id": self.chat.group_id, "group_name": self.chat.group_name,
                     "is_group": self.chat.is_group},
            "direction": self.direction.value,
            "archive_initiator": self.archive_initiator,
            "internet_message_id": self.internet_message_id,
            "telemessage_headers": [list(h) for h in self.telemessage_headers],
            "deleted": None if self.deleted is None else {
                "original_text": self.deleted.original_text,
                "original_sent": when(self.deleted.original_sent),
                "original_archive_id": self.deleted.original_archive_id},
            "call": None if self.call is None else {
                "call_id": self.call.call_id, "call_type": self.call.call_type,
                "direction": self.call.direction, "status": self.call.status,
                "start": when(self.call.start), "end": when(self.call.end),
                "duration_seconds": self.call.duration_seconds},
            "source_bytes": self.source_bytes,
            "defects": [{"code": d.code, "detail": d.detail} for d in self.defects],
            "notices": [{"tag": n.tag, "text": n.text} for n in self.notices],
        }
