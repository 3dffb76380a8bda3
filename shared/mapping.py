"""Whose mailbox gets an item: the custom CSV (mobile number -> mailbox) first, then, when
automatic mapping is on, the participant's own email address; a target counts only when Graph
confirms the user.

Only what TeleMessage's participant format puts in place routes (see shared/eml.py): an entry
the parser marked with a routing conflict is not routed on, and neither is one whose number
maps to one user while its address is another user's (README, "Routing rule")."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shared.graph import DirectoryUser
from shared.item import Item, Participant
from shared.phone import to_e164

CSV_HEADER = ("External User ID", "Microsoft 365 User Mailbox")
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str
    text: str


@dataclass(frozen=True)
class MappingTable:
    by_phone: dict[str, str] = field(default_factory=dict)  # E.164 -> mailbox (lower case)

    def lookup(self, phone: str | None) -> str | None:
        return self.by_phone.get(phone) if phone else None


def parse_mapping_csv(text: str) -> tuple[MappingTable, list[RowError]]:
    """TeleMessage's format: `External User ID,Microsoft 365 User Mailbox`. Every bad row is
    reported with its line number; the caller must not apply a table that has errors."""
    errors: list[RowError] = []
    by_phone: dict[str, str] = {}
    first_line: dict[str, int] = {}
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    for line_no, row in enumerate(rows, start=1):
        raw = ",".join(row)
        if not row or all(not cell.strip() for cell in row):
            continue
        if line_no == 1 and tuple(c.strip() for c in row[:2]) == CSV_HEADER:
            continue
        if len(row) != 2:
            errors.append(RowError(line_no, f"expected 2 columns, found {len(row)}", raw))
            continue
        number_raw, mailbox_raw = row[0].strip(), row[1].strip().lower()
        number = to_e164(number_raw)
        if number is None:
            errors.append(RowError(line_no, f"invalid mobile number {number_raw!r}", raw))
            continue
        if not _EMAIL.match(mailbox_raw):
            errors.append(RowError(line_no, f"invalid mailbox address {mailbox_raw!r}", raw))
            continue
        if number in by_phone:
            if by_phone[number] == mailbox_raw:
                errors.append(RowError(line_no, f"duplicate of line {first_line[number]}", raw))
            else:
                errors.append(RowError(line_no, f"number also mapped to {by_phone[number]} on "
                                       f"line {first_line[number]}", raw))
            continue
        by_phone[number] = mailbox_raw
        first_line[number] = line_no
    return MappingTable(by_phone), errors


@dataclass(frozen=True)
class Target:
    mailbox: str  # the user's id in Graph
    upn: str
    via: str  # "csv" or "email"


class Directory:
    """Graph user lookups with a time-to-live cache, so Graph is not asked once per item."""

    def __init__(self, lookup: Callable[[str], Awaitable[DirectoryUser | None]],
                 ttl_seconds: float = 3600.0) -> None:
        self._lookup = lookup
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, DirectoryUser | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def user(self, address: str) -> DirectoryUser | None:
        key = address.lower()
        cached = self._cached(key)
        if cached is not None:
            return cached[1]
        async with self._locks.setdefault(key, asyncio.Lock()):  # one lookup per address
            cached = self._cached(key)
            if cached is not None:
                return cached[1]
            found = await self._lookup(key)
            self._cache[key] = (time.monotonic() + self._ttl, found)
            return found

    def _cached(self, key: str) -> tuple[float, DirectoryUser | None] | None:
        hit = self._cache.get(key)
        return hit if hit is not None and hit[0] > time.monotonic() else None


@dataclass(frozen=True)
class Resolution:
    targets: tuple[Target, ...]
    unmapped: tuple[Participant, ...]  # participants that map to no Microsoft 365 user
    # participants not routed on, with the reason (recorded on the item's outcome)
    conflicts: tuple[tuple[Participant, str], ...] = ()

    def unmapped_labels(self) -> list[str]:
        """For the outcome row: who maps to nobody, and who was not routed on and why."""
        return [p.phone or p.email or p.name for p in self.unmapped] + [
            f"routing conflict ({reason}): {p.phone or p.email or p.name}"
            for p, reason in self.conflicts]


class Mapper:
    def __init__(self, table: Callable[[], MappingTable], directory: Directory,
                 auto_mapping: bool) -> None:
        self._table = table
        self._directory = directory
        self._auto_mapping = auto_mapping

    async def resolve(self, item: Item) -> Resolution:
        table = self._table()
        targets: dict[str, Target] = {}
        unmapped: list[Participant] = []
        conflicts: list[tuple[Participant, str]] = []
        # The directory look-ups (one Graph call each for a new day's first items) at once.
        found = iter(await asyncio.gather(*(self._target(person, table)
                                            for person in item.participants
                                            if not person.routing_conflict)))
        for person in item.participants:
            if person.routing_conflict:
                conflicts.append((person, person.routing_conflict))
                continue
            target = next(found)
            if isinstance(target, str):
                conflicts.append((person, target))
            elif target is None:
                unmapped.append(person)
            else:
                targets.setdefault(target.mailbox, target)
        return Resolution(tuple(targets.values()), tuple(unmapped), tuple(conflicts))

    async def _target(self, person: Participant, table: MappingTable) -> Target | str | None:
        """The person's mailbox, None, or the reason (a string) not to route on them."""
        mapped = table.lookup(person.phone)
        if mapped:
            user = await self._directory.user(mapped)
            if user:
                if person.email and person.email != mapped:
                    other = await self._directory.user(person.email)
                    if other is not None and other.id != user.id:
                        return "number_address_conflict"
                return Target(user.id, user.user_principal_name, "csv")
        if self._auto_mapping and person.email:
            user = await self._directory.user(person.email)
            if user:
                return Target(user.id, user.user_principal_name, "email")
        return None
