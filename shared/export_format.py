"""TeleMessage's export ZIP: its name, its `.mf` manifest, and safe iteration over its members.

Vendor checks (REFERENCE.md section 2): the manifest's `Count:` equals the number of EML files,
every listed name is in the ZIP with exactly that name, no listed file is missing or empty.
On top of those, members are checked for what a damaged or hostile ZIP can hold.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

from shared.blob_names import normal_member_name

# The methods a TeleMessage export uses. zipfile decompresses the others (bzip2, LZMA) with no
# bound on the bytes one read produces, so a member claiming 1 KB can grow to gigabytes.
ACCEPTED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

_EXPORT_NAME = re.compile(
    r"^(?P<day>\d{8})0000-TeleMessage_(?P<file>\d+)_(?P<zipped>\d{8,14})\.zip$", re.IGNORECASE)


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
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d"):
        try:
            zipped = datetime.strptime(zipped_raw, fmt).replace(tzinfo=UTC)
            break
        except ValueError:
            continue
    return ExportName(day, int(match.group("file")), zipped)


@dataclass(frozen=True)
class Limits:
    """Caps against zip bombs and absurd archives. An item over max_item_bytes is still split
    (it is recorded as oversize at import); one over max_member_bytes is not even extracted."""

    max_member_bytes: int = 256 * 1024 * 1024
    max_total_bytes: int = 64 * 1024 * 1024 * 1024
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1024 * 1024  # small members compress well legitimately
    # zipfile holds every central directory entry in memory (about 0.5 KB each, plus the
    # directory itself), so both are checked from the ZIP's end records before it is opened.
    max_members: int = 200_000
    max_central_directory_bytes: int = 64 * 1024 * 1024


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


class SeekableBytes(Protocol):
    """What zipfile needs of a file: a local file, a BytesIO or a BlobRangeReader."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def read(self, n: int = -1, /) -> bytes: ...
    def tell(self) -> int: ...


class ExportRefused(ValueError):
    """The export as a whole cannot be split; `reason` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def open_export(fp: SeekableBytes, limits: Limits = DEFAULT_LIMITS) -> zipfile.ZipFile:
    """zipfile.ZipFile over `fp`, once the central directory is known to be within limits.

    zipfile reads the whole central directory and builds one object per entry before anyone
    can count them; the count is therefore taken first, from the end record (ZIP64 too) and
    by walking the directory's fixed-size headers, which costs no memory per entry. Raises
    ExportRefused, or zipfile.BadZipFile for what is not a ZIP."""
    start, size, declared = _central_directory(fp)
    if size > limits.max_central_directory_bytes:
        raise ExportRefused("too_many_members", f"central directory is {size} bytes, limit "
                            f"{limits.max_central_directory_bytes}")
    if declared > limits.max_members:
        raise ExportRefused("too_many_members", f"{declared} members, limit "
                            f"{limits.max_members}")
    found = _count_entries(fp, start, size, stop_after=limits.max_members)
    if found > limits.max_members:
        raise ExportRefused("too_many_members", f"more than {limits.max_members} members")
    fp.seek(0)
    return zipfile.ZipFile(fp)


_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CD_ENTRY = struct.Struct("<4s24x3H12x")


def _central_directory(fp: SeekableBytes) -> tuple[int, int, int]:
    """(start, size, declared entries) of the central directory, located as zipfile does."""
    file_size = fp.seek(0, 2)
    tail_start = max(0, file_size - _EOCD.size - 65535)
    fp.seek(tail_start)
    tail = fp.read(file_size - tail_start)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        raise zipfile.BadZipFile("no end of central directory record")
    _, _, _, _, declared, size, offset, _ = _EOCD.unpack_from(tail, at)
    location = tail_start + at
    locator_at = location - _ZIP64_LOCATOR.size
    if locator_at >= _ZIP64_EOCD.size:
        fp.seek(locator_at)
        locator = fp.read(_ZIP64_LOCATOR.size)
        if locator[:4] == b"PK\x06\x07":
            record_at = locator_at - _ZIP64_EOCD.size
            fp.seek(record_at)
            record = fp.read(_ZIP64_EOCD.size)
            if len(record) != _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
                raise zipfile.BadZipFile("ZIP64 end record missing")
            fields = _ZIP64_EOCD.unpack(record)
            declared, size, offset, location = fields[7], fields[8], fields[9], record_at
    start = location - size
    if start < 0 or offset > start:
        raise zipfile.BadZipFile("bad offset for central directory")
    return start, size, declared


def _count_entries(fp: SeekableBytes, start: int, size: int, stop_after: int) -> int:
    """Entries in the central directory, counted from their headers (stops past stop_after)."""
    fp.seek(start)
    remaining, buffer, at, count = size, b"", 0, 0
    while count <= stop_after:
        if len(buffer) - at < _CD_ENTRY.size:
            chunk = fp.read(min(1024 * 1024, remaining)) if remaining > 0 else b""
            remaining -= len(chunk)
            buffer, at = buffer[at:] + chunk, 0
            if len(buffer) < _CD_ENTRY.size:
                break
        signature, name_len, extra_len, comment_len = _CD_ENTRY.unpack_from(buffer, at)
        if signature != b"PK\x01\x02":
            break
        count += 1
        at += _CD_ENTRY.size + name_len + extra_len + comment_len
        if at > len(buffer):  # the entry's variable part runs past the buffer: skip it
            skip = min(at - len(buffer), remaining)
            fp.seek(skip, 1)
            remaining -= skip
            buffer, at = b"", 0
    return count


def check_export(zf: zipfile.ZipFile, limits: Limits = DEFAULT_LIMITS) -> ExportCheck:
    """Reads the central directory and the manifest; decides which members are items.
    Open `zf` with open_export, which bounds the directory zipfile reads."""
    infos = zf.infolist()
    problems: list[Problem] = []
    if len(infos) > limits.max_members:  # opened without open_export
        raise ExportRefused("too_many_members", f"{len(infos)} members, limit "
                            f"{limits.max_members}")
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

    counts = Counter(normal_member_name(i.filename) for i in infos)
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
    if info.file_size > MAX_MANIFEST_BYTES:
        problems.append(Problem("manifest_unreadable", "manifest is implausibly large",
                                (info.filename,)))
        return None
    if info.compress_type not in ACCEPTED_COMPRESSION:
        problems.append(Problem("manifest_unreadable", f"manifest uses compression method "
                                f"{info.compress_type}; only stored and deflate are read",
                                (info.filename,)))
        return None
    try:
        member = Member(info.filename, info.file_size, info.compress_size)
        text = b"".join(read_member(zf, member, info.file_size)).decode("utf-8",
                                                                       errors="replace")
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
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
    if counts[normal_member_name(name)] > 1:
        return "duplicate_name", (f"{counts[normal_member_name(name)]} members share this "
                                  "name (after removing '.' and empty path segments)")
    if not name.lower().endswith(".eml"):
        return "not_eml", "member is not an .eml file"
    if info.flag_bits & 0x1:
        return "encrypted_zip_member", "member is password-protected"
    if info.compress_type not in ACCEPTED_COMPRESSION:
        return "unsupported_compression", (f"compression method {info.compress_type}; "
                                           "only stored and deflate are extracted")
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

