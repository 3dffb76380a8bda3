"""TeleMessage's export ZIP: its name, its `.mf` manifest, and safe iteration over its members.

Vendor checks (REFERENCE.md section 2): the manifest's `Count:` equals the number of EML files,
every listed name is in the ZIP with exactly that name, no listed file is missing or empty.
On top of those, members are checked for what a damaged or hostile ZIP can hold.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

# TeleMessage documents the `YYYYMMDD0000` prefix and the file number; <TimeZipped> is not
# documented, so any value is accepted and read as a time only when it looks like one.
_EXPORT_NAME = re.compile(
    r"^(?P<day>\d{8})0000-TeleMessage_(?P<file>\d+)_(?P<zipped>[^/]*?)\.zip$", re.IGNORECASE)


@dataclass(frozen=True)
class ExportName:
    day: date | None
    file_number: int | None
    zipped_at: datetime | None


def parse_export_name(name: str) -> ExportName:
    """Reads `YYYYMMDD0000-TeleMessage_<file#>_<TimeZipped>.zip`; other names give Nones."""
    match = _EXPORT_NAME.match(name.rsplit("/", 1)[-1])
    if not match:
        return ExportName(None, None, None)
    try:
        day = datetime.strptime(match.group("day"), "%Y%m%d").date()
    except ValueError:
        return ExportName(None, None, None)
    zipped_raw = match.group("zipped")
    zipped = None
    formats = {14: "%Y%m%d%H%M%S", 12: "%Y%m%d%H%M", 8: "%Y%m%d"}
    if zipped_raw.isdigit() and len(zipped_raw) in formats and zipped_raw[:2] == "20":
        try:
            zipped = datetime.strptime(zipped_raw, formats[len(zipped_raw)]).replace(tzinfo=UTC)
        except ValueError:
            zipped = None
    return ExportName(day, int(match.group("file")), zipped)


@dataclass(frozen=True)
class Limits:
    """Caps against zip bombs and absurd archives. An item over max_item_bytes is still split
    (it is recorded as oversize at import); one over max_member_bytes is not even extracted."""

    max_member_bytes: int = 256 * 1024 * 1024
    max_total_bytes: int = 64 * 1024 * 1024 * 1024
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1024 * 1024  # small members compress well legitimately
    max_members: int = 1_000_000


@dataclass(frozen=True)
class Manifest:
    name: str
    count: int | None
    names: tuple[str, ...]
    fields: dict[str, str]


def parse_manifest(name: str, text: str) -> Manifest:
    count: int | None = None
    fields: dict[str, str] = {}
    names: list[str] = []
    for raw_line in text.splitlines():
        line = raw_line.strip().lstrip("\ufeff")
        if not line:
            continue
        key, sep, value = line.partition(":")
        if sep and not line.lower().endswith(".eml") and " " not in key.strip():
            fields[key.strip()] = value.strip()
            if key.strip().lower() == "count":
                count = int(value.strip()) if value.strip().isdigit() else None
            continue
        names.append(line)
    return Manifest(name=name, count=count, names=tuple(names), fields=fields)


@dataclass(frozen=True)
class Problem:
    """Something wrong with the export as a whole or with named members."""

    code: str
    detail: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Member:
    """A ZIP member that is (or claims to be) an item."""

    name: str
    size: int
    compressed_size: int
    rejected: str | None = None  # reason code when the member must not be extracted
    detail: str = ""


@dataclass
class ExportCheck:
    manifest: Manifest | None
    members: list[Member]
    problems: list[Problem] = field(default_factory=list)

    @property
    def accepted(self) -> list[Member]:
        return [m for m in self.members if m.rejected is None]


DEFAULT_LIMITS = Limits()


def check_export(zf: zipfile.ZipFile, limits: Limits = DEFAULT_LIMITS) -> ExportCheck:
    """Reads the central directory and the manifest; decides which members are items."""
    infos = zf.infolist()
    problems: list[Problem] = []
    if len(infos) > limits.max_members:
        problems.append(Problem("too_many_members", f"{len(infos)} members, limit "
                                f"{limits.max_members}; only the first are read"))
        infos = infos[: limits.max_members]
    manifests = [i for i in infos if i.filename.lower().endswith(".mf") and not i.is_dir()]
    manifest = None
    if not manifests:
        problems.append(Problem("manifest_missing", "no .mf manifest; imported without the "
                                "vendor's count check"))
    else:
        if len(manifests) > 1:
            problems.append(Problem("manifest_multiple", "more than one .mf; the first is used",
                                    tuple(m.filename for m in manifests)))
        manifest = _read_manifest(zf, manifests[0], problems)

    counts = Counter(i.filename for i in infos)
    members: list[Member] = []
    total = 0
    for info in infos:
        if info.is_dir() or info in manifests:
            continue
        reason, detail = _reject_reason(info, counts, limits)
        if reason is None:
            total += info.file_size
            if total > limits.max_total_bytes:
                reason, detail = "zip_bomb_total", (f"export expands beyond "
                                                    f"{limits.max_total_bytes} bytes")
        members.append(Member(info.filename, info.file_size, info.compress_size, reason, detail))
    if manifest is not None:
        problems.extend(_manifest_problems(manifest, members))
    return ExportCheck(manifest=manifest, members=members, problems=problems)


def _read_manifest(zf: zipfile.ZipFile, info: zipfile.ZipInfo,
                   problems: list[Problem]) -> Manifest | None:
    if info.file_size > 64 * 1024 * 1024:
        problems.append(Problem("manifest_unreadable", "manifest is implausibly large",
                                (info.filename,)))
        return None
    try:
        text = zf.read(info).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        problems.append(Problem("manifest_unreadable", str(exc), (info.filename,)))
        return None
    manifest = parse_manifest(info.filename, text)
    if manifest.count is None:
        problems.append(Problem("manifest_count_missing", "manifest has no valid Count: line",
                                (info.filename,)))
    return manifest


def _reject_reason(info: zipfile.ZipInfo, counts: Counter[str],
                   limits: Limits) -> tuple[str | None, str]:
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        return "unsafe_name", "absolute path or '..' in member name"
    if any(ord(ch) < 32 for ch in name):
        return "unsafe_name", "control character in member name"
    if counts[name] > 1:
        return "duplicate_name", f"{counts[name]} members share this name"
    if not name.lower().endswith(".eml"):
        return "not_eml", "member is not an .eml file"
    if info.flag_bits & 0x1:
        return "encrypted_zip_member", "member is password-protected"
    if info.file_size == 0:
        return "empty", "zero-byte member"
    if info.file_size > limits.max_member_bytes:
        return "zip_bomb_member", (f"member expands to {info.file_size} bytes, limit "
                                   f"{limits.max_member_bytes}")
    if (info.file_size > limits.ratio_floor_bytes
            and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
        ratio = info.file_size / max(info.compress_size, 1)
        return "zip_bomb_ratio", f"compression ratio {ratio:.0f} exceeds {limits.max_ratio:.0f}"
    return None, ""


def _manifest_problems(manifest: Manifest, members: list[Member]) -> list[Problem]:
    problems: list[Problem] = []
    emls = [m for m in members if m.name.lower().endswith(".eml")]
    present = {m.name for m in emls}
    if manifest.count is not None and manifest.count != len(emls):
        problems.append(Problem("manifest_count_mismatch",
                                f"manifest Count: {manifest.count}, ZIP holds {len(emls)} EML "
                                "files"))
    listed = set(manifest.names)
    missing = tuple(sorted(listed - present))
    if missing:
        problems.append(Problem("manifest_listed_missing",
                                f"{len(missing)} listed file(s) not in the ZIP", missing))
    unlisted = tuple(sorted(present - listed))
    if unlisted:
        problems.append(Problem("manifest_unlisted", f"{len(unlisted)} EML file(s) in the ZIP "
                                "are not listed (still imported)", unlisted))
    empty = tuple(sorted(m.name for m in emls if m.size == 0 and m.name in listed))
    if empty:
        problems.append(Problem("manifest_listed_empty", f"{len(empty)} listed file(s) are "
                                "zero bytes", empty))
    return problems


def read_member(zf: zipfile.ZipFile, member: Member, limit: int) -> Iterator[bytes]:
    """Streams a member's bytes, refusing more than `limit` whatever its header claims."""
    produced = 0
    with zf.open(member.name) as stream:
        while chunk := stream.read(1024 * 1024):
            produced += len(chunk)
            if produced > limit:
                raise zipfile.BadZipFile(f"member expands beyond {limit} bytes (header lied)")
            yield chunk

