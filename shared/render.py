"""Item -> Graph message: a non-draft mail item that shows who said what to whom and when.

The message is Graph's JSON (a dict for `json.dumps`), not msgraph-sdk models: building and
serializing the models cost ~15% of the import's CPU (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import html
from datetime import datetime
from email.header import Header
from typing import Any

from shared.graph import ARCHIVE_KEY_PROPERTY, file_attachment
from shared.item import Attachment, Item, ItemKind, Participant

PR_MESSAGE_FLAGS = "Integer 0x0E07"  # 1 = read and not unsent: the item is not a draft
PR_MESSAGE_DELIVERY_TIME = "SystemTime 0x0E06"  # shown as received time
PR_CLIENT_SUBMIT_TIME = "SystemTime 0x0039"  # shown as sent time
MAX_HEADER_VALUE = 900
MAX_HEADERS_TOTAL = 48 * 1024

KIND_LABELS = {ItemKind.MESSAGE: "Telegram message", ItemKind.DELETED: "Telegram deleted message",
               ItemKind.CALL: "Telegram call"}


def subject(item: Item) -> str:
    """Says kind, chat and sender: `Telegram message | Group: Desk | Dana Levi`, after the
    item's markers, if any: `[Attachments withheld] Telegram message | ...`."""
    marks = "".join(f"[{n.tag}] " for n in item.notices)
    kind = KIND_LABELS[item.kind]
    if item.kind is ItemKind.CALL and item.call is not None:
        kind = f"Telegram {(item.call.call_type or 'voice').lower()} call"
        if item.call.status:
            kind += f" ({item.call.status}, {_duration(item.call.duration_seconds)})"
    return (f"{marks}{kind} | {chat_label(item)} | "
            f"{item.sender.name or item.sender.phone or '?'}")[:255]


def chat_label(item: Item) -> str:
    if item.chat.is_group:
        return f"Group: {item.chat.group_name or item.chat.thread_name or item.chat.group_id}"
    other = item.recipients[0].name if item.recipients else ""
    return f"Chat: {item.chat.thread_name or other or item.chat.thread_id or '1:1'}"


def recipient(person: Participant) -> dict[str, Any]:
    """Display name with the number; the address, or the number where there is none."""
    name = f"{person.name} ({person.phone})" if person.phone and person.name else (
        person.name or person.phone or "")
    address = person.email or person.phone or ""
    return {"emailAddress": {"name": name, "address": address}}


def render_message(item: Item, inline: list[Attachment], body: str | None = None
                   ) -> dict[str, Any]:
    """`body`: the item's `body_html`, when the caller already made it."""
    sender = recipient(item.sender)
    when = _iso(item.captured_at)
    message: dict[str, Any] = {
        "subject": subject(item),
        "body": {"contentType": "html",
                 "content": body if body is not None else body_html(item)},
        "from": sender,
        "sender": sender,
        "toRecipients": [recipient(p) for p in item.recipients],
        "internetMessageId": item.internet_message_id or f"<{_safe_id(item.archive_key)}"
                                                         "@telegram-archive.invalid>",
        "internetMessageHeaders": internet_headers(item),
        "singleValueExtendedProperties": [
            {"id": PR_MESSAGE_FLAGS, "value": "1"},
            {"id": PR_MESSAGE_DELIVERY_TIME, "value": when},
            {"id": PR_CLIENT_SUBMIT_TIME, "value": when},
            {"id": ARCHIVE_KEY_PROPERTY, "value": item.archive_key},
        ],
    }
    if inline:
        message["attachments"] = [file_attachment(a.name, a.content_type, a.data)
                                  for a in inline]
    return message


def internet_headers(item: Item) -> list[dict[str, str]]:
    headers = [{"name": "X-Telegram-Archive-Key", "value": _ascii(item.archive_key)}]
    if item.notices:
        headers.append({"name": "X-Telegram-Archive-Notice",
                        "value": _ascii("; ".join(n.tag for n in item.notices))})
    total = 0
    for name, value in item.telemessage_headers:
        encoded = _ascii(value)
        total += len(name) + len(encoded)
        if total > MAX_HEADERS_TOTAL:
            break
        headers.append({"name": name, "value": encoded})
    return headers


def body_html(item: Item) -> str:
    rows = [
        ("Kind", KIND_LABELS[item.kind]),
        ("Chat", chat_label(item) + (f" (thread {item.chat.thread_id})"
                                     if item.chat.thread_id else "")),
        ("Captured (UTC)", item.captured_at.strftime("%Y-%m-%d %H:%M:%S")),
        ("Direction", item.direction.value),
        ("From", item.sender.label()),
        ("To", "; ".join(p.label() for p in item.recipients) or "-"),
    ]
    if item.chat.group_id:
        rows.insert(2, ("Group id", item.chat.group_id))
    if item.archive_initiator:
        rows.append(("Captured on the phone of", item.archive_initiator))
    if item.call is not None:
        call = item.call
        rows += [("Call", f"{call.call_type or 'Voice'} call, {call.direction or ''} "
                          f"{call.status or ''}".strip()),
                 ("Call start (UTC)", _fmt(call.start)), ("Call end (UTC)", _fmt(call.end)),
                 ("Duration", _duration(call.duration_seconds))]
    rows.append(("Archive key", item.archive_key))
    table = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                    for k, v in rows)
    parts = [f"<table>{table}</table><hr/>"]
    if item.notices:  # first, where a reviewer cannot miss it
        notes = "".join(f"<p><b>{html.escape(n.tag)}.</b> {html.escape(n.text)}</p>"
                        for n in item.notices)
        parts.insert(0, f"<div style='border:2px solid #c00;padding:4px'>{notes}</div>")
    if item.kind is ItemKind.DELETED and item.deleted is not None:
        sent = _fmt(item.deleted.original_sent)
        parts.append(f"<p><b>Deleted message.</b> Original sent {html.escape(sent)} UTC:</p>"
                     f"<blockquote dir='auto'>{_text(item.deleted.original_text)}</blockquote>")
    if item.text:
        parts.append(f"<div dir='auto'>{_text(item.text)}</div>")
    if item.attachments:
        listed = "".join(f"<li>{html.escape(a.name)} ({html.escape(a.content_type)}, {a.size} "
                         f"bytes, SHA-256 {a.sha256})</li>" for a in item.attachments)
        parts.append(f"<p>Attachments:</p><ul>{listed}</ul>")
    return "<html><body>" + "".join(parts) + "</body></html>"


def _text(text: str) -> str:
    return html.escape(text).replace("\n", "<br/>")


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fmt(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _ascii(value: str) -> str:
    """Header values go out ASCII-only: non-ASCII as an RFC 2047 encoded word."""
    value = " ".join(value.split())
    if value.isascii():
        return value[:MAX_HEADER_VALUE]
    # Cut the text, not the encoded word, so the value still decodes.
    return Header(value[: MAX_HEADER_VALUE // 4], "utf-8").encode(maxlinelen=10_000)


def _safe_id(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in key)[:200]
