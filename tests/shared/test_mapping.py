import pytest

from shared.graph import DirectoryUser
from shared.item import Chat, Direction, Item, ItemKind, Participant
from shared.mapping import Directory, Mapper, MappingTable, parse_mapping_csv

GOOD = """External User ID,Microsoft 365 User Mailbox
447700900123,susan@contoso.com
+972 54-123-4567,Dana.Levi@Contoso.com
"""


def test_valid_csv_maps_numbers_to_lowercase_mailboxes() -> None:
    table, errors = parse_mapping_csv(GOOD)
    assert errors == []
    assert table.lookup("+447700900123") == "susan@contoso.com"
    assert table.lookup("+972541234567") == "dana.levi@contoso.com"


def test_every_bad_row_is_reported_with_its_line_and_reason() -> None:
    text = ("External User ID,Microsoft 365 User Mailbox\n"
            "447700900123,susan@contoso.com\n"
            "12,bob@contoso.com\n"  # line 3: invalid number
            "447700900124,not-an-address\n"  # line 4: invalid address
            "0044 7700 900123,susan@contoso.com\n"  # line 5: duplicate of line 2
            "447700900123,other@contoso.com\n"  # line 6: one number to two mailboxes
            "447700900125\n")  # line 7: one column
    _, errors = parse_mapping_csv(text)
    by_line = {e.line: e.reason for e in errors}
    assert sorted(by_line) == [3, 4, 5, 6, 7]
    assert "invalid mobile number" in by_line[3]
    assert "invalid mailbox address" in by_line[4]
    assert "duplicate of line 2" in by_line[5]
    assert "also mapped to susan@contoso.com" in by_line[6]
    assert "2 columns" in by_line[7]


def _item(*people: Participant) -> Item:
    from datetime import UTC, datetime

    return Item(archive_key="k", kind=ItemKind.MESSAGE, captured_at=datetime.now(UTC),
                sender=people[0], recipients=tuple(people[1:]), subject="", text="", html=None,
                attachments=(), chat=Chat(None, None), direction=Direction.UNKNOWN,
                archive_initiator=None, internet_message_id=None, telemessage_headers=())


class FakeDirectory:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.calls: list[str] = []

    async def __call__(self, address: str) -> DirectoryUser | None:
        self.calls.append(address)
        user_id = self.users.get(address)
        return DirectoryUser(user_id, address, address, None) if user_id else None


async def test_csv_wins_over_email_and_unknown_people_are_unmapped() -> None:
    lookup = FakeDirectory({"susan@contoso.com": "id-s", "dana@contoso.com": "id-d"})
    table = MappingTable({"+447700900123": "susan@contoso.com"})
    mapper = Mapper(lambda: table, Directory(lookup), auto_mapping=True)
    susan = Participant("Susan", "+447700900123", "susan.private@gmail.com")
    dana = Participant("Dana", "+972541234567", "dana@contoso.com")
    stranger = Participant("Ext", "+14155550123", None)
    resolution = await mapper.resolve(_item(susan, dana, stranger))
    assert [(t.mailbox, t.via) for t in resolution.targets] == [("id-s", "csv"), ("id-d", "email")]
    assert resolution.unmapped == (stranger,)


async def test_a_new_items_participants_are_looked_up_at_once_and_kept_in_order() -> None:
    """A day's first items find an empty directory cache: one Graph look-up per participant,
    made together, not one after the other (each is a Graph round trip)."""
    import asyncio

    in_flight, peak = 0, 0

    class SlowDirectory(FakeDirectory):
        async def __call__(self, address: str) -> DirectoryUser | None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.05)
            in_flight -= 1
            return await super().__call__(address)

    people = [Participant(f"P{n}", None, f"p{n}@contoso.com") for n in range(5)]
    lookup = SlowDirectory({f"p{n}@contoso.com": f"id-{n}" for n in (3, 1, 4)})
    mapper = Mapper(MappingTable, Directory(lookup), auto_mapping=True)
    resolution = await mapper.resolve(_item(*people))
    assert peak == 5
    assert [t.mailbox for t in resolution.targets] == ["id-1", "id-3", "id-4"]
    assert resolution.unmapped == (people[0], people[2])


async def test_auto_mapping_off_ignores_email_addresses() -> None:
    lookup = FakeDirectory({"dana@contoso.com": "id-d"})
    mapper = Mapper(MappingTable, Directory(lookup), auto_mapping=False)
    resolution = await mapper.resolve(_item(Participant("Dana", None, "dana@contoso.com")))
    assert resolution.targets == ()


async def test_directory_caches_answers_including_not_found() -> None:
    lookup = FakeDirectory({"a@contoso.com": "id-a"})
    directory = Directory(lookup, ttl_seconds=60)
    for _ in range(3):
        assert (await directory.user("A@contoso.com")) is not None
        assert (await directory.user("nobody@contoso.com")) is None
    assert lookup.calls == ["a@contoso.com", "nobody@contoso.com"]


async def test_directory_cache_expires() -> None:
    lookup = FakeDirectory({"a@contoso.com": "id-a"})
    directory = Directory(lookup, ttl_seconds=0)
    await directory.user("a@contoso.com")
    await directory.user("a@contoso.com")
    assert len(lookup.calls) == 2


@pytest.mark.parametrize("header", ["External User ID,Microsoft 365 User Mailbox", ""])
def test_header_row_is_optional(header: str) -> None:
    table, errors = parse_mapping_csv(f"{header}\n447700900123,susan@contoso.com\n")
    assert errors == [] and len(table.by_phone) == 1


async def test_a_contact_named_after_an_employees_number_is_not_routed_to_that_employee() -> None:
    from shared.eml import parse_eml

    lookup = FakeDirectory({"bob@contoso.com": "id-b", "alice@contoso.com": "id-a"})
    table = MappingTable({"+447700900123": "bob@contoso.com"})
    mapper = Mapper(lambda: table, Directory(lookup), auto_mapping=True)
    item = parse_eml(b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
                     b"From: Eve 447700900123 15551234567 <>\r\n"
                     b"To: Alice Cohen 972541234567 <alice@contoso.com>\r\n\r\nhi\r\n")
    resolution = await mapper.resolve(item)
    assert [t.mailbox for t in resolution.targets] == ["id-a"]
    assert [(p.phone, reason) for p, reason in resolution.conflicts] == [
        ("+15551234567", "number_in_name")]
    assert resolution.unmapped_labels() == [
        "routing conflict (number_in_name): +15551234567"]


async def test_a_number_mapped_to_one_user_with_another_users_address_is_a_conflict() -> None:
    lookup = FakeDirectory({"bob@contoso.com": "id-b", "alice@contoso.com": "id-a"})
    table = MappingTable({"+447700900123": "bob@contoso.com"})
    mapper = Mapper(lambda: table, Directory(lookup), auto_mapping=True)
    mixed = Participant("Alice", "+447700900123", "alice@contoso.com")
    resolution = await mapper.resolve(_item(mixed))
    assert resolution.targets == ()
    assert resolution.conflicts == ((mixed, "number_address_conflict"),)
    # an address outside the tenant is no conflict: that is what the CSV is for
    private = Participant("Bob", "+447700900123", "bob@gmail.com")
    resolution = await mapper.resolve(_item(private))
    assert [(t.mailbox, t.via) for t in resolution.targets] == [("id-b", "csv")]


async def test_entries_the_parser_marked_are_never_routed_on() -> None:
    lookup = FakeDirectory({"ceo@contoso.com": "id-c"})
    mapper = Mapper(MappingTable, Directory(lookup), auto_mapping=True)
    smuggled = Participant("Eve", None, "ceo@contoso.com",
                           routing_conflict="not_participant_format")
    resolution = await mapper.resolve(_item(smuggled))
    assert resolution.targets == () and lookup.calls == []
