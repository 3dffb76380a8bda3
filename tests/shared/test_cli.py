"""The admin CLI: `python -m shared ...`."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import pytest

from shared.__main__ import main
from shared.clients import set_runtime
from simulators.telemessage.day import generate_day
from simulators.telemessage.eml_builder import build_eml
from simulators.telemessage.org import generate_org

ITEMS = generate_day(generate_org(3, employees=8, externals=4), date(2026, 11, 25), items=40,
                     seed=3, oversize=0, large_attachments=0, encrypted=1)


@pytest.fixture
def eml_files(tmp_path: Path) -> tuple[Path, Path]:
    plain = next(i for i in ITEMS if not i.encrypted)
    encrypted = next(i for i in ITEMS if i.encrypted)
    (tmp_path / "plain.eml").write_bytes(build_eml(plain))
    (tmp_path / "byok.eml").write_bytes(build_eml(encrypted))
    return tmp_path / "plain.eml", tmp_path / "byok.eml"


def test_inspect_prints_the_normalized_item(eml_files: tuple[Path, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(eml_files[0]), "--json"]) == 0
    item = json.loads(capsys.readouterr().out)
    assert item["archive_key"].startswith("TG-") and item["sender"]["phone"].startswith("+")
    assert main(["inspect", str(eml_files[0])]) == 0
    summary = capsys.readouterr().out
    assert summary.splitlines()[0] == f"archive key  {item['archive_key']}"
    assert f"kind         {item['kind']}" in summary
    assert f"text         {len(item['text'])} characters" in summary
    assert item["sender"]["phone"] in summary and "--json" in summary
    assert len(summary.splitlines()) == 8 + len(item["recipients"]) + len(
        item["attachments"]) + (item["kind"] != "message")


def test_inspect_exits_nonzero_with_the_quarantine_reason(
        eml_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(eml_files[1])]) == 1
    assert "encrypted_byok" in capsys.readouterr().err


def test_inspect_a_zip_and_one_member(tmp_path: Path, eml_files: tuple[Path, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.eml", eml_files[0].read_bytes())
        zf.writestr("../bad.eml", b"x")
        zf.writestr("x.mf", "Count: 3\na.eml\n")
    assert main(["inspect", str(archive), "--json"]) == 1
    listing = json.loads(capsys.readouterr().out)
    assert {m["name"]: m["rejected"] for m in listing["members"]} == {
        "a.eml": None, "../bad.eml": "unsafe_name"}
    assert main(["inspect", str(archive)]) == 1
    summary = capsys.readouterr().out
    assert "manifest   manifest x.mf, count 3" in summary
    assert "members    2: 1 accepted, 1 refused" in summary
    assert "refused    unsafe_name x1: ../bad.eml" in summary
    assert "problem    manifest_count_mismatch" in summary
    assert main(["inspect", str(archive), "a.eml", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] in {"message", "deleted", "call"}
    assert main(["inspect", str(archive), "../bad.eml"]) == 1


def test_inspect_refuses_an_export_over_the_member_limit_by_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.shared.test_export_format import raw_zip
    archive = tmp_path / "many.zip"
    archive.write_bytes(raw_zip(3, declared=300_000, zip64=True))  # the end record lies
    assert main(["inspect", str(archive)]) == 1
    assert "refused: too_many_members" in capsys.readouterr().err


def test_mapping_validate_names_each_bad_line(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "m.csv"
    csv.write_text("External User ID,Microsoft 365 User Mailbox\n447700900123,a@contoso.com\n"
                   "abc,b@contoso.com\n447700900124,nope\n")
    assert main(["mapping", "validate", str(csv)]) == 1
    err = capsys.readouterr().err
    assert f"{csv}:3: invalid mobile number" in err
    assert f"{csv}:4: invalid mailbox address" in err
    assert "nothing applied" in err


def test_mapping_upload_applies_only_a_valid_file(tmp_path: Path, storage_env: dict[str, str],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in storage_env.items():
        monkeypatch.setenv(key, value)
    set_runtime(None)
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("447700900123,a@contoso.com\n")
    bad.write_text("447700900123,b@contoso.com\n12,c@contoso.com\n")
    try:
        assert main(["mapping", "upload", str(good)]) == 0
        assert main(["mapping", "upload", str(bad)]) == 1
        from shared.clients import runtime

        rt = runtime()
        container, name = rt.settings.mapping_blob.split("/", 1)
        live = rt.blob_service.get_blob_client(container, name).download_blob().readall()
        assert live == good.read_bytes()  # the bad file was never half-applied
        assert main(["replay", "--dry-run", "poison"]) == 0
        assert "would re-queue 0 item(s)" in capsys.readouterr().out
        assert main(["status"]) == 0
        assert "checkpoint      none" in capsys.readouterr().out
    finally:
        set_runtime(None)


def test_module_entry_point_runs() -> None:
    done = subprocess.run([sys.executable, "-m", "shared", "--help"], capture_output=True,
                          text=True, check=False, cwd=Path(__file__).parents[2])
    assert done.returncode == 0 and "inspect" in done.stdout and "replay" in done.stdout


HOSTILE = "x\x1b]0;owned\x07\x1b[2J\x9b1A\u202edlrow\nimported: 999"


def test_report_and_status_escape_control_characters_from_exports(
        storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in storage_env.items():
        monkeypatch.setenv(key, value)
    set_runtime(None)
    from shared.clients import runtime
    from shared.outcomes import ItemOutcome, Outcome
    from shared.state import ExportRecord

    rt = runtime()
    export = f"202611250000-TeleMessage_1_{HOSTILE}.zip"
    rt.state.record_export(ExportRecord(export, "2026-11-25", 2, 2, 2, 0, split_at="x",
                                        problems=[{"code": "manifest_missing",
                                                   "detail": HOSTILE}]))
    rt.outcomes.record(ItemOutcome(export, "a.eml", Outcome.UNMAPPED, unmapped=[HOSTILE]))
    rt.outcomes.record(ItemOutcome(export, "b.eml", Outcome.QUARANTINED, reason=HOSTILE,
                                   detail=HOSTILE))
    rt.state.record_run("fetch", {"at": "now", "error": HOSTILE})
    try:
        main(["report"])
        summary = capsys.readouterr().out
        main(["report", "--json"])
        as_json = capsys.readouterr().out
        main(["status"])
        status = capsys.readouterr().out
    finally:
        set_runtime(None)
    for shown in (summary, as_json, status):
        for control in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert control not in shown
    assert "\\x1b]0;owned" in summary and "\\x1b]0;owned" in status
    assert not any(line.startswith("imported: 999") for line in summary.splitlines() +
                   status.splitlines())  # a newline in a value cannot forge a line
    [report] = json.loads(as_json)
    assert report["export"] == export  # the JSON still says exactly what was stored
