"""The parser against EMLs built the way TeleMessage builds them, and against damaged input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from shared.eml import MAX_HEADER_FIELD_BYTES, InvalidItem, parse_eml
from shared.item import Direction, ItemKind
from shared.phone import to_e164
from simulators.telemessage.day import generate_day
from simulators.telemessage.eml_builder import SimItem, build_eml
from simulators.telemessage.org import Person, generate_org
from tests.conftest import CORPORA

ORG = generate_org(seed=11, employees=20, externals=10)
DAY = generate_day(ORG, date(2026, 11, 25), items=400, seed=11, oversize=0,
                   large_attachments=1, encrypted=2)


def first(kind: str, predicate=lambda item: True) -> SimItem:  # noqa: ANN001
    return next(i for i in DAY if i.kind == kind and not i.encrypted and predicate(i))


def person_matches(parsed, person: Person) -> bool:  # noqa: ANN001
    return (parsed.name == person.name and parsed.phone == to_e164(person.mobile)
            and parsed.email == (person.email.lower() if person.email else None))


@pytest.mark.parametrize("sim", [i for i in DAY if not i.encrypted][:150],
                         ids=lambda i: f"{i.kind}-{i.archive_id}")
def test_every_generated_item_parses_to_its_ground_truth(sim: SimItem) -> None:
    item = parse_eml(build_eml(sim))
    assert item.archive_key == sim.archive_id
    assert item.captured_at == sim.captured_at
    assert person_matches(item.sender, sim.sender)
    assert len(item.recipients) == len(sim.recipients)
    assert all(person_matches(p, s) for p, s in zip(item.recipients, sim.recipients, strict=True))
    assert item.chat.thread_id == sim.thread_id
    assert item.chat.is_group == (sim.group is not None)
    if sim.group is not None:
        assert item.chat.group_id == sim.group.group_id
        assert item.chat.group_name == sim.group.name
    assert item.archive_initiator == to_e164(sim.initiator.mobile)
    expected_direction = Direction.OUTGOING if sim.sender == sim.initiator else Direction.INCOMING
    assert item.direction is expected_direction
    assert [(a.name, a.content_type, a.data) for a in item.attachments] == [
        (a.filename, a.content_type, a.data()) for a in sim.attachments]
    assert item.text == sim.body
    assert any(name.lower() == "x-telemessage-archivemessageid" for name, _ in
               item.telemessage_headers)


def test_deleted_event_carries_the_original_text_and_is_marked() -> None:
    sim = first("deleted")
    item = parse_eml(build_eml(sim))
    assert item.kind is ItemKind.DELETED
    assert item.archive_key.startswith("DELETE_FOR_ME-")
    assert item.deleted is not None and sim.original is not None
    assert item.deleted.original_text == sim.original.body
    assert item.deleted.original_sent == sim.original.captured_at
    assert item.deleted.original_archive_id == sim.original.archive_id


def test_call_record_fields() -> None:
    sim = first("call", lambda i: i.call.outcome == "Answered")
    item = parse_eml(build_eml(sim))
    assert item.kind is ItemKind.CALL and item.call is not None and sim.call is not None
    assert item.call.status == "Answered"
    assert item.call.duration_seconds == sim.call.duration
    assert item.call.start == sim.captured_at
    assert item.call.call_type == ("Video" if sim.call.video else "Voice")


def test_rtl_and_emoji_text_survive() -> None:
    sim = first("text", lambda i: any("\u0590" <= ch <= "\u06ff" for ch in i.text))
    assert parse_eml(build_eml(sim)).text == sim.text


def test_encrypted_byok_item_is_quarantined_never_imported_as_ciphertext() -> None:
    sim = next(i for i in DAY if i.encrypted)
    with pytest.raises(InvalidItem) as caught:
        parse_eml(build_eml(sim))
    assert caught.value.reason == "encrypted_byok"


def test_external_contact_without_email_keeps_name_and_number() -> None:
    item = parse_eml(b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
                     b"From: Ext Person 447700900123 <>\r\n"
                     b"To: Dana Levi 972541234567 <dana.levi@contoso.com>\r\n\r\nhi\r\n")
    assert (item.sender.name, item.sender.phone, item.sender.email) == (
        "Ext Person", "+447700900123", None)


BAD = {
    "empty": b"",
    "unparsable_date": b"Date: yesterday-ish\r\nFrom: A 447700900123 <a@x.com>\r\n\r\nhi",
    "no_participants": b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nSubject: x\r\n\r\nhi",
    "header_too_large": (b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nX-Big: "
                         + b"a" * (MAX_HEADER_FIELD_BYTES + 10) + b"\r\n\r\nhi"),
    "truncated_mime": (b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nFrom: A 447700900123 <a@x.com>"
                       b"\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                       b"Content-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: image/jp"),
}


@pytest.mark.parametrize("reason", sorted(BAD))
def test_bad_input_gets_its_own_reason(reason: str) -> None:
    with pytest.raises(InvalidItem) as caught:
        parse_eml(BAD[reason])
    assert caught.value.reason == reason
    assert caught.value.detail


def test_truncated_generated_eml_is_quarantined() -> None:
    sim = first("media")
    data = build_eml(sim)
    with pytest.raises(InvalidItem) as caught:
        parse_eml(data[: len(data) // 2])
    assert caught.value.reason == "truncated_mime"


CORPUS = sorted(CORPORA.rglob("*.eml"))


def test_corpus_is_present() -> None:
    assert len(CORPUS) > 100


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_message_becomes_an_item_or_a_reasoned_quarantine(path: Path) -> None:
    try:
        item = parse_eml(path.read_bytes())
    except InvalidItem as invalid:
        assert invalid.reason in {"unparsable_date", "truncated_mime", "no_participants",
                                  "header_too_large", "malformed_mime", "empty"}
        assert invalid.detail
        return
    assert item.archive_key
    assert item.captured_at.tzinfo is not None
    assert item.participants
    assert item.to_json()["archive_key"] == item.archive_key


# ---- Best-effort mode (DAMAGED_POLICY=best_effort) -------------------------------------------

EXPORT_DAY = datetime(2026, 11, 25, tzinfo=UTC)


def test_best_effort_reads_a_truncated_multipart_and_names_the_defect() -> None:
    sim = first("media", lambda i: len(i.attachments) >= 1 and i.attachments[0].size > 2000)
    data = build_eml(sim)
    cut = data[: data.index(b"filename=") + 2000]  # inside the first attachment
    item = parse_eml(cut, fallback_date=EXPORT_DAY)
    assert [d.code for d in item.defects] == ["truncated_mime"]
    assert "CloseBoundaryNotFoundDefect" in item.defects[0].detail
    assert item.text == sim.body  # what could be read is kept
    assert item.captured_at == sim.captured_at  # the Date was readable
    assert item.archive_key == sim.archive_id
    assert person_matches(item.sender, sim.sender)


def test_best_effort_uses_the_fallback_date_when_there_is_none() -> None:
    sim = first("text")
    data = build_eml(sim)
    start = data.index(b"Date: ")
    undated = data[:start] + data[data.index(b"\r\n", start) + 2:]
    with pytest.raises(InvalidItem, match="unparsable_date"):
        parse_eml(undated)
    item = parse_eml(undated, fallback_date=EXPORT_DAY)
    assert item.captured_at == EXPORT_DAY
    assert [d.code for d in item.defects] == ["unparsable_date"]
    assert item.text == sim.body
    unparsable = parse_eml(BAD["unparsable_date"], fallback_date=EXPORT_DAY)
    assert unparsable.captured_at == EXPORT_DAY and "yesterday-ish" in unparsable.defects[0].detail


def test_best_effort_keeps_a_sound_item_free_of_defects() -> None:
    sim = first("media")
    assert parse_eml(build_eml(sim), fallback_date=EXPORT_DAY).defects == ()


@pytest.mark.parametrize("reason", ["empty", "no_participants", "header_too_large"])
def test_best_effort_still_refuses_what_cannot_be_attributed(reason: str) -> None:
    with pytest.raises(InvalidItem) as caught:
        parse_eml(BAD[reason], fallback_date=EXPORT_DAY)
    assert caught.value.reason == reason


def test_best_effort_never_imports_byok_ciphertext() -> None:
    sim = next(i for i in DAY if i.encrypted)
    with pytest.raises(InvalidItem, match="encrypted_byok"):
        parse_eml(build_eml(sim), fallback_date=EXPORT_DAY)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_best_effort_leaves_only_unattributable_corpus_messages_quarantined(path: Path) -> None:
    try:
        item = parse_eml(path.read_bytes(), fallback_date=EXPORT_DAY)
    except InvalidItem as invalid:
        assert invalid.reason in {"no_participants", "header_too_large", "empty",
                                  "encrypted_byok"}
        return
    assert item.participants
    assert {d.code for d in item.defects} <= {"truncated_mime", "malformed_mime",
                                              "unparsable_date"}


HEAD = b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nTo: Dana Levi 972541234567 <dana@contoso.com>\r\n"


def _timed_parse(data: bytes):  # noqa: ANN202
    import time

    started = time.monotonic()
    item = parse_eml(data)
    return item, time.monotonic() - started


def test_html_body_of_many_angle_brackets_parses_in_seconds() -> None:
    body = b"<b>bold</b> tail" + b"<" * 500_000  # no ">" after them: every one rescanned
    item, seconds = _timed_parse(HEAD + b"From: A B 447700900123 <a@contoso.com>\r\n"
                                 b"Content-Type: text/html; charset=utf-8\r\n\r\n" + body)
    assert seconds < 10  # the old regex took minutes; this is one pass
    assert item.text == "bold tail" + "<" * 500_000


@pytest.mark.parametrize("html", ["a<b>c", "<>x<", "<<a>b>", "x > y < z", "<a\n>t<>", "<", ""])
def test_tag_stripping_keeps_what_the_old_regex_kept(html: str) -> None:
    import re

    from shared.eml import _strip_tags

    assert _strip_tags(html) == re.sub(r"<[^>]+>", "", html)


def test_display_names_full_of_commas_parse_in_seconds() -> None:
    entry = b'To: "' + b"," * 30_000 + b'x 447700900123" <x@contoso.com>\r\n'
    item, seconds = _timed_parse(HEAD + b"From: A B 447700900123 <a@contoso.com>\r\n"
                                 + entry * 6 + b"\r\nhi\r\n")
    assert seconds < 10  # about a minute before (the trailing-number regex backtracked)
    assert len(item.recipients) == 7


def test_utf7_body_with_a_lone_surrogate_becomes_encodable_text() -> None:
    item = parse_eml(HEAD + b"From: A B 447700900123 <a@contoso.com>\r\n"
                     b"Content-Type: text/plain; charset=utf-7\r\n\r\nhi +2D0-\r\n")
    assert item.text == "hi \ufffd"
    item.text.encode("utf-8")  # what rendering, JSON and logging do; raised before


def _people(header: bytes) -> list:  # noqa: ANN001
    item = parse_eml(b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nFrom: " + header
                     + b"\r\n\r\nhi\r\n")
    return [item.sender, *item.recipients]


def test_the_number_is_the_last_word_of_the_display_part() -> None:
    (dana,) = _people(b"Dana Levi 972541234567 <dana.levi@contoso.com>")
    assert (dana.name, dana.phone, dana.email, dana.routing_conflict) == (
        "Dana Levi", "+972541234567", "dana.levi@contoso.com", None)


@pytest.mark.parametrize(("header", "conflict", "phone"), [
    # a contact who named itself after someone's number: TeleMessage appends its own
    (b"Eve 447700900123 15551234567 <>", "number_in_name", "+15551234567"),
    (b"447700900123 Eve <>", "number_in_name", None),
    (b"Eve +44 7700 900123 <>", "number_in_name", None),
    # an unquoted name splits into entries: the address it smuggles is not in place
    (b"Eve <ceo@contoso.com> 15551234567 <>", "not_participant_format", None),
    (b'"Eve ceo@contoso.com" 15551234567 <>', "address_in_name", "+15551234567"),
    (b"Ext Person <447700900123>", "not_an_address", None),
    (b"dana@contoso.com", "not_participant_format", None),
])
def test_free_text_that_could_pass_for_a_number_or_address_is_a_routing_conflict(
        header: bytes, conflict: str | None, phone: str | None) -> None:
    people = _people(header)
    assert people[0].routing_conflict == conflict
    assert people[0].phone == phone
    assert all(p.phone != "+447700900123" for p in people)


def test_headers_that_do_not_decode_are_kept_raw_not_the_item_refused() -> None:
    import json

    item = parse_eml(HEAD + b"From: =?utf-7?Q?Eve+2D0-?= 447700900123 <>\r\n"
                     b"Subject: =?utf-7?Q?+2D0-?=\r\n"
                     b"X-TELEMESSAGE-ThreadName: =?utf-7?Q?x+2D0-?=\r\n"
                     b"\r\nhi\r\n")
    assert item.subject == "=?utf-7?Q?+2D0-?=" and item.sender.phone == "+447700900123"
    assert item.chat.thread_name == "=?utf-7?Q?x+2D0-?="
    json.dumps(item.to_json(), ensure_ascii=False).encode("utf-8")
