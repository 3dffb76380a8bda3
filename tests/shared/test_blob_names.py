"""One check for blob names from outside, and every entry point that takes one uses it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.blob_names import blob_name_problem, check_blob_name, normal_member_name
from shared.clients import Runtime
from shared.messages import ItemMessage, item_blob_name
from shared.settings import Settings

UNSAFE = ["", "..", "../other/x.zip", "a/../../b.zip", "a/./b.zip", ".", "a//b.zip", "a/",
          "/a.zip", "a\\..\\b.zip", "a\x00b.zip", "a\nb.zip", "a\x7fb.zip", "x" * 1025,
          "😀" * 513]  # 1,026 UTF-16 units, as Azure counts


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_refused_with_a_reason(name: str) -> None:
    assert blob_name_problem(name)
    with pytest.raises(ValueError, match="unsafe blob name"):
        check_blob_name(name)


@pytest.mark.parametrize("name", ["202611250000-TeleMessage_1_20261126003000.zip",
                                  "sftp/2026/a b.zip", "x" * 1024, "Büro…/TG-1.eml", "a..b"])
def test_ordinary_names_pass(name: str) -> None:
    assert blob_name_problem(name) is None and check_blob_name(name) == name


def test_member_names_normalise_to_one_blob() -> None:
    assert {normal_member_name(n) for n in ["./TG-1.eml", ".//TG-1.eml", "TG-1.eml"]} == {
        "TG-1.eml"}
    assert item_blob_name("e.zip", "./d/./TG-1.eml") == "e/d/TG-1.eml"


def test_queue_message_pointing_outside_the_items_prefix_is_unreadable() -> None:
    body = json.dumps({"export": "e.zip", "member": "m.eml", "blob": "../exports/e.zip",
                       "size": 1})
    with pytest.raises(ValueError, match="unsafe blob name"):
        ItemMessage.from_json(body)


def test_cli_replay_refuses_unsafe_export_names_before_touching_storage(
        capsys: pytest.CaptureFixture[str]) -> None:
    from shared.__main__ import main

    for argv in (["replay", "export", "../escape.zip"], ["replay", "item", "a/../b.zip", "m"],
                 ["replay", "outcomes", "unmapped", "--exports", "a\x1bb.zip"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    assert "invalid check_blob_name value" in capsys.readouterr().err


@pytest.mark.azurite
@pytest.mark.parametrize("request_body", [
    {"kind": "export", "exports": ["ok.zip", "../items/x.zip"]},
    {"kind": "item", "export": "ok.zip", "member": "../../escape.eml"},
    {"kind": "item", "export": "a/./b.zip", "member": "m.eml"},
    {"kind": "outcomes", "outcomes": ["unmapped"], "exports": ["a//b.zip"]},
])
def test_http_replay_refuses_unsafe_names_with_400(storage_env: dict[str, str],
                                                   request_body: dict[str, object]) -> None:
    from shared.pipeline import replay_request

    rt = Runtime(Settings.from_env(storage_env))
    status, body = replay_request(rt, json.dumps(request_body).encode())
    assert status == 400 and "unsafe blob name" in body


@pytest.mark.azurite
def test_fetch_refuses_an_unsafe_name_listed_by_the_api(storage_env: dict[str, str]) -> None:
    from shared.fetch import Fetcher
    from shared.telemessage import ExportInfo

    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    class Listing:  # the TeleMessage API's listing, as the client returns it
        def list_exports(self, start: datetime, end: datetime) -> list[ExportInfo]:
            return [ExportInfo("../reports/days/2026-11-25.json", 10, None, now)]

        def download(self, *args: object) -> None:
            raise AssertionError("an unsafe name must not be downloaded")

    rt = Runtime(Settings.from_env(storage_env))
    exports = rt.blob_service.get_container_client(rt.settings.exports_container)
    fetcher = Fetcher(Listing(), exports, rt.state, timedelta(hours=1),  # type: ignore[arg-type]
                      clock=lambda: now)
    result = fetcher.run()
    assert "not a safe blob name" in result.error and result.stored == []
    assert rt.state.checkpoint() is None  # the next run tries again; nothing is skipped
