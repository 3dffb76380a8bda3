"""Reports count stubbed and damaged-but-imported items apart from imported ones."""

from __future__ import annotations

from shared.outcomes import ItemOutcome, Outcome
from shared.reports import daily_summary, export_report, render_summary
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
