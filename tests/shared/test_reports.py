"""Report status while items retry after failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.outcomes import ItemOutcome, Outcome
from shared.reports import export_report, report_status
from shared.state import ExportRecord

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
