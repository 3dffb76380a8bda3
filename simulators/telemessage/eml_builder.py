"""EML files exactly as TeleMessage writes them: header set and order, participants, MIME layout.

This module is the contract with the connector's parser. Every EML is produced by Python's
`email` package with `email.policy.SMTP` (CRLF line endings, RFC 2231 for non-ASCII attachment
names) and is byte-for-byte deterministic. Non-ASCII header text is RFC 2047-encoded with
`email.header.Header` / `email.utils.formataddr` and folded here, because the SMTP policy's own
folder splits encoded words lossily (CPython re-parses them with spaces added or dropped): a
participant's display part `First Last Mobile` is always ONE encoded word, and address lists
fold only between a display part and its `<address>` or between participants.
"""

from __future__ import annotations

import base64
import hashlib
import random
import textwrap
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.message import MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from html import escape
from typing import Literal

from simulators.telemessage.org import Group, Person

Kind = Literal["text", "media", "deleted", "call"]
CallOutcome = Literal["Answered", "Missed", "Declined"]

BYOK_KEY_ID = "contoso-byok/telemessage-archive/2026-01"
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
# content type -> (leading magic bytes, trailing bytes) of the pseudo-random attachment bodies
_MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
                   b"\xff\xd9"),
    "application/pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", b"\n%%EOF\n"),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document":
        (b"PK\x03\x04\x14\x00\x06\x00", b""),
    "audio/ogg": (b"OggS\x00\x02", b""),
    "video/mp4": (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", b""),
}


@dataclass(frozen=True)
class Attachment:
    """An attachment whose bytes are generated on demand from `seed` (exactly `size` bytes)."""

    filename: str
    content_type: str
    size: int
    seed: int

    def data(self) -> bytes:
        head, tail = _MAGIC[self.content_type]
        filler = max(0, self.size - len(head) - len(tail))
        return head + random.Random(self.seed).randbytes(filler) + tail


@dataclass(frozen=True)
class Call:
    """A voice or video call; the item's sender is the caller, its date the call start."""

    call_id: str
    video: bool
    outcome: CallOutcome
    ended_at: datetime
    duration: int  # seconds of conversation, 0 unless answered


@dataclass(frozen=True)
class SimItem:
    """One captured event, as the phone of `initiator` (an employee participant) archived it.

    `text` is the message text or media caption; deleted events and calls derive their body
    from `original` and `call`. `captured_at` is an aware UTC datetime with whole seconds.
    """

    kind: Kind
    archive_id: str
    captured_at: datetime
    sender: Person
    recipients: tuple[Person, ...]
    initiator: Person
    thread_id: str
    sid: str
    group: Group | None = None
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    html: bool = False
    call: Call | None = None
    original: SimItem | None = None
    encrypted: bool = False

    @property
    def message_id(self) -> str:
        return f"<{self.archive_id}@telemessage.com>"

    @property
    def thread_name(self) -> str:
        """The chat title: the group name, or the 1:1 counterpart of the initiator."""
        if self.group is not None:
            return self.group.name
        other = next(p for p in (self.sender, *self.recipients) if p != self.initiator)
        return other.name

    @property
    def message_type(self) -> str:
        return {"deleted": "Event", "call": "Call"}.get(self.kind, "Message")

    @property
    def status(self) -> str:
        if self.kind == "deleted":
            return "Deleted"
        if self.call is not None:
            return self.call.outcome
        return "Sent" if self.sender == self.initiator else "Received"

    @property
    def _callee(self) -> str:
        return self.group.name if self.group is not None else self.recipients[0].name

    @property
    def subject(self) -> str:
        if self.original is not None:
            return f"DELETED For Me - {self.original.subject}"
        if self.call is not None:
            medium = "video" if self.call.video else "voice"
            return f"Telegram {medium} call: {self.sender.name} to {self._callee}"
        if self.group is not None:
            return f"Telegram: {self.sender.name} in {self.group.name}"
        return f"Telegram: {self.sender.name} to {self.recipients[0].name}"

    @property
    def body(self) -> str:
        """The text part (LF line endings, no trailing newline); its SHA-256 is the integrity."""
        if self.original is not None:
            quoted = "\n".join(f"> {line}" if line else ">"
                               for line in self.original.body.split("\n"))
            return (f"This message was deleted for me by {self.sender.display}.\n"
                    f"Original message sent {format_datetime(self.original.captured_at)}:\n"
                    f"{quoted}")
        if self.call is not None:
            medium = "Video" if self.call.video else "Voice"
            minutes, seconds = divmod(self.call.duration, 60)
            hours, minutes = divmod(minutes, 60)
            return (f"{medium} call from {self.sender.name} to {self._callee}: "
                    f"{self.call.outcome}, duration {hours:02d}:{minutes:02d}:{seconds:02d}.")
        return self.text


_MAX_LINE = 78


def _address_list(name: str, people: tuple[Person, ...]) -> str:
    """`First Last Mobile <email>` (`<>` without email), comma-separated, folded at spaces."""
    tokens: list[str] = []
    for n, person in enumerate(people):
        pair = formataddr((person.display, person.email or ""), charset="utf-8")
        display, address = pair.rsplit(" ", 1)  # "<>" when there is no email address
        tokens += [display, address + ("," if n < len(people) - 1 else "")]
    lines = [tokens[0]]
    width = len(name) + 2
    for token in tokens[1:]:
        if width + len(lines[-1]) + 1 + len(token) > _MAX_LINE:
            lines.append(token)
            width = 1
        else:
            lines[-1] += f" {token}"
    return "\n ".join(lines)


def _set_text(message: MIMEPart, name: str, value: str) -> None:
    """An unstructured header; non-ASCII text as whole-value RFC 2047 encoded words."""
    if value.isascii():
        message[name] = value
    else:
        message.set_raw(name, Header(value, "utf-8", _MAX_LINE, name).encode(linesep="\n"))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def thread_index(item: SimItem) -> str:
    """Outlook-style 22-byte Thread-Index: 6 bytes of FILETIME, then a GUID of the thread."""
    filetime = (item.captured_at - _FILETIME_EPOCH) // timedelta(microseconds=1) * 10
    guid = uuid.uuid5(uuid.NAMESPACE_URL, f"telemessage:{item.thread_id}").bytes
    return base64.b64encode((filetime >> 16).to_bytes(6, "big") + guid).decode("ascii")


def _telemessage_headers(item: SimItem) -> list[tuple[str, str]]:
    headers = [
        ("X-TELEMESSAGE-ArchiveMessageID", item.archive_id),
        ("X-TELEMESSAGE-ArchiveInitiator", item.initiator.mobile),
        ("X-TELEMESSAGE-ArchiveSource", "Telegram Archiver"),
        ("X-TELEMESSAGE-Network", "Telegram"),
        ("X-TELEMESSAGE-MessageType", item.message_type),
        ("X-TELEMESSAGE-THREAD_ID", item.thread_id),
        ("X-TELEMESSAGE-ThreadName", item.thread_name),
        ("X-TELEMESSAGE-SID", item.sid),
    ]
    if item.group is not None:
        headers += [("X-TELEMESSAGE-GroupID", item.group.group_id),
                    ("X-TELEMESSAGE-GROUP_NAME", item.group.name)]
    headers += [
        ("X-TELEMESSAGE-Status", item.status),
        ("X-TELEMESSAGE-OriginalMesageIntegrity",
         hashlib.sha256(item.body.encode("utf-8")).hexdigest()),
    ]
    if item.call is not None:
        outgoing = item.sender == item.initiator
        headers += [
            ("X-TELEMESSAGE-CallID", item.call.call_id),
            ("X-TELEMESSAGE-CallType", "Video" if item.call.video else "Voice"),
            ("X-TELEMESSAGE-CallDirection", "Outgoing" if outgoing else "Incoming"),
            ("X-TELEMESSAGE-CallStart", _iso(item.captured_at)),
            ("X-TELEMESSAGE-CallEnd", _iso(item.call.ended_at)),
            ("X-TELEMESSAGE-CallDuration", str(item.call.duration)),
        ]
    return headers


def _encrypt(message: MIMEPart, item: SimItem) -> None:
    """BYOK: a wrapped data key, and every leaf part replaced by base64 of (fake) AES output."""
    rng = random.Random(f"byok:{item.archive_id}:{item.sid}")
    for part in message.walk():
        if part.is_multipart():
            continue
        plain = part.get_payload(decode=True)
        cipher = rng.randbytes(16 + (len(plain) // 16 + 1) * 16)  # IV + CBC-padded blocks
        part.set_payload(base64.encodebytes(cipher).decode("ascii"))
        part.replace_header("Content-Transfer-Encoding", "base64")


def build_eml(item: SimItem) -> bytes:
    """Serialize `item` in TeleMessage's EML format (see the module docstring)."""
    message = MIMEPart(policy=SMTP)  # not EmailMessage: parts must not repeat MIME-Version
    message["Date"] = item.captured_at
    message.set_raw("From", _address_list("From", (item.sender,)))
    message.set_raw("To", _address_list("To", item.recipients))
    _set_text(message, "Subject", item.subject)
    message["Message-ID"] = item.message_id
    message["Thread-Index"] = thread_index(item)
    for name, value in _telemessage_headers(item):
        _set_text(message, name, value)
    if item.encrypted:
        datakey = base64.b64encode(random.Random(f"datakey:{item.archive_id}").randbytes(256))
        # Folded with spaces like DKIM's b= tag: strip whitespace before decoding.
        message["X-TELEMESSAGE-ENC-DATAKEY"] = " ".join(textwrap.wrap(datakey.decode(), 64))
        message["X-TELEMESSAGE-ENC-KEY-ID"] = BYOK_KEY_ID
    message["MIME-Version"] = "1.0"
    message.set_content(item.body, charset="utf-8")
    if item.html:
        html = escape(item.body).replace("\n", "<br>\n")
        message.add_alternative(f"<html><body><p>{html}</p></body></html>", subtype="html",
                                charset="utf-8")
    for attachment in item.attachments:  # the first attachment turns it into multipart/mixed
        maintype, subtype = attachment.content_type.split("/")
        message.add_attachment(attachment.data(), maintype, subtype,
                               filename=attachment.filename)
    tag = hashlib.sha256(f"{item.archive_id}:{item.sid}".encode()).hexdigest()[:16]
    for n, part in enumerate(p for p in message.walk() if p.is_multipart()):
        part.set_boundary(f"----=_Part_{n}_{tag}")
    if item.encrypted:
        _encrypt(message, item)
    return message.as_bytes()
