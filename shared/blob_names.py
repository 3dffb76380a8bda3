"""Blob names from outside (replay requests, the TeleMessage API, ZIP member names): one check.

Azure Storage does not normalise `..` or `.` segments on the wire, so a name holding them can
address a blob outside the intended prefix or container; an empty segment or a control
character makes names that look alike but differ; Azure refuses names over 1,024 characters.
"""

from __future__ import annotations

MAX_BLOB_NAME_CHARS = 1024


class UnsafeBlobName(ValueError):
    """A name that must not be used as (part of) a blob name; the message says why."""


def blob_name_problem(name: str) -> str | None:
    """Why `name` is not a safe blob name, or None when it is."""
    if not name:
        return "empty name"
    length = len(name.encode("utf-16-le", "surrogatepass")) // 2  # as Azure counts
    if length > MAX_BLOB_NAME_CHARS:
        return f"name is {length} characters, limit {MAX_BLOB_NAME_CHARS}"
    if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in name):
        return "control character in name"
    if "\\" in name:
        return "backslash in name"
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            return f"{segment!r} path segment in name" if segment else "empty path segment"
    return None


def check_blob_name(name: str) -> str:
    """Returns `name` when it is safe; raises UnsafeBlobName (a ValueError) otherwise."""
    problem = blob_name_problem(name)
    if problem is not None:
        raise UnsafeBlobName(f"unsafe blob name {name[:80]!r}: {problem}")
    return name


def normal_member_name(name: str) -> str:
    """A ZIP member name as one blob path: `\\` as `/`, no `.` or empty segments, so
    `./TG-1.eml`, `.//TG-1.eml` and `TG-1.eml` are the same name. `..` is kept (and refused
    by the member checks)."""
    return "/".join(s for s in name.replace("\\", "/").split("/") if s not in ("", "."))
