"""The TeleMessage simulator: organization, EML format, export ZIPs and the export API."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import httpx
import phonenumbers
import pytest

from simulators.telemessage import (
    MAX_ITEM_BYTES,
    SimItem,
    TeleMessageSimulator,
    build_eml,
    build_exports,
    build_large_export,
    generate_day,
    generate_org,
)
from simulators.telemessage.org import Org

DAY = date(2026, 11, 25)
MIB = 1024 * 1024
HEBREW = re.compile("[\u0590-\u05ff]")
ARABIC = re.compile("[\u0600-\u06ff]")
HEADER_ORDER = [
    "Date", "From", "To", "Subject", "Message-ID", "Thread-Index",
    "X-TELEMESSAGE-ArchiveMessageID", "X-TELEMESSAGE-ArchiveInitiator",
    "X-TELEMESSAGE-ArchiveSource", "X-TELEMESSAGE-Network", "X-TELEMESSAGE-MessageType",
    "X-TELEMESSAGE-THREAD_ID", "X-TELEMESSAGE-ThreadName", "X-TELEMESSAGE-SID",
]
GROUP_HEADERS = ["X-TELEMESSAGE-GroupID", "X-TELEMESSAGE-GROUP_NAME"]
TAIL_HEADERS = ["X-TELEMESSAGE-Status", "X-TELEMESSAGE-OriginalMesageIntegrity"]
CALL_HEADERS = ["X-TELEMESSAGE-CallID", "X-TELEMESSAGE-CallType", "X-TELEMESSAGE-CallDirection",
                "X-TELEMESSAGE-CallStart", "X-TELEMESSAGE-CallEnd", "X-TELEMESSAGE-CallDuration"]
MIME_HEADERS = ["MIME-Version", "Content-Type", "Content-Transfer-Encoding"]


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


def text_of(part: EmailMessage) -> str:
    """A text part's content with the MIME encoder's CRLFs and final newline undone."""
    content = part.get_content().replace("\r\n", "\n")
    return content[:-1] if content.endswith("\n") else content


@pytest.fixture(scope="module")
def org() -> Org:
    return generate_org(7)


@pytest.fixture(scope="module")
def items(org: Org) -> list[SimItem]:
    """A day without oversize or large items, so building its EMLs stays fast."""
    return generate_day(org, DAY, 400, seed=7, oversize=0, large_attachments=0, encrypted=2)


def first(items: list[SimItem], predicate: Callable[[SimItem], object]) -> SimItem:
    return next(item for item in items if predicate(item))


# --- organization ---------------------------------------------------------------------------

def test_mobiles_are_valid_unique_and_from_five_countries(org: Org) -> None:
    people = org.employees + org.externals
    mobiles = [p.mobile for p in people]
    assert len(set(mobiles)) == len(mobiles) == 100
    regions = set()
    for mobile in mobiles:
        assert mobile.isdigit()
        number = phonenumbers.parse(f"+{mobile}")
        assert phonenumbers.is_valid_number(number), mobile
        regions.add(phonenumbers.region_code_for_number(number))
    assert regions == {"IL", "GB", "US", "DE", "FR"}


def test_names_emails_groups_and_directory(org: Org) -> None:
    emails = [p.email for p in org.employees]
    assert len(set(emails)) == len(emails)
    for person in org.employees:
        assert person.email is not None and person.email.isascii()
        assert re.fullmatch(r"[a-z][a-z-]*\.[a-z-]+\d*@contoso\.com", person.email), person
    outside = [p.email for p in org.externals]
    assert outside.count(None) > len(outside) / 2
    assert any(e and not e.endswith("@contoso.com") for e in outside)
    names = [p.name for p in org.employees + org.externals]
    assert any(HEBREW.search(n) for n in names) and any(ARABIC.search(n) for n in names)
    assert any(not n.isascii() and not HEBREW.search(n) and not ARABIC.search(n)
               and re.search("[À-ž]", n) for n in names)
    staff = set(org.employees)
    for group in org.groups:
        assert 3 <= len(group.members) <= 8
        assert sum(m in staff for m in group.members) >= 2
    assert any(not g.name.isascii() for g in org.groups)
    assert org.employee_directory()[0] == {"display_name": org.employees[0].name,
                                           "mail": org.employees[0].email,
                                           "mobile": org.employees[0].mobile}


def test_organization_is_deterministic() -> None:
    assert generate_org(7) == generate_org(7)
    assert generate_org(7) != generate_org(8)


# --- a day of activity ----------------------------------------------------------------------

def test_same_seed_same_emls_other_seed_other_emls(org: Org, items: list[SimItem]) -> None:
    again = generate_day(org, DAY, 400, seed=7, oversize=0, large_attachments=0, encrypted=2)
    assert [build_eml(i) for i in again[:60]] == [build_eml(i) for i in items[:60]]
    other = generate_day(org, DAY, 400, seed=8, oversize=0, large_attachments=0, encrypted=2)
    assert {i.archive_id for i in other}.isdisjoint(i.archive_id for i in items)
    assert build_eml(other[0]) != build_eml(items[0])


def test_day_mix_order_and_initiators(org: Org) -> None:
    day = generate_day(org, DAY, 2000, seed=3)
    kinds = Counter(item.kind for item in day)
    assert 0.64 < kinds["text"] / 2000 < 0.78
    assert 0.11 < kinds["media"] / 2000 < 0.19
    assert 0.03 < kinds["deleted"] / 2000 < 0.07
    assert 0.07 < kinds["call"] / 2000 < 0.13
    assert 0.33 < sum(i.group is not None for i in day) / 2000 < 0.47
    midnight = datetime(2026, 11, 25, tzinfo=UTC)
    times = [item.captured_at for item in day]
    assert times == sorted(times)
    assert all(midnight <= t < midnight + timedelta(days=1) and t.microsecond == 0
               for t in times)
    staff = set(org.employees)
    for item in day:
        assert item.initiator in staff
        assert item.initiator in (item.sender, *item.recipients)
        assert re.fullmatch(r"(DELETE_FOR_ME-)?TG-20261125-[0-9a-f]{8}", item.archive_id)
    repeated = [a for a, n in Counter(i.archive_id for i in day).items() if n > 1]
    assert all(n <= 2 for n in Counter(i.archive_id for i in day).values())
    assert 0 < len(repeated) < 40  # duplicate captures of group messages only


def test_oversize_and_large_attachment_items(org: Org) -> None:
    day = generate_day(org, DAY, 300, seed=5, oversize=3, large_attachments=5)
    biggest = [max(a.size for a in i.attachments) for i in day if i.attachments]
    assert sum(size > MAX_ITEM_BYTES for size in biggest) == 3
    assert sum(3.2 * MIB <= size <= 7 * MIB for size in biggest) == 5
    assert all(5_000 <= size <= 600_000 for size in biggest
               if size < 3 * MIB)
    oversize = first(day, lambda i: i.attachments and i.attachments[0].size > MAX_ITEM_BYTES)
    assert len(build_eml(oversize)) > MAX_ITEM_BYTES
    large = max((i for i in day if i.attachments and i.attachments[0].size < MAX_ITEM_BYTES),
                key=lambda i: i.attachments[0].size)  # the largest is the strictest check
    assert 3 * MIB < len(build_eml(large)) < MAX_ITEM_BYTES
    with pytest.raises(ValueError):
        generate_day(org, DAY, 5, seed=5, oversize=3, large_attachments=5)


# --- EML format -----------------------------------------------------------------------------

def test_one_to_one_text_message_headers(items: list[SimItem]) -> None:
    item = first(items, lambda i: i.kind == "text" and i.group is None and not i.encrypted
                 and i.recipients[0].email is None and i.sender.name.isascii()
                 and i.recipients[0].name.isascii())
    raw = build_eml(item)
    assert raw.count(b"\n") == raw.count(b"\r\n")
    message = parse(raw)
    assert list(message.keys()) == HEADER_ORDER + TAIL_HEADERS + MIME_HEADERS
    sender, recipient = item.sender, item.recipients[0]
    assert message["Date"] == item.captured_at.strftime("%a, %d %b %Y %H:%M:%S +0000")
    assert message["From"] == f"{sender.first} {sender.last} {sender.mobile} <{sender.email}>"
    assert f"To: {recipient.first} {recipient.last} {recipient.mobile} <>\r\n".encode() in raw
    assert message["Subject"] == f"Telegram: {sender.name} to {recipient.name}"
    assert message["Message-ID"] == f"<{item.archive_id}@telemessage.com>"
    index = base64.b64decode(message["Thread-Index"])
    assert len(index) == 22 and index[0] == 1
    assert message["X-TELEMESSAGE-ArchiveMessageID"] == item.archive_id
    assert message["X-TELEMESSAGE-ArchiveInitiator"] == item.initiator.mobile
    assert message["X-TELEMESSAGE-ArchiveSource"] == "Telegram Archiver"
    assert message["X-TELEMESSAGE-Network"] == "Telegram"
    assert message["X-TELEMESSAGE-MessageType"] == "Message"
    assert re.fullmatch(r"tm-\d+", message["X-TELEMESSAGE-THREAD_ID"])
    other = recipient if item.initiator == sender else sender
    assert message["X-TELEMESSAGE-ThreadName"] == other.name
    assert re.fullmatch(r"[0-9a-f]{32}", message["X-TELEMESSAGE-SID"])
    assert message["X-TELEMESSAGE-Status"] == ("Sent" if item.initiator == sender else "Received")
    assert message["X-TELEMESSAGE-OriginalMesageIntegrity"].strip() == hashlib.sha256(
        item.text.encode()).hexdigest()
    assert not message.is_multipart()
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert text_of(message) == item.text


def test_hebrew_display_name_round_trips_rfc2047(items: list[SimItem]) -> None:
    item = first(items, lambda i: HEBREW.search(i.sender.name) and not i.encrypted)
    raw = build_eml(item)
    from_line = raw.split(b"\r\nTo:")[0].split(b"From: ")[1]
    assert from_line.startswith(b"=?utf-8?")
    assert parse(raw)["From"].addresses[0].display_name == item.sender.display
    legacy = BytesParser(policy=policy.compat32).parsebytes(raw)
    assert str(make_header(decode_header(legacy["From"]))).startswith(item.sender.display)


def test_every_header_decodes_to_the_item(items: list[SimItem]) -> None:
    for item in items[:250]:
        message = parse(build_eml(item))
        assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [
            (p.display, p.email or "<>") for p in item.recipients]
        assert message["Subject"] == item.subject
        assert message["X-TELEMESSAGE-ThreadName"] == item.thread_name


def test_group_message_headers(items: list[SimItem]) -> None:
    item = first(items, lambda i: i.kind == "text" and i.group is not None
                 and not i.group.name.isascii())
    raw = build_eml(item)
    assert b"X-TELEMESSAGE-GROUP_NAME: =?utf-8?" in raw
    message = parse(raw)
    assert list(message.keys()) == HEADER_ORDER + GROUP_HEADERS + TAIL_HEADERS + MIME_HEADERS
    assert message["X-TELEMESSAGE-GroupID"] == item.group.group_id
    assert message["X-TELEMESSAGE-GROUP_NAME"] == item.group.name
    assert message["X-TELEMESSAGE-ThreadName"] == item.group.name
    assert message["Subject"] == f"Telegram: {item.sender.name} in {item.group.name}"
    assert {a.display_name for a in message["To"].addresses} == {
        m.display for m in item.group.members if m != item.sender}


def test_media_message_mime_layout(items: list[SimItem]) -> None:
    media = [i for i in items if i.kind == "media" and not i.encrypted]
    assert any(i.html for i in media) and any(not i.text for i in media)
    magic = {"image/jpeg": b"\xff\xd8\xff", "application/pdf": b"%PDF-", "audio/ogg": b"OggS",
             "video/mp4": b"ftyp",
             "application/vnd.openxmlformats-officedocument.wordprocessingml.document": b"PK"}
    for item in media:
        raw = build_eml(item)
        message = parse(raw)
        assert message.get_content_type() == "multipart/mixed"
        parts = list(message.iter_parts())
        body = parts[0]
        if item.html:
            assert body.get_content_type() == "multipart/alternative"
            assert [p.get_content_type() for p in body.iter_parts()] == ["text/plain",
                                                                        "text/html"]
            body = next(body.iter_parts())
        assert body.get_content_type() == "text/plain" and text_of(body) == item.text
        assert len(parts) == 1 + len(item.attachments)
        for part, attachment in zip(parts[1:], item.attachments, strict=True):
            assert part.get_content_disposition() == "attachment"
            assert part["Content-Transfer-Encoding"] == "base64"
            assert part.get_content_type() == attachment.content_type
            assert part.get_filename() == attachment.filename
            data = part.get_content()
            assert data == attachment.data() and len(data) == attachment.size
            assert magic[attachment.content_type] in data[:12]
            if not attachment.filename.isascii():
                assert b"filename*" in raw and b"utf-8''" in raw


def test_deleted_event(items: list[SimItem]) -> None:
    item = first(items, lambda i: i.kind == "deleted" and not i.encrypted
                 and "\n" in i.original.text)
    original = item.original
    assert items.index(original) < items.index(item)
    message = parse(build_eml(item))
    assert message["X-TELEMESSAGE-ArchiveMessageID"] == f"DELETE_FOR_ME-{original.archive_id}"
    assert message["Message-ID"] == f"<DELETE_FOR_ME-{original.archive_id}@telemessage.com>"
    assert message["Subject"] == f"DELETED For Me - {original.subject}"
    assert message["X-TELEMESSAGE-MessageType"] == "Event"
    assert message["X-TELEMESSAGE-Status"] == "Deleted"
    assert message["X-TELEMESSAGE-THREAD_ID"] == original.thread_id
    deleter = original.initiator
    assert message["From"].addresses[0].display_name == deleter.display
    assert {a.display_name for a in message["To"].addresses} == {
        p.display for p in (original.sender, *original.recipients) if p != deleter}
    quoted = "\n".join(f"> {line}" if line else ">" for line in original.text.split("\n"))
    sent = original.captured_at.strftime("%a, %d %b %Y %H:%M:%S +0000")
    assert text_of(message) == (f"This message was deleted for me by {deleter.display}.\n"
                                f"Original message sent {sent}:\n{quoted}")
    assert quoted.count("\n> ") >= 2


def test_call_headers(items: list[SimItem]) -> None:
    for outcome in ("Answered", "Missed"):
        item = first(items, lambda i, o=outcome: i.kind == "call" and i.call.outcome == o
                     and not i.encrypted)
        message = parse(build_eml(item))
        assert list(message.keys())[-len(CALL_HEADERS) - 3:-3] == CALL_HEADERS
        assert message["X-TELEMESSAGE-MessageType"] == "Call"
        assert message["X-TELEMESSAGE-Status"] == outcome
        video = item.call.video
        assert message["X-TELEMESSAGE-CallType"] == ("Video" if video else "Voice")
        assert message["X-TELEMESSAGE-CallID"] == item.call.call_id
        assert message["X-TELEMESSAGE-CallDirection"] == (
            "Outgoing" if item.sender == item.initiator else "Incoming")
        start = datetime.strptime(message["X-TELEMESSAGE-CallStart"], "%Y-%m-%dT%H:%M:%SZ")
        end = datetime.strptime(message["X-TELEMESSAGE-CallEnd"], "%Y-%m-%dT%H:%M:%SZ")
        assert start.replace(tzinfo=UTC) == item.captured_at and end > start
        duration = int(message["X-TELEMESSAGE-CallDuration"])
        assert duration == (int((end - start).total_seconds()) if outcome == "Answered" else 0)
        callee = item.group.name if item.group else item.recipients[0].name
        medium = "video" if video else "voice"
        assert message["Subject"] == f"Telegram {medium} call: {item.sender.name} to {callee}"
        h, m, s = duration // 3600, duration // 60 % 60, duration % 60
        assert text_of(message) == (f"{medium.title()} call from {item.sender.name} to {callee}: "
                                    f"{outcome}, duration {h:02d}:{m:02d}:{s:02d}.")


def test_duplicate_capture_pair(items: list[SimItem]) -> None:
    pair = next((a, b) for a, b in zip(items, items[1:], strict=False)
                if a.archive_id == b.archive_id)
    a, b = (parse(build_eml(i)) for i in pair)
    assert a["Message-ID"] == b["Message-ID"]
    assert a["X-TELEMESSAGE-ArchiveMessageID"] == b["X-TELEMESSAGE-ArchiveMessageID"]
    assert a["X-TELEMESSAGE-ArchiveInitiator"] != b["X-TELEMESSAGE-ArchiveInitiator"]
    assert a["X-TELEMESSAGE-SID"] != b["X-TELEMESSAGE-SID"]
    assert a["X-TELEMESSAGE-GroupID"] == b["X-TELEMESSAGE-GroupID"]
    assert a["Date"] == b["Date"] and a["From"] == b["From"] and a["To"] == b["To"]
    assert {pair[0].initiator, pair[1].initiator} <= set(pair[0].group.members)


def test_encrypted_items_have_key_headers_and_no_plaintext(items: list[SimItem]) -> None:
    encrypted = [i for i in items if i.encrypted]
    assert len(encrypted) == 2
    for item in encrypted:
        raw = build_eml(item)
        message = parse(raw)
        assert len(base64.b64decode("".join(message["X-TELEMESSAGE-ENC-DATAKEY"].split()))) == 256
        assert message["X-TELEMESSAGE-ENC-KEY-ID"]
        assert message["X-TELEMESSAGE-OriginalMesageIntegrity"].strip() == hashlib.sha256(
            item.body.encode()).hexdigest()
        leaves = [p for p in message.walk() if not p.is_multipart()]
        assert len(leaves) >= 1
        for leaf in leaves:
            assert leaf["Content-Transfer-Encoding"] == "base64"
            assert len(leaf.get_payload(decode=True)) % 16 == 0
        assert item.body.encode() not in raw


# --- export ZIPs ----------------------------------------------------------------------------

def test_export_zips_manifest_and_determinism(org: Org, tmp_path: Path) -> None:
    day = generate_day(org, DAY, 120, seed=11, oversize=0, large_attachments=0)
    assert len({i.archive_id for i in day}) < 120  # holds a duplicate capture
    created = datetime(2026, 11, 26, 0, 30, 5, tzinfo=UTC)
    exports = build_exports(day, DAY, created, 50, out_dir=tmp_path / "a")
    assert [e.name for e in exports] == [
        f"202611250000-TeleMessage_{n}_20261126003005.zip" for n in (1, 2, 3)]
    assert [e.item_count for e in exports] == [50, 50, 20]
    names = []
    for export in exports:
        assert export.size == export.path.stat().st_size
        assert export.sha256 == hashlib.sha256(export.path.read_bytes()).hexdigest()
        with zipfile.ZipFile(export.path) as archive:
            members = archive.namelist()
            manifest_name = export.name.removesuffix(".zip") + ".mf"
            emls = [m for m in members if m != manifest_name]
            assert len(emls) == len(members) - 1 and all(m.endswith(".eml") for m in emls)
            lines = archive.read(manifest_name).decode().splitlines()
            assert lines[0] == f"Count: {len(emls)}" and lines[1:] == emls
            assert all(archive.getinfo(m).file_size > 0 for m in emls)
        names += emls
    assert len(set(names)) == 120
    assert any(re.fullmatch(r"TG-20261125-[0-9a-f]{8}-2\.eml", n) for n in names)
    again = build_exports(day, DAY, created, 50, out_dir=tmp_path / "b")
    assert [e.sha256 for e in again] == [e.sha256 for e in exports]
    other = generate_day(org, DAY, 120, seed=12, oversize=0, large_attachments=0)
    assert build_exports(other, DAY, created, 50, out_dir=tmp_path / "c")[0].sha256 \
        != exports[0].sha256


def test_large_export_is_unique_and_counted(tmp_path: Path) -> None:
    export = build_large_export(tmp_path / "big.zip", 3_000_000, seed=2)
    assert export.size >= 3_000_000
    with zipfile.ZipFile(export.path) as archive:
        members = archive.namelist()
        emls = members[:-1]
        assert members[-1] == "big.mf"
        assert archive.read("big.mf").decode().splitlines() == [f"Count: {len(emls)}", *emls]
        assert len(set(emls)) == len(emls) == export.item_count > 200
        for name in emls[::50]:
            header = parse(archive.read(name))["X-TELEMESSAGE-ArchiveMessageID"]
            assert f"{header}.eml" == name


# --- export API -----------------------------------------------------------------------------

class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


NOON_AFTER = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock(NOON_AFTER)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, clock: Clock) -> Iterator[TeleMessageSimulator]:
    simulator = TeleMessageSimulator(
        tmp_path_factory.mktemp("telemessage"), days=[DAY, DAY + timedelta(days=1)],
        items_per_day=60, max_items_per_zip=25, oversize=0, large_attachments=1, encrypted=1,
        clock=clock)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def api(sim: TeleMessageSimulator, clock: Clock) -> Iterator[httpx.Client]:
    """A client logged in for a week of simulated time; faults and clock are reset after."""
    clock.now = NOON_AFTER
    sim.faults.token_ttl = 7 * 86400
    with httpx.Client(base_url=sim.url, timeout=10) as client:
        token = client.post("/api/v1/login", json={"username": "archiver",
                                                  "password": "s3cret"}).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        sim.faults.token_ttl = 3600
        yield client
    sim.faults.fail_downloads_after_bytes = None
    sim.faults.unavailable_ratio = 0.0
    sim.faults.token_ttl = 3600
    clock.now = NOON_AFTER


WINDOW = {"created_after": "2026-11-01T00:00:00Z", "created_before": "2026-12-01T00:00:00Z"}


def test_login(sim: TeleMessageSimulator) -> None:
    with httpx.Client(base_url=sim.url) as client:
        ok = client.post("/api/v1/login", json={"username": "archiver", "password": "s3cret"})
        assert ok.status_code == 200
        assert ok.json()["token_type"] == "Bearer" and ok.json()["expires_in"] == 3600
        for body in ({"username": "archiver", "password": "wrong"},
                     {"username": "someone", "password": "s3cret"}):
            denied = client.post("/api/v1/login", json=body)
            assert denied.status_code == 401
            assert denied.json()["error"] == "invalid_credentials"
        assert client.post("/api/v1/login", content=b"not json").status_code == 400


def test_listing_window_and_clock(api: httpx.Client, sim: TeleMessageSimulator,
                                  clock: Clock) -> None:
    listed = api.get("/api/v1/exports", params=WINDOW).json()["exports"]
    assert [e["name"] for e in listed] == [
        f"202611250000-TeleMessage_{n}_20261126003000.zip" for n in (1, 2, 3)]
    by_name = {e.name: e for e in sim.exports}
    for entry in listed:
        export = by_name[entry["name"]]
        assert entry == {"name": export.name, "size": export.size, "sha256": export.sha256,
                         "created_at": "2026-11-26T00:30:00Z"}
    at = "2026-11-26T00:30:00Z"
    half_open = {"created_after": "2026-11-01T00:00:00Z", "created_before": at}
    assert api.get("/api/v1/exports", params=half_open).json()["exports"] == []
    from_at = {"created_after": at, "created_before": "2026-11-26T00:30:01+00:00"}
    assert len(api.get("/api/v1/exports", params=from_at).json()["exports"]) == 3
    clock.now = datetime(2026, 11, 27, 0, 29, 59, tzinfo=UTC)
    assert len(api.get("/api/v1/exports", params=WINDOW).json()["exports"]) == 3
    clock.now = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
    later = api.get("/api/v1/exports", params=WINDOW).json()["exports"]
    assert [e["created_at"] for e in later] == ["2026-11-26T00:30:00Z"] * 3 + [
        "2026-11-27T00:30:00Z"] * 3
    for bad in ({}, {"created_after": WINDOW["created_after"]},
                {"created_after": "yesterday", "created_before": WINDOW["created_before"]},
                {"created_after": "2026-11-01T00:00:00", "created_before": "2026-12-01T00:00:00"},
                {"created_after": WINDOW["created_before"],
                 "created_before": WINDOW["created_after"]}):
        assert api.get("/api/v1/exports", params=bad).status_code == 400


def test_tokens_are_required_and_expire(api: httpx.Client, sim: TeleMessageSimulator,
                                        clock: Clock) -> None:
    anonymous = httpx.get(f"{sim.url}/api/v1/exports", params=WINDOW)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_token"
    forged = httpx.get(f"{sim.url}/api/v1/exports", params=WINDOW,
                       headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401
    sim.faults.token_ttl = 60
    token = httpx.post(f"{sim.url}/api/v1/login", json={"username": "archiver",
                                                        "password": "s3cret"}).json()
    assert token["expires_in"] == 60
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    clock.now += timedelta(seconds=59)
    assert httpx.get(f"{sim.url}/api/v1/exports", params=WINDOW, headers=headers).is_success
    clock.now += timedelta(seconds=1)
    expired = httpx.get(f"{sim.url}/api/v1/exports", params=WINDOW, headers=headers)
    assert expired.status_code == 401 and expired.json()["error"] == "invalid_token"


def test_download_is_the_file(api: httpx.Client, sim: TeleMessageSimulator) -> None:
    export = sim.exports[2]  # holds the large attachment, several MB
    response = api.get(f"/api/v1/exports/{export.name}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip"
    assert int(response.headers["Content-Length"]) == export.size > 3 * MIB
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"] == f'"{export.sha256}"'
    assert hashlib.sha256(response.content).hexdigest() == export.sha256
    assert response.content == export.path.read_bytes()


def test_range_requests(api: httpx.Client, sim: TeleMessageSimulator) -> None:
    export = sim.exports[0]
    data = export.path.read_bytes()
    url = f"/api/v1/exports/{export.name}"
    middle = api.get(url, headers={"Range": "bytes=10-19"})
    assert middle.status_code == 206 and middle.content == data[10:20]
    assert middle.headers["Content-Range"] == f"bytes 10-19/{export.size}"
    tail = api.get(url, headers={"Range": "bytes=1000-"})
    assert tail.status_code == 206 and tail.content == data[1000:]
    assert int(tail.headers["Content-Length"]) == export.size - 1000
    suffix = api.get(url, headers={"Range": "bytes=-5"})
    assert suffix.status_code == 206 and suffix.content == data[-5:]
    beyond = api.get(url, headers={"Range": f"bytes={export.size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{export.size}"
    assert api.get("/api/v1/exports/missing.zip").json() == {
        "error": "not_found", "message": "No export named missing.zip"}
    not_yet = next(e for e in sim.exports if e.created_at > NOON_AFTER)
    assert api.get(f"/api/v1/exports/{not_yet.name}").status_code == 404


def test_dropped_download_resumes_with_range(api: httpx.Client,
                                             sim: TeleMessageSimulator) -> None:
    export = sim.exports[1]
    url = f"/api/v1/exports/{export.name}"
    sim.faults.fail_downloads_after_bytes = 100_000
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), api.stream("GET", url) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            received += chunk
    assert len(received) == 100_000
    rest = api.get(url, headers={"Range": f"bytes={len(received)}-"})
    assert rest.status_code == 206
    assert hashlib.sha256(bytes(received) + rest.content).hexdigest() == export.sha256
    assert api.get(url).content == export.path.read_bytes()  # once per export


def test_unavailable_ratio(api: httpx.Client, sim: TeleMessageSimulator) -> None:
    sim.faults.unavailable_ratio = 1.0
    response = api.get("/api/v1/exports", params=WINDOW)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    sim.faults.unavailable_ratio = 0.0
    assert api.get("/api/v1/exports", params=WINDOW).status_code == 200


def test_add_export_serves_any_file(api: httpx.Client, sim: TeleMessageSimulator,
                                    tmp_path: Path) -> None:
    damaged = tmp_path / "202611250000-TeleMessage_9_20261126010000.zip"
    damaged.write_bytes(b"PK\x03\x04 truncated")
    sim.add_export(damaged, datetime(2026, 11, 26, 1, 0, tzinfo=UTC))
    listed = api.get("/api/v1/exports", params=WINDOW).json()["exports"]
    assert listed[-1]["name"] == damaged.name
    assert api.get(f"/api/v1/exports/{damaged.name}").content == damaged.read_bytes()


def test_second_start_reuses_generated_zips(sim: TeleMessageSimulator, clock: Clock) -> None:
    def twin(items_per_day: int) -> TeleMessageSimulator:
        return TeleMessageSimulator(sim.workdir, days=sim.days, items_per_day=items_per_day,
                                    max_items_per_zip=25, oversize=0, large_attachments=1,
                                    encrypted=1, clock=clock)

    generated = [e for e in sim.exports if e.item_count is not None]
    mtimes = [e.path.stat().st_mtime_ns for e in generated]
    with twin(60) as same:
        assert same.exports == generated
        assert [e.path.stat().st_mtime_ns for e in same.exports] == mtimes
    with twin(61) as changed:
        assert {e.path for e in changed.exports}.isdisjoint(e.path for e in generated)


def test_command_line_serves_the_api(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.telemessage", "--port", "0", "--workdir",
         str(tmp_path), "--days", "2026-11-25", "--items", "20", "--oversize", "0",
         "--large-attachments", "0", "--encrypted", "0"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        assert "archiver" in process.stdout.readline()
        login = httpx.post(f"{url}/api/v1/login", json={"username": "archiver",
                                                        "password": "s3cret"})
        assert login.status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
