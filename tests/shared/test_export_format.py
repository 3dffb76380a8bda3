import io
import zipfile
from datetime import UTC, date, datetime

import pytest

from shared.export_format import (
    ExportRefused,
    Limits,
    check_export,
    open_export,
    parse_export_name,
    parse_manifest,
    read_member,
)

EML = b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nFrom: A 447700900123 <a@x.com>\r\n\r\nhi\r\n"


def make_zip(members: list[tuple[str, bytes]], manifest: str | None = None,
             compression: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
        if manifest is not None:
            zf.writestr("20261125-TeleMessage_1_20261126003000.mf", manifest)
    buffer.seek(0)
    return zipfile.ZipFile(buffer)


def test_export_name_gives_day_file_number_and_zip_time() -> None:
    name = parse_export_name("202611250000-TeleMessage_3_20261126003015.zip")
    assert name.day == date(2026, 11, 25)
    assert name.file_number == 3
    assert name.zipped_at == datetime(2026, 11, 26, 0, 30, 15, tzinfo=UTC)


def test_other_names_are_accepted_without_a_day() -> None:
    assert parse_export_name("upload-from-sftp.zip").day is None


def test_manifest_count_and_names() -> None:
    manifest = parse_manifest("x.mf", "Count: 2\r\na.eml\r\nb.eml\r\n")
    assert manifest.count == 2 and manifest.names == ("a.eml", "b.eml")


def test_consistent_export_has_no_problems() -> None:
    zf = make_zip([("a.eml", EML), ("b.eml", EML)], "Count: 2\na.eml\nb.eml\n")
    check = check_export(zf)
    assert check.problems == []
    assert [m.name for m in check.accepted] == ["a.eml", "b.eml"]


def test_lying_manifest_is_reported_with_the_names_involved() -> None:
    zf = make_zip([("a.eml", EML), ("extra.eml", EML), ("empty.eml", b"")],
                  "Count: 5\na.eml\nmissing.eml\nempty.eml\n")
    check = check_export(zf)
    problems = {p.code: p for p in check.problems}
    assert "manifest Count: 5, ZIP holds 3" in problems["manifest_count_mismatch"].detail
    assert problems["manifest_listed_missing"].names == ("missing.eml",)
    assert problems["manifest_unlisted"].names == ("extra.eml",)
    assert problems["manifest_listed_empty"].names == ("empty.eml",)
    # the valid members still flow
    assert {m.name for m in check.accepted} == {"a.eml", "extra.eml"}


def test_missing_manifest_is_a_warning_not_a_stop() -> None:
    check = check_export(make_zip([("a.eml", EML)]))
    assert [p.code for p in check.problems] == ["manifest_missing"]
    assert len(check.accepted) == 1


@pytest.mark.parametrize(("name", "reason"), [
    ("../evil.eml", "unsafe_name"),
    ("/abs/evil.eml", "unsafe_name"),
    ("C:/evil.eml", "unsafe_name"),
    ("notes.txt", "not_eml"),
])
def test_hostile_or_foreign_member_names_are_rejected(name: str, reason: str) -> None:
    check = check_export(make_zip([("ok.eml", EML), (name, EML)]))
    rejected = {m.name: m.rejected for m in check.members if m.rejected}
    assert rejected == {name: reason}
    assert [m.name for m in check.accepted] == ["ok.eml"]


def test_duplicate_member_names_are_all_rejected() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zf = make_zip([("a.eml", EML), ("a.eml", EML + b"x")])
    check = check_export(zf)
    assert [m.rejected for m in check.members] == ["duplicate_name", "duplicate_name"]


def test_zip_bomb_by_ratio_and_by_size() -> None:
    bomb = b"\0" * (5 * 1024 * 1024)
    check = check_export(make_zip([("bomb.eml", bomb)]))
    assert check.members[0].rejected == "zip_bomb_ratio"
    limits = Limits(max_member_bytes=1000, max_ratio=10_000)
    check = check_export(make_zip([("big.eml", b"x" * 2000)], compression=zipfile.ZIP_STORED),
                         limits)
    assert check.members[0].rejected == "zip_bomb_member"


def test_total_expansion_cap() -> None:
    limits = Limits(max_total_bytes=len(EML) * 2)
    check = check_export(make_zip([(f"{i}.eml", EML) for i in range(3)]), limits)
    assert [m.rejected for m in check.members] == [None, None, "zip_bomb_total"]


def test_read_member_refuses_more_bytes_than_allowed() -> None:
    zf = make_zip([("a.eml", EML)])
    member = check_export(zf).accepted[0]
    with pytest.raises(zipfile.BadZipFile, match="header lied"):
        list(read_member(zf, member, limit=10))



def raw_zip(entries: int, declared: int | None = None, zip64: bool = False,
            method: int = zipfile.ZIP_STORED) -> bytes:
    """A ZIP of empty members written byte by byte (zipfile is too slow for 300,000), whose
    end record may declare another count than the central directory holds."""
    import struct

    local, central = [], []
    offset = 0
    for i in range(entries):
        name = f"{i}.eml".encode()
        header = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, 0, 0, 0,
                             len(name), 0) + name
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21,
                                   0, 0, 0, len(name), 0, 0, 0, 0, 0, offset) + name)
        local.append(header)
        offset += len(header)
    directory = b"".join(central)
    count = entries if declared is None else declared
    tail = b""
    if zip64:
        tail = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count,
                           len(directory), offset)
        tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + len(directory), 1)
    small = min(count, 0xFFFF)
    tail += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, small, small, len(directory),
                        offset, 0)
    return b"".join(local) + directory + tail


def test_open_export_reads_what_zipfile_reads() -> None:
    for data in (raw_zip(3), raw_zip(3, zip64=True)):
        with open_export(io.BytesIO(data)) as zf:
            assert [i.filename for i in zf.infolist()] == ["0.eml", "1.eml", "2.eml"]


@pytest.mark.parametrize("declared", [None, 5], ids=["honest", "end-record-lies"])
def test_zip_with_too_many_members_is_refused_before_zipfile_lists_them(
        declared: int | None) -> None:
    import time
    import tracemalloc

    data = io.BytesIO(raw_zip(300_000, declared=declared, zip64=declared is None))
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ExportRefused) as refused:
            open_export(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.reason == "too_many_members"
    # zipfile's own list of 300,000 entries takes well over 100 MB; the count takes buffers.
    assert peak < 8 * 1024 * 1024
    assert time.monotonic() - started < 20  # generous: seconds, not minutes


def test_oversized_central_directory_is_refused() -> None:
    with pytest.raises(ExportRefused, match="central directory"):
        open_export(io.BytesIO(raw_zip(100)), Limits(max_central_directory_bytes=1000))


def test_garbage_is_not_a_zip() -> None:
    with pytest.raises(zipfile.BadZipFile):
        open_export(io.BytesIO(b"not a zip at all" * 100))


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_bzip2_and_lzma_members_are_refused_unread(method: int) -> None:
    zf = make_zip([("a.eml", EML), ("b.eml", EML)], "Count: 2\na.eml\nb.eml\n",
                  compression=method)
    check = check_export(zf)
    assert {m.rejected for m in check.members} == {"unsupported_compression"}
    assert check.accepted == []
    # the manifest is not decompressed either
    assert [p.code for p in check.problems][:1] == ["manifest_unreadable"]


@pytest.mark.parametrize("other", ["./TG-1.eml", ".//TG-1.eml"])
def test_names_that_normalise_alike_are_duplicates(other: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zf = make_zip([("TG-1.eml", EML), (other, EML + b"x")])
    check = check_export(zf)
    assert check.accepted == []
    assert {m.rejected for m in check.members} == {"duplicate_name"}
