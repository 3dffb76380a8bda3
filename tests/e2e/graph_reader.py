"""Reads mailboxes back through the Graph API (of the simulator), the way an auditor would."""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import httpx

from shared.graph import ARCHIVE_KEY_PROPERTY


@dataclass(frozen=True)
class ArchivedMessage:
    archive_key: str
    is_draft: bool
    received: str
    sent: str
    subject: str
    sender: tuple[str, str]
    to: tuple[tuple[str, str], ...]
    body: str
    attachments: tuple[tuple[str, str], ...]  # (name, sha256 of the bytes)
    headers: dict[str, str]
    id: str = ""


class GraphReader:
    def __init__(self, base_url: str, token: str) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/",
                                  headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        return dict(self._send(path, params).json())

    def _send(self, url: str, params: dict[str, Any] | None) -> httpx.Response:
        """GET, waiting out throttling as any well-behaved Graph client must."""
        for _ in range(20):
            response = self._http.get(url, params=params)
            if response.status_code != 429:
                response.raise_for_status()
                return response
            time.sleep(float(response.headers.get("Retry-After", "1")))
        response.raise_for_status()
        return response

    def folder_id(self, user: str, name: str) -> str | None:
        page = self._get(f"users/{user}/mailFolders/msgfolderroot/childFolders",
                         **{"$filter": f"displayName eq '{name}'", "includeHiddenFolders": "true"})
        return page["value"][0]["id"] if page["value"] else None

    def messages(self, user: str, folder: str,
                 attachments: bool = True) -> list[ArchivedMessage]:
        found: list[ArchivedMessage] = []
        url: str | None = f"users/{user}/mailFolders/{folder}/messages"
        params: dict[str, Any] | None = {
            "$top": "50",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{ARCHIVE_KEY_PROPERTY}')",
        }
        while url:
            page = self._send(url, params).json()
            for message in page["value"]:
                found.append(self._archived(user, message, attachments))
            # The next link carries the whole query; params={} would make httpx drop it.
            url, params = page.get("@odata.nextLink"), None
        return found

    def _archived(self, user: str, message: dict[str, Any],
                  with_attachments: bool) -> ArchivedMessage:
        props = message.get("singleValueExtendedProperties") or []
        key = next((p["value"] for p in props if p["id"].lower() ==
                    ARCHIVE_KEY_PROPERTY.lower()), "")
        attachments = []
        listing = self._get(f"users/{user}/messages/{message['id']}/attachments") \
            if with_attachments else {"value": []}
        for attachment in listing["value"]:
            full = self._get(f"users/{user}/messages/{message['id']}/attachments/"
                             f"{attachment['id']}")
            data = base64.b64decode(full["contentBytes"])
            attachments.append((full["name"], hashlib.sha256(data).hexdigest()))
        address = message.get("from", {}).get("emailAddress", {})
        return ArchivedMessage(
            archive_key=key, is_draft=message["isDraft"],
            received=message["receivedDateTime"], sent=message["sentDateTime"],
            subject=message.get("subject", ""),
            sender=(address.get("name", ""), address.get("address", "")),
            to=tuple((r["emailAddress"].get("name", ""), r["emailAddress"].get("address", ""))
                     for r in message.get("toRecipients", [])),
            body=message.get("body", {}).get("content", ""),
            attachments=tuple(sorted(attachments)),
            headers={h["name"]: h["value"] for h in message.get("internetMessageHeaders") or []},
            id=message["id"])

    def attachment_bytes(self, user: str, message_id: str, name: str) -> bytes:
        listing = self._get(f"users/{user}/messages/{message_id}/attachments")
        [found] = [a for a in listing["value"] if a["name"] == name]
        full = self._get(f"users/{user}/messages/{message_id}/attachments/{found['id']}")
        return base64.b64decode(full["contentBytes"])
