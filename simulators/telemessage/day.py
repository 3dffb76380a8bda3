"""A deterministic day of captured Telegram activity: messages, media, deletions and calls."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

from simulators.telemessage.content import (
    MEDIA_KINDS,
    attachment_name,
    caption,
    media_kind,
    message_text,
)
from simulators.telemessage.eml_builder import Attachment, Call, CallOutcome, SimItem
from simulators.telemessage.org import Group, Org, Person

MIB = 1024 * 1024
MAX_ITEM_BYTES = 10 * MIB  # TeleMessage/Purview's limit: larger items are not imported
OVERSIZE_RANGE = (11 * MIB, 14 * MIB)  # one video: the EML exceeds MAX_ITEM_BYTES
LARGE_RANGE = (int(3.2 * MIB), 7 * MIB)  # needs a Graph upload session; EML stays < 10 MiB
DUPLICATE_CAPTURE_RATE = 0.03
_OUTCOMES: tuple[CallOutcome, ...] = ("Answered", "Missed", "Declined")


class _Chat(NamedTuple):
    sender: Person
    recipients: tuple[Person, ...]
    initiator: Person
    group: Group | None
    thread_id: str


def _thread_id(key: str) -> str:
    """A stable `tm-<n>` per chat, the same on every day."""
    return f"tm-{int.from_bytes(hashlib.sha256(key.encode()).digest()[:5], 'big')}"


class _Day:
    """Draws the items of one day from one random stream, in time order."""

    def __init__(self, org: Org, rng: random.Random) -> None:
        self.org = org
        self.rng = rng
        self.staff = set(org.employees)
        self.everyone = org.employees + org.externals
        self.ids: set[str] = set()
        self.deletable: list[SimItem] = []

    def archive_id(self, when: datetime) -> str:
        archive_id = ""
        while not archive_id or archive_id in self.ids:
            archive_id = f"TG-{when:%Y%m%d}-{self.rng.getrandbits(32):08x}"
        self.ids.add(archive_id)
        return archive_id

    def sid(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def chat(self) -> _Chat:
        """60% 1:1 chats of an employee, 40% group chats (captured by an employee member)."""
        rng = self.rng
        if self.org.groups and rng.random() < 0.4:
            group = rng.choice(self.org.groups)
            initiator = rng.choice([m for m in group.members if m in self.staff])
            sender = rng.choice(group.members)
            return _Chat(sender, tuple(m for m in group.members if m != sender), initiator,
                         group, _thread_id(group.group_id))
        initiator = other = rng.choice(self.org.employees)
        while other == initiator:
            other = rng.choice(self.everyone)
        sender, recipient = (initiator, other) if rng.random() < 0.5 else (other, initiator)
        return _Chat(sender, (recipient,), initiator, None,
                     _thread_id("/".join(sorted((initiator.mobile, other.mobile)))))

    def attachments(self, when: datetime, big: tuple[str, int, int] | None
                    ) -> tuple[Attachment, ...]:
        rng = self.rng
        if big is not None:
            kind, low, high = big
            sizes = [rng.randint(low, high)]
        else:
            kind = media_kind(rng)
            low, high = MEDIA_KINDS[kind][2:]
            sizes = [rng.randint(low, high) for _ in range(rng.choice((1, 1, 1, 2, 3))
                                                             if kind == "photo" else 1)]
        content_type = MEDIA_KINDS[kind][0]
        return tuple(Attachment(attachment_name(rng, kind, when, n), content_type, size,
                                rng.getrandbits(64))
                     for n, size in enumerate(sizes, start=1))

    def message(self, when: datetime, media: bool, big: tuple[str, int, int] | None = None,
                encrypted: bool = False) -> SimItem:
        chat = self.chat()
        attachments = self.attachments(when, big) if media else ()
        item = SimItem(
            "media" if media else "text", self.archive_id(when), when, chat.sender,
            chat.recipients, chat.initiator, chat.thread_id, self.sid(), chat.group,
            text=caption(self.rng) if media else message_text(self.rng),
            attachments=attachments, html=media and self.rng.random() < 0.1,
            encrypted=encrypted)
        if item.text and not encrypted:
            self.deletable.append(item)
        return item

    def deleted(self, when: datetime, encrypted: bool) -> SimItem | None:
        """Delete-for-me of an earlier message, by the employee whose phone captured it."""
        earlier = [n for n, item in enumerate(self.deletable) if item.captured_at < when]
        if not earlier:
            return None
        original = self.deletable.pop(self.rng.choice(earlier))
        deleter = original.initiator
        others = tuple(p for p in (original.sender, *original.recipients) if p != deleter)
        return SimItem("deleted", f"DELETE_FOR_ME-{original.archive_id}", when, deleter, others,
                       deleter, original.thread_id, self.sid(), original.group,
                       original=original, encrypted=encrypted)

    def call(self, when: datetime, encrypted: bool) -> SimItem:
        rng = self.rng
        chat = self.chat()
        outcome: CallOutcome = rng.choices(_OUTCOMES, (70, 20, 10))[0]
        duration = rng.randint(5, 1800) if outcome == "Answered" else 0
        ended = when + timedelta(seconds=duration or rng.randint(5, 40))
        call = Call(str(rng.getrandbits(63)), rng.random() < 0.25, outcome, ended, duration)
        return SimItem("call", self.archive_id(when), when, chat.sender, chat.recipients,
                       chat.initiator, chat.thread_id, self.sid(), chat.group, call=call,
                       encrypted=encrypted)

    def duplicate_capture(self, item: SimItem) -> SimItem | None:
        """The same group message as archived by another member employee's phone."""
        assert item.group is not None
        others = [m for m in item.group.members if m in self.staff and m != item.initiator]
        if not others:
            return None
        return dataclasses.replace(item, initiator=self.rng.choice(others), sid=self.sid())


def _second_of_day(rng: random.Random) -> int:
    """Mostly business hours (06:00-20:00 UTC), some at night."""
    return rng.randint(6 * 3600, 20 * 3600 - 1) if rng.random() < 0.8 else rng.randrange(86400)


def generate_day(org: Org, day: date, items: int, seed: int, oversize: int = 3,
                 large_attachments: int = 5, encrypted: int = 0) -> list[SimItem]:
    """`items` items captured on `day` (UTC), in time order; the same arguments give the same list.

    Mix: ~70% text, ~15% media, ~5% delete-for-me events of earlier messages of the day, ~10%
    calls; ~60% 1:1 chats, ~40% groups. Exactly `oversize` items carry an 11-14 MiB video (EML
    over MAX_ITEM_BYTES), `large_attachments` items one 3.2-7 MiB attachment (EML under it),
    and `encrypted` items are BYOK-encrypted. Other attachments are 5 KB-600 KB.

    Duplicate capture: ~3% of group messages also appear as the next item, archived by another
    member employee's phone. Both copies keep the same ArchiveMessageID and Message-ID (the
    stable id the connector deduplicates on) but differ in ArchiveInitiator, SID and possibly
    Status; each copy counts as one of the `items`.
    """
    special = oversize + large_attachments + encrypted
    if items < special:
        raise ValueError(f"{items} items cannot hold {special} oversize/large/encrypted ones")
    rng = random.Random(f"telemessage-day:{seed}:{day.isoformat()}")
    midnight = datetime.combine(day, time(), UTC)
    times = sorted(midnight + timedelta(seconds=_second_of_day(rng)) for _ in range(items))
    slots = rng.sample(range(items), special)
    special_slots = set(slots)
    oversize_slots = set(slots[:oversize])
    large_slots = set(slots[oversize:oversize + large_attachments])
    encrypted_slots = set(slots[oversize + large_attachments:])
    state = _Day(org, rng)
    result: list[SimItem] = []
    while len(result) < items:
        n, when = len(result), times[len(result)]
        enc = n in encrypted_slots
        roll = rng.random()
        if n in oversize_slots:
            item = state.message(when, True, ("video", *OVERSIZE_RANGE))
        elif n in large_slots:
            item = state.message(when, True, (rng.choice(("video", "pdf")), *LARGE_RANGE))
        elif roll < 0.70:
            item = state.message(when, False, encrypted=enc)
        elif roll < 0.85:
            item = state.message(when, True, encrypted=enc)
        elif roll < 0.90:
            item = state.deleted(when, enc) or state.message(when, False, encrypted=enc)
        else:
            item = state.call(when, enc)
        result.append(item)
        if (item.group is not None and item.kind in ("text", "media") and len(result) < items
                and not {n, len(result)} & special_slots
                and rng.random() < DUPLICATE_CAPTURE_RATE):
            copy = state.duplicate_capture(item)
            if copy is not None:
                result.append(copy)
    return result
