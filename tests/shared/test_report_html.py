"""The daily HTML report (shared/report_html.py): what reconcile writes beside the day's JSON and
`python -m shared report DATE --html FILE` writes; rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from shared.__main__ import main
from shared.clients import runtime, set_runtime
from shared.mapping import parse_mapping_csv
from shared.outcomes import ItemOutcome, Outcome
from shared.pipeline import publish_reports_now
from shared.report_html import (
    MAX_MAILBOX_ROWS,
    csv_line,
    lags,
    render_day,
    replay_command,
)
from shared.reports import ExportReport, export_report
from shared.state import ExportRecord

DAY = "2026-11-25"
NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
EXPORT_1 = "202611250000-TeleMessage_1_20261126003000.zip"
EXPORT_2 = "202611250000-TeleMessage_2_20261126003000.zip"
HOSTILE = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"


def _items(export: str, count: int, mailboxes: int, captured: float) -> list[ItemOutcome]:
    """A day's mix: 14 in 20 imported (to two mailboxes), 2 unmapped, and one each of
    oversize, quarantined, failed, duplicate."""
    out = []
    for i in range(count):
        member, k = f"TG-{i:06d}.eml", i % 20
        if k < 14:
            j = i // 20 * 14 + k  # the how-many-th imported item
            out.append(ItemOutcome(export, member, Outcome.IMPORTED, captured=captured,
                                   updated=captured + 60 * (i % 600), mailboxes={
                                       f"user{j % mailboxes}@contoso.com": "imported",
                                       f"user{(j + 1) % mailboxes}@contoso.com": "duplicate"}))
        elif k < 16:
            out.append(ItemOutcome(export, member, Outcome.UNMAPPED, reason="unmapped",
                                   unmapped=[f"+4477009{i % 3000:05d}", "ext@example.org"]))
        elif k == 16:
            out.append(ItemOutcome(export, member, Outcome.OVERSIZE, reason="oversize",
                                   size=12_000_000, detail="item content is 12000000 bytes"))
        elif k == 17:
            out.append(ItemOutcome(export, member, Outcome.QUARANTINED,
                                   reason="malformed_mime", detail="no boundary"))
        elif k == 18:
            out.append(ItemOutcome(export, member, Outcome.FAILED, reason="retries_exhausted",
                                   detail="RetryLater: 503"))
        else:
            out.append(ItemOutcome(export, member, Outcome.DUPLICATE,
                                   mailboxes={f"user{i % mailboxes}@contoso.com": "duplicate"}))
    return out


def _report(export: str, items: list[ItemOutcome], manifest: int | None) -> ExportReport:
    return export_report(ExportRecord(export, DAY, manifest, len(items), len(items), 0), items)


class _Dom(HTMLParser):
    """Tags, attributes and the text of every element carrying data-figure/-outcome."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._open: list[tuple[str, dict[str, str | None]]] = []
        self.figures: dict[str, str] = {}
        self.rows: dict[str, dict[str, str]] = {}  # data-mailbox/data-export -> outcome -> text
        self._row: str | None = None
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr":
            self._row = a.get("data-mailbox") or a.get("data-export")
            if self._row:
                self.rows[self._row] = {}
        self._cell = a.get("data-figure") or (f"row:{a['data-outcome']}"
                                              if a.get("data-outcome") else None)

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell and data.strip():
            if self._cell.startswith("row:") and self._row:
                self.rows[self._row][self._cell[4:]] = data.strip()
            elif not self._cell.startswith("row:"):
                self.figures[self._cell] = data.strip()
            self._cell = None


def _dom(html: str) -> _Dom:
    dom = _Dom()
    dom.feed(html)
    return dom


def test_the_page_holds_the_figures_and_the_charts() -> None:
    captured = NOW.timestamp() - 7200
    reports = [_report(EXPORT_1, _items(EXPORT_1, 200, 12, captured), 200),
               _report(EXPORT_2, _items(EXPORT_2, 100, 12, captured), 101)]
    dom = _dom(render_day(DAY, reports, NOW))
    assert dom.figures["total"] == "300" and dom.figures["manifest_count"] == "301"
    assert dom.figures["outcome:imported"] == "210" and dom.figures["outcome:failed"] == "15"
    assert dom.figures["group:quarantined:malformed_mime"] == "15"
    assert dom.figures["mailboxes"] == "12"
    assert dom.rows[EXPORT_2]["imported"] == "70"
    reconciled = next(a for t, a in dom.tags if a.get("data-figure") == "reconciled")
    assert reconciled["data-value"] == "false"  # export 2's manifest says 101
    assert "manifest counts 101, outcomes sum to 100 (-1)" in "".join(dom.text)
    # Lag: imported items were recorded 0..599 minutes after a capture 2 h before.
    median = next(a for t, a in dom.tags if a.get("data-figure") == "lag_median_seconds")
    assert 0 < int(median["data-value"] or 0) < 600 * 60
    svgs = [t for t, _ in dom.tags if t == "svg"]
    assert len(svgs) == 2
    bars = [a for t, a in dom.tags if t == "rect"]
    assert any(a["fill"] == "#2e7d32" for a in bars)  # imported's bar


def test_each_group_has_its_replay_command_and_unknown_outcomes_are_shown() -> None:
    stubbed = ExportReport(EXPORT_1, DAY, 2, Counter({"stubbed": 1, "imported": 1}), {},
                           Counter(), Counter(), [], "", items=[
                               ItemOutcome(EXPORT_1, "a.eml", "stubbed", reason="too_big"),  # type: ignore[arg-type]
                               ItemOutcome(EXPORT_1, "b.eml", Outcome.IMPORTED)])
    failed = _report(EXPORT_2, [ItemOutcome(EXPORT_2, "c.eml", Outcome.FAILED,
                                            reason="retries_exhausted")], 1)
    html = render_day(DAY, [stubbed, failed], NOW)
    dom = _dom(html)
    assert dom.figures["outcome:stubbed"] == "1" and dom.figures["group:stubbed:too_big"] == "1"
    assert dom.rows[EXPORT_1]["stubbed"] == "1"
    assert f"python -m shared replay outcomes failed --exports {EXPORT_2}" in html
    assert "python -m shared replay poison" in html
    assert replay_command("stubbed", [EXPORT_1]) is None  # replay has no such choice
    assert replay_command("quarantined", ["a b.zip"]) == (
        "python -m shared replay outcomes quarantined --exports 'a b.zip'")


def test_stubbed_and_damaged_items_are_explained_and_count_in_the_lag() -> None:
    captured = NOW.timestamp() - 7200
    report = _report(EXPORT_1, [
        ItemOutcome(EXPORT_1, "a.eml", Outcome.STUBBED, reason="oversize", captured=captured,
                    updated=captured + 60),
        ItemOutcome(EXPORT_1, "b.eml", Outcome.IMPORTED_DAMAGED, reason="truncated_mime",
                    captured=captured, updated=captured + 120)], 2)
    html = render_day(DAY, [report], NOW)
    dom = _dom(html)
    assert dom.figures["outcome:stubbed"] == "1"
    assert dom.figures["outcome:imported_damaged"] == "1"
    assert "originals are in the preserved container" in html
    assert "the original EML attached" in html
    assert lags([report]) == [60, 120]


def test_an_export_with_items_retrying_says_until_when() -> None:
    until = NOW.timestamp() + 3600
    report = _report(EXPORT_1, [
        ItemOutcome(EXPORT_1, "a.eml", Outcome.QUEUED, reason="retrying", retry_until=until),
        ItemOutcome(EXPORT_1, "b.eml", Outcome.IMPORTED)], 2)
    text = "".join(_dom(render_day(DAY, [report], NOW)).text)
    assert "1 of them retrying after failures" in text
    assert "retrying until 2026-11-26T07:00:00+00:00" in text


def test_csv_lines_are_the_mapping_format_and_only_for_numbers() -> None:
    assert csv_line("+44 7700 900123") == "447700900123,"
    assert csv_line("someone@example.org") is None
    assert csv_line("user@contoso.com (no mailbox)") is None
    reports = [_report(EXPORT_1, [ItemOutcome(EXPORT_1, f"{i}.eml", Outcome.UNMAPPED,
                                              unmapped=["+447700900123", "x@example.org"])
                                  for i in range(3)], 3)]
    html = render_day(DAY, reports, NOW)
    block = re.search(r'<pre data-csv="mapping">(.*?)</pre>', html, re.S)
    assert block is not None
    lines = block.group(1).splitlines()
    assert lines == ["External User ID,Microsoft 365 User Mailbox", "447700900123,"]
    # Filled in by the admin, the lines are a valid mapping of that number; unfilled, refused.
    table, errors = parse_mapping_csv("\n".join(lines[:1] + [lines[1] + "a@contoso.com"]))
    assert not errors and table.lookup("+447700900123") == "a@contoso.com"
    assert parse_mapping_csv("\n".join(lines))[1]  # an empty mailbox is never applied
    dom = _dom(html)
    participants = {a["data-participant"] for t, a in dom.tags if "data-participant" in a}
    assert participants == {"+447700900123", "x@example.org"}


def test_data_from_emls_cannot_inject_markup() -> None:
    hostile = [ItemOutcome(HOSTILE, HOSTILE, Outcome.QUARANTINED, reason=HOSTILE,
                           detail=HOSTILE),
               ItemOutcome(HOSTILE, "u.eml", Outcome.UNMAPPED, unmapped=[HOSTILE]),
               ItemOutcome(HOSTILE, "m.eml", Outcome.IMPORTED, mailboxes={HOSTILE: "imported"})]
    report = export_report(ExportRecord(HOSTILE, DAY, 3, 3, 3, 0, problems=[
        {"code": "manifest_missing_file", "detail": HOSTILE}]), hostile)
    html = render_day(HOSTILE, [report], NOW)
    dom = _dom(html)
    tags = {t for t, _ in dom.tags}
    assert "script" not in tags and "img" not in tags
    assert not [a for _, a in dom.tags if any(k.startswith("on") for k in a)]
    assert "".join(dom.text).count(HOSTILE) >= 6  # shown as text, everywhere it occurs


def test_the_page_is_self_contained() -> None:
    html = render_day(DAY, [_report(EXPORT_1, _items(EXPORT_1, 100, 5, 1.0), 100)], NOW)
    dom = _dom(html)
    assert {t for t, _ in dom.tags} <= {"html", "head", "meta", "title", "style", "body", "h1",
                                         "h2", "h3", "p", "code", "div", "b", "svg", "text",
                                         "rect", "table", "thead", "tbody", "tr", "th", "td",
                                         "pre", "br", "span"}
    assert not [a for _, a in dom.tags if {"src", "href"} & set(a)]
    assert "url(" not in html and "@import" not in html and "@font-face" not in html
    # And should markup ever slip through, the page's policy forbids scripts and loads.
    policy = next(a for t, a in dom.tags if a.get("http-equiv") == "Content-Security-Policy")
    assert (policy["content"] or "").startswith("default-src 'none';")
    assert "script-src" not in (policy["content"] or "")


def test_readable_and_bounded_at_a_thousand_mailboxes_and_fifty_thousand_items() -> None:
    reports = [_report(f"202611250000-TeleMessage_{n}_20261126003000.zip",
                       _items(f"E{n}", 10_000, 1000, 1.0), 10_000) for n in range(1, 6)]
    html = render_day(DAY, reports, NOW)
    dom = _dom(html)
    assert dom.figures["total"] == "50000" and dom.figures["mailboxes"] == "1000"
    assert len(html.encode()) < 1_000_000
    rows = sum(1 for t, _ in dom.tags if t == "tr")
    assert rows < 1_000  # tables are cut and summarised, not 50,000 rows long
    assert sum(1 for _, a in dom.tags if "data-mailbox" in a) == MAX_MAILBOX_ROWS
    assert "and 800 more mailboxes" in html
    # The summarised rest plus the shown rows add up to the total row.
    assert dom.figures["mailboxes:imported"] == str(35_000)


# ---- Through storage and the CLI, rendered in Chromium ------------------------------------------

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (the Makefile's test target installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _run_chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    return subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                           page.as_uri()], capture_output=True, text=True, timeout=120,
                          check=True)


@pytest.fixture
def published(storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> object:
    for key, value in storage_env.items():
        monkeypatch.setenv(key, value)
    set_runtime(None)
    rt = runtime()
    captured = time.time() - 3 * 3600
    for export, count, manifest in ((EXPORT_1, 120, 120), (EXPORT_2, 60, 61)):
        rt.state.record_export(ExportRecord(export, DAY, manifest, count, count, 0,
                                            split_at=datetime.now(UTC).isoformat()))
        rt.outcomes.record_many(_items(export, count, 7, captured))
    publish_reports_now(rt)
    yield rt
    set_runtime(None)


def test_reconcile_writes_the_page_the_cli_writes_and_chromium_shows_the_json_figures(
        published: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rt = runtime()
    container = rt.blob_service.get_container_client(rt.settings.reports_container)
    summary = json.loads(container.download_blob(f"days/{DAY}.json").readall())
    blob = container.get_blob_client(f"days/{DAY}.html")
    assert blob.get_blob_properties().content_settings.content_type.startswith("text/html")
    stored = tmp_path / "stored.html"
    stored.write_bytes(blob.download_blob().readall())

    written = tmp_path / "cli.html"
    assert main(["report", DAY, "--html", str(written)]) == 1  # export 2 does not reconcile
    assert f"wrote {written}" in capsys.readouterr().out

    def without_time(text: str) -> str:
        return re.sub(r"Generated \S+", "Generated -", text)

    assert without_time(written.read_text()) == without_time(stored.read_text())

    dom = _dom(_run_chromium(tmp_path, stored, "--dump-dom").stdout)
    assert dom.figures["total"] == str(summary["total"]) == "180"
    assert dom.figures["manifest_count"] == str(summary["manifest_count"])
    for outcome, count in summary["outcomes"].items():
        assert dom.figures[f"outcome:{outcome}"] == str(count)
    assert dom.figures["mailboxes"] == str(len(summary["per_mailbox"]))
    for mailbox, counts in summary["per_mailbox"].items():
        for outcome, count in counts.items():
            assert dom.rows[mailbox][outcome] == str(count)
    reconciled = next(a for _, a in dom.tags if a.get("data-figure") == "reconciled")
    assert reconciled["data-value"] == str(summary["reconciled"]).lower()
    shown = {a["data-participant"] for _, a in dom.tags if "data-participant" in a}
    assert shown == set(summary["unmapped"])
    for export in summary["exports"]:
        report = json.loads(container.download_blob(f"exports/{export}.json").readall())
        for outcome, count in report["outcomes"].items():
            assert dom.rows[export][outcome] == str(count)

    screenshot = tmp_path / "report.png"
    _run_chromium(tmp_path, stored, f"--screenshot={screenshot}", "--window-size=1200,1800")
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000  # a page, not a blank
    if os.environ.get("REPORT_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["REPORT_SCREENSHOT"])


def test_the_day_of_fifty_thousand_items_prints_on_a_few_pages(tmp_path: Path) -> None:
    reports = [_report(f"202611250000-TeleMessage_{n}_20261126003000.zip",
                       _items(f"E{n}", 10_000, 1000, 1.0), 10_000) for n in range(1, 6)]
    page = tmp_path / "big.html"
    page.write_text(render_day(DAY, reports, NOW), encoding="utf-8")
    pdf = tmp_path / "big.pdf"
    _run_chromium(tmp_path, page, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf.read_bytes()))
    assert 3 <= pages <= 40


def test_report_html_needs_a_day(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["report", "--html", str(tmp_path / "x.html")]) == 2
    assert "needs a DATE" in capsys.readouterr().err
