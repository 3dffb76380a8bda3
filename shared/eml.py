"""TeleMessage EML to Item. Every input either becomes an Item or raises InvalidItem with a reason.

The export is Smarsh's "exported EML format": participants as `First Last Mobile <email>`,
the message text in the first MIME part, attachments in the later ones, and X-TELEMESSAGE-*
headers carrying ids, chat and call data (REFERENCE.md section 2).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email import errors as email_errors
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from shared.item import (
    Attachment,
    CallRecord,
    Chat,
    Defect,
    DeletedMessage,
    Direction,
    Item,
    ItemKind,
    Participant,
)
from shared.phone import to_e164

MAX_HEADER_BLOCK_BYTES = 256 * 1024
MAX_HEADER_FIELD_BYTES = 32 * 1024
TM_PREFIX = "x-telemessage-"
DELETED_ID_PREFIX = "DELETE_FOR_ME-"
DELETED_SUBJECT_PREFIX = "DELETED For Me - "

# Defects that mean the body we would archive is not the body that was captured.
# (A part that only claims to be multipart is kept: its body is read as text.)
_TRUNCATION_DEFECTS = (email_errors.CloseBoundaryNotFoundDefect,)


class InvalidItem(ValueError):
    """The EML cannot be archived faithfully; `reason` is a stable code, `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_eml(data: bytes, *, fallback_date: datetime | None = None) -> Item:
    """Parse one TeleMessage EML. Raises InvalidItem; never anything else for bad data.

    With `fallback_date` (best-effort mode), a truncated or malformed MIME body or a missing or
    unparsable Date does not raise: the item keeps what could be read, the defects are listed
    in `item.defects`, and `fallback_date` stands in for an unreadable Date."""
    try:
        return _parse(data, fallback_date)
    except InvalidItem:
        raise
    except Exception as exc:  # noqa: BLE001 - the email package raises many types on bad input
        raise InvalidItem("malformed_mime", f"{type(exc).__name__}: {exc}") from exc


def _parse(data: bytes, fallback_date: datetime | None = None) -> Item:
    best_effort = fallback_date is not None
    defects: list[Defect] = []
    if not data.strip():
        raise InvalidItem("empty", "the EML has no content")
    _check_header_sizes(data)
    msg = BytesParser(policy=policy.default).parsebytes(data)
    if not isinstance(msg, EmailMessage):
        raise InvalidItem("malformed_mime", "not an email message")
    if msg.get(f"{TM_PREFIX}enc-datakey") is not None:
        key_id = _header(msg, f"{TM_PREFIX}enc-key-id") or "unknown"
        raise InvalidItem("encrypted_byok", f"encrypted with customer-managed key {key_id}; "
                          "decrypt before import, never imported as ciphertext")
    if any(isinstance(d, _TRUNCATION_DEFECTS) for d in _all_defects(msg)):
        names = sorted({type(d).__name__ for d in _all_defects(msg)})
        truncated = InvalidItem("truncated_mime",
                                "multipart structure is incomplete: " + ", ".join(names))
        if not best_effort:
            raise truncated
        defects.append(Defect(truncated.reason, truncated.detail))

    try:
        captured_at = _captured_at(msg)
    except InvalidItem as undated:
        if fallback_date is None:
            raise
        defects.append(Defect(undated.reason, undated.detail))
        captured_at = fallback_date
    sender_list = _participants(msg, "from")
    recipients = _participants(msg, "to") + _participants(msg, "cc")
    if not sender_list and not recipients:
        raise InvalidItem("no_participants", "no sender and no recipients")
    sender = sender_list[0] if sender_list else Participant(name="(unknown sender)")
    recipients = [*sender_list[1:], *recipients]

    tm_headers = tuple((name, _decoded(msg, name, value)) for name, value in msg.raw_items()
                       if name.lower().startswith(TM_PREFIX))
    archive_id = _header(msg, f"{TM_PREFIX}archivemessageid")
    message_id = _header(msg, "message-id")
    archive_key = archive_id or (message_id.strip("<>") if message_id else None) \
        or "sha256:" + hashlib.sha256(data).hexdigest()
    subject = _header(msg, "subject") or ""
    try:
        text, html, attachments = _body_and_attachments(msg)
    except Exception as exc:  # noqa: BLE001 - as in parse_eml: the body is unreadable
        if not best_effort:
            raise
        defects.append(Defect("malformed_mime", f"the body could not be read: "
                                                f"{type(exc).__name__}: {str(exc)[:200]}"))
        text, html, attachments = "", None, []

    initiator_raw = _header(msg, f"{TM_PREFIX}archiveinitiator")
    initiator = to_e164(initiator_raw) if initiator_raw else None
    kind = _kind(msg, archive_key, subject)
    return Item(
        archive_key=archive_key,
        kind=kind,
        captured_at=captured_at,
        sender=sender,
        recipients=tuple(recipients),
        subject=subject,
        text=text,
        html=html,
        attachments=tuple(attachments),
        chat=Chat(
            thread_id=_header(msg, f"{TM_PREFIX}thread_id"),
            thread_name=_header(msg, f"{TM_PREFIX}threadname"),
            group_id=_header(msg, f"{TM_PREFIX}groupid"),
            group_name=_header(msg, f"{TM_PREFIX}group_name"),
        ),
        direction=_direction(sender, initiator),
        archive_initiator=initiator,
        internet_message_id=message_id,
        telemessage_headers=tm_headers,
        deleted=_deleted(text, archive_key) if kind is ItemKind.DELETED else None,
        call=_call(msg) if kind is ItemKind.CALL else None,
        source_bytes=len(data),
        defects=tuple(defects),
    )


def _check_header_sizes(data: bytes) -> None:
    end = _header_block_end(data)
    if end is None:
        if len(data) > MAX_HEADER_BLOCK_BYTES:
            raise InvalidItem("header_too_large",
                              f"no end of headers within {MAX_HEADER_BLOCK_BYTES} bytes")
        end = len(data)
    if end > MAX_HEADER_BLOCK_BYTES:
        raise InvalidItem("header_too_large",
                          f"header block is {end} bytes (limit {MAX_HEADER_BLOCK_BYTES})")
    field_len = 0
    for line in data[:end].splitlines():
        if line[:1] in (b" ", b"\t"):
            field_len += len(line)
        else:
            field_len = len(line)
        if field_len > MAX_HEADER_FIELD_BYTES:
            raise InvalidItem("header_too_large",
                              f"a header field exceeds {MAX_HEADER_FIELD_BYTES} bytes")


def _header_block_end(data: bytes) -> int | None:
    window = data[: MAX_HEADER_BLOCK_BYTES + 4]
    ends = [i for i in (window.find(b"\r\n\r\n"), window.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else None


def _all_defects(msg: Message) -> list[email_errors.MessageDefect]:
    found: list[email_errors.MessageDefect] = []
    for part in msg.walk():
        found.extend(part.defects)
    return found


def _header(msg: Message, name: str) -> str | None:
    for key, raw in msg.raw_items():
        if key.lower() == name:
            return _decoded(msg, key, raw).strip() or None
    return None


def _decoded(msg: Message, name: str, raw: str) -> str:
    """A header's decoded text; its raw text when decoding fails (the header registry raises
    on garbage, e.g. a UTF-7 encoded word that decodes to a lone surrogate)."""
    try:
        return _clean(str(msg.policy.header_fetch_parse(name, raw)))  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - the registry raises many types on garbage values
        return _clean(str(raw))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: str) -> str:
    """Lone surrogates (a UTF-7 body can decode to one) as U+FFFD: they cannot be encoded as
    UTF-8, so every later JSON body or log line holding them would fail, on every retry."""
    return _SURROGATE.sub("\ufffd", text)


def _captured_at(msg: Message) -> datetime:
    raw = _raw_header(msg, "date")
    if not raw:
        raise InvalidItem("unparsable_date", "the EML has no Date header")
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError) as exc:
        raise InvalidItem("unparsable_date", f"Date header {raw[:60]!r} is not a date") from exc
    if when is None:
        raise InvalidItem("unparsable_date", f"Date header {raw[:60]!r} is not a date")
    if when.tzinfo is None:  # TeleMessage timestamps are UTC
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name:
            return str(value)
    return None


# TeleMessage writes each participant as `First Last Mobile <email>` (`<>` without an email):
# the mobile is the display part's last word, digits with the country code. A number is taken
# from there and nowhere else; the rest of the display part is the contact's own free text.
_SLOT_NUMBER = re.compile(r"\+?\d{7,15}")
# Something a reader would take for a phone number (7-15 digits, separators allowed). Bounded
# repetition, so a search is linear in the text.
_NUMBER_IN_TEXT = re.compile(r"\+?\d(?:[\s\-.()]{0,2}\d){6,14}")


def _participants(msg: Message, header: str) -> list[Participant]:
    values = [_decoded(msg, key, raw) for key, raw in msg.raw_items() if key.lower() == header]
    if not values:
        return []
    people: list[Participant] = []
    for display, address in getaddresses(values):
        display = _clean(display.strip().strip('"').strip())
        address = _clean(address.strip())
        if not display and not address:
            continue
        people.append(_participant(display, address))
    return people


def _participant(display: str, address: str) -> Participant:
    """One entry. Routing trusts only what TeleMessage's format puts in place: the mobile in the
    last word, the address in `<>`. An entry where the contact's free text could pass for one
    of them is kept for display and marked with the conflict, so it is not routed on."""
    words = display.split()
    name, phone = display, None
    if words and _SLOT_NUMBER.fullmatch(words[-1]):
        phone = to_e164(words[-1])
        if phone:
            name = display[: display.rstrip().rfind(words[-1])].strip()
    email = address.lower() if "@" in address else None
    conflict = None
    if _NUMBER_IN_TEXT.search(name):
        conflict = "number_in_name"
    elif "@" in name or "<" in name or ">" in name:
        conflict = "address_in_name"
    elif address and not email:
        conflict = "not_an_address"
    elif email and not phone:
        conflict = "not_participant_format"
    return Participant(name=name or (email or phone or address or ""), phone=phone, email=email,
                       routing_conflict=conflict)


def _direction(sender: Participant, initiator: str | None) -> Direction:
    if not initiator or not sender.phone:
        return Direction.UNKNOWN
    return Direction.OUTGOING if sender.phone == initiator else Direction.INCOMING


def _kind(msg: Message, archive_key: str, subject: str) -> ItemKind:
    message_type = (_header(msg, f"{TM_PREFIX}messagetype") or "").lower()
    if message_type == "call":
        return ItemKind.CALL
    if archive_key.startswith(DELETED_ID_PREFIX) or subject.startswith(DELETED_SUBJECT_PREFIX):
        return ItemKind.DELETED
    return ItemKind.MESSAGE


def _body_and_attachments(msg: EmailMessage) -> tuple[str, str | None, list[Attachment]]:
    if not msg.is_multipart():
        if msg.get_content_maintype() in ("text", "multipart"):
            text, html = _text_of(msg)
            return text, html, []
        return "", None, [_attachment(msg, 1)]
    payload = msg.get_payload()
    parts = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
    if not parts:
        return "", None, []
    first, rest = parts[0], parts[1:]
    text, html = "", None
    if first.is_multipart() or first.get_content_maintype() == "text":
        text, html = _text_of(first)
    else:
        rest = parts
    attachments: list[Attachment] = []
    for part in rest:
        for leaf in _leaves(part):
            attachments.append(_attachment(leaf, len(attachments) + 1))
    return text, html, attachments


def _leaves(part: Message) -> list[Message]:
    if part.get_content_type() == "message/rfc822" or not part.is_multipart():
        return [part]
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    return [leaf for sub in payload if isinstance(sub, Message) for leaf in _leaves(sub)]


def _text_of(part: Message) -> tuple[str, str | None]:
    plain: str | None = None
    html: str | None = None
    for leaf in _leaves(part) if part.is_multipart() else [part]:
        subtype = leaf.get_content_type()
        if subtype.startswith("multipart/"):  # declared multipart, no parts: its body is text
            subtype = "text/plain"
        if subtype == "text/plain" and plain is None:
            plain = _decode_text(leaf)
        elif subtype == "text/html" and html is None:
            html = _decode_text(leaf)
    if plain is None and html is not None:
        plain = _strip_tags(html)
    return plain or "", html


def _strip_tags(html: str) -> str:
    """What `re.sub(r"<[^>]+>", "", html)` gives, in one pass: that regex rescans the rest of
    the text for every `<` without a `>`, which takes minutes on a body of many `<`."""
    kept: list[str] = []
    at = 0
    while (start := html.find("<", at)) >= 0:
        end = html.find(">", start + 1)
        if end < 0:  # no tag closes after here: the rest is text
            break
        if end == start + 1:  # "<>" is not a tag
            kept.append(html[at: start + 1])
            at = start + 1
            continue
        kept.append(html[at:start])
        at = end + 1
    kept.append(html[at:])
    return "".join(kept)


def _decode_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        # An unknown or lying charset: keep every byte readable rather than drop the text.
        text = payload.decode("utf-8", errors="replace")
    # CRLF and the final line break are MIME's, not the sender's.
    text = _clean(text).replace("\r\n", "\n")
    return text[:-1] if text.endswith("\n") else text


def _attachment(part: Message, index: int) -> Attachment:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        data = first.as_bytes() if isinstance(first, Message) else b""
    else:
        raw = part.get_payload(decode=True)
        data = raw if isinstance(raw, bytes) else b""
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001 - malformed RFC 2231 parameters
        name = None
    content_type = part.get_content_type()
    if not name:
        ext = {"message/rfc822": ".eml", "text/plain": ".txt", "text/html": ".html"}
        name = f"attachment-{index}{ext.get(content_type, '.bin')}"
    content_id = part.get("content-id")
    return Attachment(name=_safe_name(name), content_type=content_type, data=data,
                      content_id=str(content_id).strip("<> ") if content_id else None)


def _safe_name(name: str) -> str:
    cleaned = "".join(ch for ch in _clean(name)
                      if ch >= " " and ch not in '\\/:*?"<>|').strip()
    return cleaned[:255] or "attachment.bin"


_QUOTED_DATE = re.compile(r"^Original message sent (?P<date>.+?):\s*$", re.MULTILINE)


def _deleted(text: str, archive_key: str) -> DeletedMessage:
    quoted = [line[2:] if line.startswith("> ") else line[1:]
              for line in text.splitlines() if line.startswith(">")]
    sent = None
    match = _QUOTED_DATE.search(text)
    if match:
        try:
            sent = parsedate_to_datetime(match.group("date")).astimezone(UTC)
        except (TypeError, ValueError):
            sent = None
    original_id = archive_key[len(DELETED_ID_PREFIX):] \
        if archive_key.startswith(DELETED_ID_PREFIX) else None
    return DeletedMessage(original_text="\n".join(quoted), original_sent=sent,
                          original_archive_id=original_id)


def _call(msg: Message) -> CallRecord:
    def iso(name: str) -> datetime | None:
        value = _header(msg, f"{TM_PREFIX}{name}")
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)

    duration_raw = _header(msg, f"{TM_PREFIX}callduration")
    start, end = iso("callstart"), iso("callend")
    duration = int(duration_raw) if duration_raw and duration_raw.isdigit() else None
    if duration is None and start and end:
        duration = int((end - start).total_seconds())
    return CallRecord(
        call_id=_header(msg, f"{TM_PREFIX}callid"),
        call_type=_header(msg, f"{TM_PREFIX}calltype"),
        direction=_header(msg, f"{TM_PREFIX}calldirection"),
        status=_header(msg, f"{TM_PREFIX}status"),
        start=start,
        end=end,
        duration_seconds=duration,
    )
