import base64
import io
import json
import zipfile

import pytest
from azure.storage.queue import QueueClient

from shared.clients import Runtime
from shared.messages import ItemMessage
from shared.outcomes import Outcome
from shared.settings import Settings

pytestmark = pytest.mark.azurite

EML = (b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nFrom: A B 447700900123 <a@contoso.com>\r\n"
       b"To: C D 972541234567 <c@contoso.com>\r\nSubject: hi\r\n\r\nhello\r\n")
EXPORT = "202611250000-TeleMessage_1_20261126003000.zip"


def zip_bytes(members: list[tuple[str, bytes]], manifest: str | None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
        if manifest is not None:
            zf.writestr(EXPORT.replace(".zip", ".mf"), manifest)
    return buffer.getvalue()


@pytest.fixture
def rt(storage_env: dict[str, str]) -> Runtime:
    return Runtime(Settings.from_env(storage_env))


def split(rt: Runtime, name: str, data: bytes):  # noqa: ANN201
    blob = rt.blob_service.get_blob_client(rt.settings.exports_container, name)
    blob.upload_blob(data, overwrite=True)
    return rt.splitter().split(name, blob)


def queued_messages(rt: Runtime) -> list[ItemMessage]:
    raw = QueueClient.from_connection_string(rt.settings.storage.connection_string or "",
                                             rt.settings.items_queue)
    found = []
    for message in raw.receive_messages(max_messages=32, messages_per_page=32):
        found.append(ItemMessage.from_json(base64.b64decode(message.content).decode()))
    return found


def test_each_eml_becomes_an_item_blob_a_base64_message_and_a_queued_outcome(rt: Runtime) -> None:
    members = [(f"TG-{i}.eml", EML + str(i).encode()) for i in range(5)]
    result = split(rt, EXPORT, zip_bytes(members, "Count: 5\n" + "\n".join(m for m, _ in members)))
    assert (result.queued, result.quarantined, result.problems) == (5, 0, 0)
    messages = queued_messages(rt)
    assert sorted(m.member for m in messages) == [m for m, _ in members]
    items = rt.blob_service.get_container_client(rt.settings.items_container)
    for message in messages:
        original = dict(members)[message.member]
        assert items.download_blob(message.blob).readall() == original
        assert message.size == len(original)
        assert len(message.to_json()) < 1024  # a claim check, not the item
    outcomes = rt.outcomes.for_export(EXPORT)
    assert {o.outcome for o in outcomes} == {Outcome.QUEUED}
    record = rt.state.export(EXPORT)
    assert record is not None and record.manifest_count == 5 and record.day == "2026-11-25"


def test_bad_members_are_quarantined_and_the_rest_flows(rt: Runtime) -> None:
    members = [("good.eml", EML), ("../evil.eml", EML), ("readme.txt", b"x"),
               ("bomb.eml", b"\0" * (3 * 1024 * 1024))]
    result = split(rt, EXPORT, zip_bytes(members, "Count: 4\ngood.eml\nbomb.eml\nlost.eml\n"))
    assert result.queued == 1
    by_member = {o.member: o for o in rt.outcomes.for_export(EXPORT)}
    assert by_member["good.eml"].outcome is Outcome.QUEUED
    assert by_member["../evil.eml"].reason == "unsafe_name"
    assert by_member["readme.txt"].reason == "not_eml"
    assert by_member["bomb.eml"].reason == "zip_bomb_ratio"
    codes = {p["code"] for p in rt.state.export(EXPORT).problems}  # type: ignore[union-attr]
    assert {"manifest_count_mismatch", "manifest_listed_missing"} <= codes


def test_corrupt_zip_is_recorded_with_a_clear_error_and_queues_nothing(rt: Runtime) -> None:
    data = zip_bytes([("a.eml", EML)], "Count: 1\na.eml\n")
    result = split(rt, "truncated.zip", data[: len(data) // 2])
    assert result.error == "corrupt_zip" and result.queued == 0
    record = rt.state.export("truncated.zip")
    assert record is not None and record.error.startswith("corrupt_zip")
    assert queued_messages(rt) == []


def test_member_whose_data_is_corrupt_is_quarantined(rt: Runtime) -> None:
    data = bytearray(zip_bytes([("a.eml", EML * 50), ("b.eml", EML)], "Count: 2\na.eml\nb.eml\n"))
    offset = data.find(b"a.eml") + 40  # inside a.eml's compressed data
    data[offset: offset + 20] = b"\xff" * 20
    split(rt, EXPORT, bytes(data))
    by_member = {o.member: o for o in rt.outcomes.for_export(EXPORT)}
    assert by_member["a.eml"].outcome is Outcome.QUARANTINED
    assert by_member["a.eml"].reason == "corrupt_member"
    assert by_member["b.eml"].outcome is Outcome.QUEUED


def test_splitting_again_overwrites_rather_than_adds(rt: Runtime) -> None:
    data = zip_bytes([("a.eml", EML), ("b.eml", EML)], "Count: 2\na.eml\nb.eml\n")
    split(rt, EXPORT, data)
    split(rt, EXPORT, data)
    assert len(rt.outcomes.for_export(EXPORT)) == 2
    items = rt.blob_service.get_container_client(rt.settings.items_container)
    assert len(list(items.list_blobs())) == 2
    assert len(queued_messages(rt)) == 4  # delivered twice; import dedupes by archive key


def test_reader_fetches_ranges_not_the_whole_export(rt: Runtime) -> None:
    from shared.blob_reader import BlobRangeReader

    members = [(f"{i}.eml", EML + bytes(range(256)) * 200) for i in range(200)]
    data = zip_bytes(members, None)
    blob = rt.blob_service.get_blob_client(rt.settings.exports_container, "big.zip")
    blob.upload_blob(data, overwrite=True)
    reader = BlobRangeReader(blob, block_size=64 * 1024, cached_blocks=2)
    with zipfile.ZipFile(reader) as zf:
        assert zf.read("199.eml") == members[199][1]
    assert reader.ranges_fetched <= 4  # central directory and one member, not the whole ZIP
    assert json.dumps({"size": reader.size})


def test_member_with_a_very_long_name_is_refused_and_the_rest_split(rt: Runtime) -> None:
    long_name = "x" * 1100 + ".eml"
    members = [("a.eml", EML), (long_name, EML), ("b.eml", EML)]
    result = split(rt, EXPORT, zip_bytes(members, None))
    assert result.error == "" and result.queued == 2
    by_member = {o.member: o for o in rt.outcomes.for_export(EXPORT)}
    assert by_member[long_name].outcome is Outcome.QUARANTINED
    assert by_member[long_name].reason == "name_too_long"
    assert sorted(m.member for m in queued_messages(rt)) == ["a.eml", "b.eml"]


def test_dot_segment_names_share_one_item_blob_and_are_duplicates(rt: Runtime) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = zip_bytes([("TG-1.eml", EML), ("./TG-1.eml", EML + b"other"),
                          ("./TG-2.eml", EML)], None)
    result = split(rt, EXPORT, data)
    by_member = {o.member: o for o in rt.outcomes.for_export(EXPORT)}
    assert by_member["TG-1.eml"].reason == by_member["./TG-1.eml"].reason == "duplicate_name"
    assert result.queued == 1
    items = rt.blob_service.get_container_client(rt.settings.items_container)
    assert [b.name for b in items.list_blobs()] == [EXPORT[:-4] + "/TG-2.eml"]


def test_export_listing_too_many_members_is_refused_by_reason(rt: Runtime) -> None:
    from shared.export_format import Limits
    from tests.shared.test_export_format import raw_zip

    blob = rt.blob_service.get_blob_client(rt.settings.exports_container, EXPORT)
    blob.upload_blob(raw_zip(50, declared=3), overwrite=True)
    splitter = rt.splitter()
    splitter._limits = Limits(max_members=10)
    result = splitter.split(EXPORT, blob)
    assert result.error == "too_many_members" and result.queued == 0
    record = rt.state.export(EXPORT)
    assert record is not None and record.error.startswith("too_many_members")
