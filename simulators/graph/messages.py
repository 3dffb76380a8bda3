"""Messages and attachments: the rules Exchange applies when creating and updating them, and
their Graph JSON.

Creation rules modelled here:
- `Integer 0x0E07` (PR_MESSAGE_FLAGS) decides draft state: absent, or with MSGFLAG_UNSENT (0x8)
  set, the item is a draft; otherwise it is not, and MSGFLAG_READ (0x1) gives `isRead`.
- `SystemTime 0x0E06` and `SystemTime 0x0039` become `receivedDateTime` and `sentDateTime`;
  without them both are the creation time. The JSON `receivedDateTime`/`sentDateTime`/`isDraft`
  are read-only and ignored.
- `internetMessageHeaders` names must start with `x-`/`X-`.
- HTML bodies come back wrapped in an `<html>` document, as Exchange stores them.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .errors import GraphError
from .extprops import (
    MSGFLAG_HASATTACH,
    MSGFLAG_READ,
    MSGFLAG_UNSENT,
    PR_CLIENT_SUBMIT_TIME,
    PR_MESSAGE_DELIVERY_TIME,
    PR_MESSAGE_FLAGS,
    PropertyKey,
    check,
    invalid_id,
)
from .schema import parse_datetime
from .state import Attachment, ExtendedProperty, IdFactory, Message

MAX_HEADER_BYTES = 64 * 1024
FILE_ATTACHMENT = "#microsoft.graph.fileAttachment"
ITEM_ATTACHMENT = "#microsoft.graph.itemAttachment"
FLAGS_KEY = PropertyKey("Integer", None, None, PR_MESSAGE_FLAGS)
DELIVERY_KEY = PropertyKey("SystemTime", None, None, PR_MESSAGE_DELIVERY_TIME)
SUBMIT_KEY = PropertyKey("SystemTime", None, None, PR_CLIENT_SUBMIT_TIME)
# Properties whose value Exchange computes from the item's state.
COMPUTED_KEYS = (FLAGS_KEY, DELIVERY_KEY, SUBMIT_KEY)
# Properties a non-draft message accepts in an update.
_SENT_UPDATABLE = {"isRead", "categories", "importance", "flag", "inferenceClassification",
                   "singleValueExtendedProperties"}
_CREATE_ONLY = {"internetMessageId", "internetMessageHeaders"}
_READ_ONLY = {"id", "createdDateTime", "lastModifiedDateTime", "changeKey", "receivedDateTime",
              "sentDateTime", "hasAttachments", "bodyPreview", "parentFolderId", "conversationId",
              "conversationIndex", "isDraft", "webLink", "uniqueBody"}
_UNSUPPORTED_NAVIGATION = ("multiValueExtendedProperties", "extensions")
_TAG_RE = re.compile(r"<[^>]+>")


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _recipient(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    address = dict(value.get("emailAddress") or {})
    return {"emailAddress": {"name": address.get("name") or address.get("address"),
                             "address": address.get("address")}}


def _recipients(values: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [r for r in (_recipient(v) for v in values or []) if r is not None]


def _stored_body(body: dict[str, Any] | None) -> dict[str, Any]:
    content_type = (body or {}).get("contentType") or "text"
    content = (body or {}).get("content") or ""
    if content_type == "html" and "<html" not in content.lower():
        content = ('<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; '
                   f'charset=utf-8">\r\n</head><body>{content}</body></html>')
    return {"contentType": content_type, "content": content}


def _preview(body: dict[str, Any]) -> str:
    text = body["content"]
    if body["contentType"] == "html":
        text = re.sub(r"(?is)<head.*?</head>", "", text)
        text = html.unescape(_TAG_RE.sub(" ", text))
    return " ".join(text.split())[:255]


def check_headers(headers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """400 InvalidInternetMessageHeader for a name without the x- prefix or too much data."""
    total = 0
    for header in headers:
        name = header.get("name") or ""
        if not name.lower().startswith("x-"):
            raise GraphError(400, "InvalidInternetMessageHeader",
                             f"The internet message header name '{name}' should start with "
                             "'x-' or 'X-'.")
        total += len(name) + len(header.get("value") or "") + 4
    if total > MAX_HEADER_BYTES:
        raise GraphError(400, "InvalidInternetMessageHeader",
                         f"The internet message headers total {total} bytes, over the "
                         f"{MAX_HEADER_BYTES} bytes allowed.")
    return [{"name": h.get("name"), "value": h.get("value")} for h in headers]


def extended_properties(items: list[dict[str, Any]]) -> dict[PropertyKey, ExtendedProperty]:
    out: dict[PropertyKey, ExtendedProperty] = {}
    for item in items:
        prop_id = item.get("id")
        if not prop_id:
            raise invalid_id()
        value = item.get("value")
        out[check(prop_id, value)] = ExtendedProperty(prop_id, value)
    return out


def build_attachment(data: dict[str, Any], ids: IdFactory, now: datetime) -> Attachment:
    """An attachment from a validated `attachment` body (its `@odata.type` names a concrete
    type, or schema validation would have failed)."""
    odata_type = data.get("@odata.type", FILE_ATTACHMENT)
    name = data.get("name")
    content_type = data.get("contentType")
    attachment = Attachment(ids.item(100), odata_type, name, content_type,
                            bool(data.get("isInline")), now)
    if odata_type == FILE_ATTACHMENT:
        attachment.content = base64.b64decode(data.get("contentBytes") or "")
        attachment.content_id = data.get("contentId")
        attachment.content_location = data.get("contentLocation")
        attachment.content_type = content_type or (
            mimetypes.guess_type(name or "")[0] or "application/octet-stream")
    elif odata_type == ITEM_ATTACHMENT:
        attachment.item = data.get("item")
    else:
        raise GraphError(400, "ErrorInvalidAttachmentType",
                         f"Attachments of type '{odata_type}' cannot be added to a message.")
    return attachment


def _time_of(ext: dict[PropertyKey, ExtendedProperty], key: PropertyKey,
             default: datetime) -> datetime:
    prop = ext.get(key)
    moment = parse_datetime(prop.value) if prop and prop.value else None
    return moment or default


def create_message(folder_id: str, seq: int, body: dict[str, Any], ids: IdFactory,
                   now: datetime) -> Message:
    """A message from a schema-validated create body."""
    for name in _UNSUPPORTED_NAVIGATION:
        if body.get(name):
            raise GraphError(400, "BadRequest", f"The simulator does not store '{name}'.")
    ext = extended_properties(body.get("singleValueExtendedProperties") or [])
    headers = check_headers(body["internetMessageHeaders"]) \
        if body.get("internetMessageHeaders") else None
    flags_prop = ext.get(FLAGS_KEY)
    flags = int(flags_prop.value) if flags_prop and flags_prop.value is not None else None
    is_draft = flags is None or bool(flags & MSGFLAG_UNSENT)
    is_read = True if flags is None else bool(flags & MSGFLAG_READ)
    if body.get("isRead") is not None:
        is_read = bool(body["isRead"])
    stored_body = _stored_body(body.get("body"))
    sender = _recipient(body.get("sender")) or _recipient(body.get("from"))
    data: dict[str, Any] = {
        "categories": body.get("categories") or [],
        "internetMessageId": body.get("internetMessageId")
        or f"<{ids.token()[:32]}@sim.local>",
        "subject": body.get("subject") or "",
        "bodyPreview": _preview(stored_body),
        "importance": body.get("importance") or "normal",
        "conversationId": ids.item(43),
        "conversationIndex": base64.b64encode(ids.token().encode()[:22]).decode(),
        "isDeliveryReceiptRequested": bool(body.get("isDeliveryReceiptRequested")),
        "isReadReceiptRequested": bool(body.get("isReadReceiptRequested")),
        "inferenceClassification": body.get("inferenceClassification") or "focused",
        "body": stored_body,
        "sender": sender,
        "from": _recipient(body.get("from")) or sender,
        "toRecipients": _recipients(body.get("toRecipients")),
        "ccRecipients": _recipients(body.get("ccRecipients")),
        "bccRecipients": _recipients(body.get("bccRecipients")),
        "replyTo": _recipients(body.get("replyTo")),
        "flag": body.get("flag") or {"flagStatus": "notFlagged"},
    }
    return Message(
        id=ids.item(), folder_id=folder_id, seq=seq, created=now,
        received=_time_of(ext, DELIVERY_KEY, now), sent=_time_of(ext, SUBMIT_KEY, now),
        is_draft=is_draft, is_read=is_read, data=data, headers=headers,
        extended=ext,
        attachments=[build_attachment(a, ids, now) for a in body.get("attachments") or []])


def update_message(message: Message, body: dict[str, Any], now: datetime) -> None:
    """Apply a schema-validated PATCH body, with Exchange's restrictions on sent items."""
    def refuse(name: str) -> GraphError:
        return GraphError(400, "ErrorInvalidPropertyUpdateSentMessage",
                          f"Update operation is not supported for property '{name}' on this "
                          "message.")

    changes = {k: v for k, v in body.items() if k not in _READ_ONLY and not k.startswith("@")}
    for name in changes:
        if name in ("attachments", *_UNSUPPORTED_NAVIGATION):
            raise GraphError(400, "BadRequest",
                             f"Navigation property '{name}' cannot be updated with PATCH.")
        if name in _CREATE_ONLY or (not message.is_draft and name not in _SENT_UPDATABLE):
            raise refuse(name)
    ext = extended_properties(changes.pop("singleValueExtendedProperties", None) or [])
    for key in ext:
        if key in COMPUTED_KEYS:
            raise refuse(ext[key].id)
    message.extended.update(ext)
    if "isRead" in changes:
        message.is_read = bool(changes.pop("isRead"))
    if "body" in changes:
        message.data["body"] = _stored_body(changes.pop("body"))
        message.data["bodyPreview"] = _preview(message.data["body"])
    for name in ("from", "sender"):
        if name in changes:
            message.data[name] = _recipient(changes.pop(name))
    for name in ("toRecipients", "ccRecipients", "bccRecipients", "replyTo"):
        if name in changes:
            message.data[name] = _recipients(changes.pop(name))
    message.data.update(changes)
    message.change += 1
    message.modified = now


def message_flags(message: Message) -> int:
    has_attachments = any(not a.is_inline for a in message.attachments)
    return ((MSGFLAG_READ if message.is_read else 0) | (MSGFLAG_UNSENT if message.is_draft else 0)
            | (MSGFLAG_HASATTACH if has_attachments else 0))


def extended_value(message: Message, key: PropertyKey) -> str | None:
    """The value Exchange holds for a property: computed for flags and times, else stored."""
    if key == FLAGS_KEY:
        return str(message_flags(message))
    if key == DELIVERY_KEY:
        return iso(message.received)
    if key == SUBMIT_KEY:
        return iso(message.sent)
    prop = message.extended.get(key)
    return prop.value if prop else None


def _etag_body(message: Message) -> str:
    return "CQAAABYAAAA" + base64.b64encode(
        message.id.encode()[-12:] + message.change.to_bytes(4, "big")).decode()


def attachment_json(attachment: Attachment, with_content: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"@odata.type": attachment.odata_type}
    if attachment.odata_type == FILE_ATTACHMENT:
        out["@odata.mediaContentType"] = attachment.content_type
    out.update({
        "id": attachment.id,
        "lastModifiedDateTime": iso(attachment.last_modified),
        "name": attachment.name,
        "contentType": attachment.content_type,
        "size": attachment.size,
        "isInline": attachment.is_inline,
    })
    if attachment.odata_type == FILE_ATTACHMENT:
        out["contentId"] = attachment.content_id
        out["contentLocation"] = attachment.content_location
        if with_content:
            out["contentBytes"] = base64.b64encode(attachment.content).decode()
    return out


def message_json(message: Message, select: list[str] | None = None) -> dict[str, Any]:
    """The message as Graph returns it; `select` limits it to those properties (plus the id and
    etag), and is the only way to get `internetMessageHeaders` and `uniqueBody`."""
    data = message.data
    full: dict[str, Any] = {
        "@odata.etag": f'W/"{_etag_body(message)}"',
        "id": message.id,
        "createdDateTime": iso(message.created),
        "lastModifiedDateTime": iso(message.modified or message.created),
        "changeKey": _etag_body(message),
        "categories": data["categories"],
        "receivedDateTime": iso(message.received),
        "sentDateTime": iso(message.sent),
        "hasAttachments": any(not a.is_inline for a in message.attachments),
        "internetMessageId": data["internetMessageId"],
        "subject": data["subject"],
        "bodyPreview": data["bodyPreview"],
        "importance": data["importance"],
        "parentFolderId": message.folder_id,
        "conversationId": data["conversationId"],
        "conversationIndex": data["conversationIndex"],
        "isDeliveryReceiptRequested": data["isDeliveryReceiptRequested"],
        "isReadReceiptRequested": data["isReadReceiptRequested"],
        "isRead": message.is_read,
        "isDraft": message.is_draft,
        "webLink": "https://outlook.office365.com/owa/?ItemID="
                   f"{quote(message.id, safe='')}&exvsurl=1&viewmodel=ReadMessageItem",
        "inferenceClassification": data["inferenceClassification"],
        "body": data["body"],
        "sender": data["sender"],
        "from": data["from"],
        "toRecipients": data["toRecipients"],
        "ccRecipients": data["ccRecipients"],
        "bccRecipients": data["bccRecipients"],
        "replyTo": data["replyTo"],
        "flag": data["flag"],
    }
    if full["sender"] is None:
        del full["sender"], full["from"]
    if select is None:
        return full
    extra = {"internetMessageHeaders": message.headers or [], "uniqueBody": data["body"]}
    out = {"@odata.etag": full["@odata.etag"], "id": message.id}
    for name in select:
        if name in full:
            out[name] = full[name]
        elif name in extra:
            out[name] = extra[name]
    return out
