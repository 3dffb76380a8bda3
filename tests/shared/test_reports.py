"""Reports count stubbed and damaged-but-imported items apart from imported ones, and show
items retrying after failures as in progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.outcomes import ItemOutcome, Outcome
from shared.reports import daily_summary, export_report, render_summary, report_status
from shared.state import ExportRecord

EXPORT = "202611250000-TeleMessage_1_20261126003000.zip"


def report():  # noqa: ANN201
    record = ExportRecord(EXPORT, "2026-11-25", manifest_count=4, members=4, queued=4,
                          rejected=0)
    items = [ItemOutcome(EXPORT, "a.eml", Outcome.IMPORTED, mailboxes={"x@c.com": "imported"}),
             ItemOutcome(EXPORT, "b.eml", Outcome.STUBBED, reason="oversize",
                         mailboxes={"x@c.com": "imported"}),
             ItemOutcome(EXPORT, "c.eml", Outcome.IMPORTED_DAMAGED, reason="truncated_mime",
                         mailboxes={"x@c.com": "imported"}),
             ItemOutcome(EXPORT, "d.eml", Outcome.OVERSIZE, reason="oversize")]
    return export_report(record, items)


def test_stubbed_and_damaged_items_are_counted_apart_and_reconcile() -> None:
    built = report()
    assert built.reconciled
    assert dict(built.outcomes) == {"imported": 1, "stubbed": 1, "imported_damaged": 1,
                                    "oversize": 1}
    summary = daily_summary("2026-11-25", [built])
    assert summary["outcomes"]["stubbed"] == 1
    assert summary["outcomes"]["imported_damaged"] == 1
    assert summary["outcomes"]["imported"] == 1
    assert summary["total"] == summary["manifest_count"] == 4
    items = {i["member"]: i for i in built.to_json()["items"]}
    assert items["c.eml"]["reason"] == "truncated_mime"


def test_the_summary_table_has_a_column_for_each() -> None:
    header, row = render_summary([report()]).splitlines()[:2]
    columns = header.split()
    assert "stubbed" in columns and "imported_damaged" in columns
    values = dict(zip(columns[2:], row.split()[2:], strict=False))
    assert (values["imported"], values["stubbed"], values["imported_damaged"]) == ("1", "1", "1")


NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPLIT = (NOW - timedelta(hours=5)).isoformat()  # long past the one-hour grace


def report_with(retry_until: float) -> tuple[str, dict[str, object]]:
    record = ExportRecord("e.zip", "2026-11-25", 2, 2, 2, 0, split_at=SPLIT)
    items = [ItemOutcome("e.zip", "a.eml", Outcome.IMPORTED),
             ItemOutcome("e.zip", "b.eml", Outcome.QUEUED, reason="retrying",
                         detail="retrying until ...", retry_until=retry_until)]
    report = export_report(record, items)
    return report_status(report, SPLIT, NOW, timedelta(hours=1)), report.to_json()


def test_an_export_with_items_retrying_within_their_horizon_is_in_progress() -> None:
    until = (NOW + timedelta(hours=19)).timestamp()
    status, document = report_with(until)
    assert status == "in_progress"
    [item] = [i for i in document["items"] if i["member"] == "b.eml"]  # type: ignore[attr-defined]
    assert item["retrying_until"] == "2026-11-27T07:00:00+00:00"
    assert "retrying after failures" in str(document["discrepancy"])


def test_pending_items_past_the_grace_without_a_retry_horizon_are_unreconciled() -> None:
    assert report_with(0.0)[0] == "unreconciled"
    assert report_with((NOW - timedelta(minutes=1)).timestamp())[0] == "unreconciled"
