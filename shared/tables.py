"""Helpers for Table storage keys and entities shared by the ledger, outcomes and state."""

from __future__ import annotations

import hashlib
from urllib.parse import quote


def safe_key(value: str) -> str:
    """PartitionKey/RowKey forbid / \\ # ? and control characters; keep the value readable."""
    encoded = quote(value, safe=" -_.@+=:,;!$&'()*~")
    if len(encoded) <= 512:
        return encoded
    return encoded[:400] + "~" + hashlib.sha256(value.encode()).hexdigest()


def hashed_key(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
