"""Text from exports shown on an admin's terminal (member names, details, participants): its
control characters are escaped, so a crafted EML or export name cannot move the cursor, rewrite
earlier lines, set the window title or reverse the text (ESC and CSI sequences, C1 controls,
bidirectional overrides)."""

from __future__ import annotations

import json
import re
from typing import Any

# C0 and C1 controls, DEL, line/paragraph separators, bidirectional embeddings and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e"
                                 "\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """One field on one line: every control character escaped, newlines too."""
    return _UNSAFE.sub(_escape, str(text))


def printable_lines(text: str) -> str:
    """Text whose lines we composed: every control character but the newline escaped."""
    return _UNSAFE_BUT_NEWLINE.sub(_escape, text)


def printable_json(value: Any) -> str:
    """Indented JSON that stays valid and equal: json escapes C0 controls in strings itself, so
    its newlines are its own; the rest can only occur inside strings, where a \\u escape
    means the same character."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return _UNSAFE_BUT_NEWLINE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
