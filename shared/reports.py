"""Reports an admin can act on: per export, the manifest count reconciled with the recorded
outcomes, item by item; per mailbox counts; the unmapped numbers and addresses with counts."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.storage.blob import ContainerClient, ContentSettings

from shared.outcomes import ItemOutcome, Outcome, OutcomeStore
from shared.state import ExportRecord, StateStore
from shared.telemetry import event
from shared.terminal import printable

log = logging.getLogger(__name__)


@dataclass
class ExportReport:
    export: str
    day: str | None
    manifest_count: int | None
    outcomes: Counter[str]
    per_mailbox: dict[str, Counter[str]]
    unmapped: Counter[str]
    quarantine_reasons: Counter[str]
    problems: list[dict[str, Any]]
    error: str
    items: list[ItemOutcome] = field(repr=False, default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def pending(self) -> int:
        return self.outcomes.get(Outcome.QUEUED.value, 0)

    @property
    def reconciled(self) -> bool:
        """Every item has a final outcome and their sum equals the manifest's count."""
        if self.error or self.pending:
            return False
        return self.manifest_count is None or self.manifest_count == self.total

    def discrepancy(self) -> str:
        if self.error:
            return self.error
        parts = []
        if self.pending:
            parts.append(f"{self.pending} item(s) still pending")
        if self.manifest_count is not None and self.manifest_count != self.total:
            parts.append(f"manifest counts {self.manifest_count}, outcomes sum to {self.total} "
                         f"({self.total - self.manifest_count:+d})")
        parts += [p["detail"] for p in self.problems if p.get("code", "").startswith("manifest")]
        return "; ".join(parts)

    def timings(self) -> dict[str, str | float | None]:
        """When the first and the last outcome of the export were recorded."""
        stamps = sorted(i.updated for i in self.items if i.updated)
        if not stamps:
            return {"first_outcome_at": None, "last_outcome_at": None, "span_seconds": None}
        return {"first_outcome_at": datetime.fromtimestamp(stamps[0], UTC).isoformat(),
                "last_outcome_at": datetime.fromtimestamp(stamps[-1], UTC).isoformat(),
                "span_seconds": round(stamps[-1] - stamps[0], 3)}

    def to_json(self) -> dict[str, Any]:
        return {
            "export": self.export, "day": self.day, "manifest_count": self.manifest_count,
            "total": self.total, "reconciled": self.reconciled,
            "discrepancy": self.discrepancy(), "outcomes": dict(self.outcomes),
            "per_mailbox": {m: dict(c) for m, c in sorted(self.per_mailbox.items())},
            "unmapped": dict(self.unmapped.most_common()),
            "quarantine_reasons": dict(self.quarantine_reasons), "problems": self.problems,
            "timings": self.timings(),
            "items": [{"member": i.member, "outcome": i.outcome.value, "reason": i.reason,
                       "detail": i.detail, "size": i.size, "archive_key": i.archive_key,
                       "kind": i.kind, "mailboxes": i.mailboxes, "unmapped": i.unmapped,
                       "captured_at": datetime.fromtimestamp(i.captured, UTC).isoformat()
                       if i.captured else None}
                      for i in sorted(self.items, key=lambda i: i.member)],
        }


def export_report(record: ExportRecord, items: list[ItemOutcome]) -> ExportReport:
    per_mailbox: dict[str, Counter[str]] = {}
    unmapped: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for item in items:
        for mailbox, result in item.mailboxes.items():
            per_mailbox.setdefault(mailbox, Counter())[result] += 1
        if item.outcome is Outcome.UNMAPPED:
            unmapped.update(item.unmapped)
        if item.outcome in (Outcome.QUARANTINED, Outcome.FAILED):
            reasons[item.reason] += 1
    return ExportReport(
        export=record.name, day=record.day, manifest_count=record.manifest_count,
        outcomes=Counter(i.outcome.value for i in items), per_mailbox=per_mailbox,
        unmapped=unmapped, quarantine_reasons=reasons, problems=record.problems,
        error=record.error, items=items)


def all_reports(state: StateStore, outcomes: OutcomeStore) -> list[ExportReport]:
    return [export_report(record, outcomes.for_export(record.name))
            for record in sorted(state.exports(), key=lambda r: r.name)]


@dataclass
class Totals:
    """Several exports' reports added up (a day's ZIPs, or everything shown at once)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    per_mailbox: dict[str, Counter[str]] = field(default_factory=dict)
    unmapped: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


def add_up(reports: list[ExportReport]) -> Totals:
    totals = Totals()
    for report in reports:
        totals.outcomes.update(report.outcomes)
        totals.unmapped.update(report.unmapped)
        totals.reasons.update(report.quarantine_reasons)
        for mailbox, counts in report.per_mailbox.items():
            totals.per_mailbox.setdefault(mailbox, Counter()).update(counts)
    return totals


def render_summary(reports: list[ExportReport]) -> str:
    """A plain-text summary: per export, totals by outcome and per mailbox; every value from an
    export is escaped for the terminal (one line per row, whatever it contains)."""
    lines: list[str] = []
    totals = add_up(reports)
    columns = [o.value for o in Outcome if o is not Outcome.QUEUED] + ["queued"]
    width = {c: max(11, len(c)) for c in columns}
    lines.append(f"{'export':<52} {'manifest':>8} "
                 + " ".join(f"{c:>{width[c]}}" for c in columns) + "  reconciled")
    for report in reports:
        manifest = "-" if report.manifest_count is None else str(report.manifest_count)
        lines.append(f"{printable(report.export)[:52]:<52} {manifest:>8} "
                     + " ".join(f"{report.outcomes.get(c, 0):>{width[c]}}" for c in columns)
                     + ("  yes" if report.reconciled
                        else f"  NO: {printable(report.discrepancy())}"))
    lines.append(f"{'total':<52} {'':>8} "
                 + " ".join(f"{totals.outcomes.get(c, 0):>{width[c]}}" for c in columns))
    if totals.reasons:
        lines.append("quarantined/failed by reason: " + ", ".join(
            f"{printable(r)}={n}" for r, n in totals.reasons.most_common()))
    if totals.unmapped:
        lines.append("unmapped participants (fix the mapping CSV, then replay): " + ", ".join(
            f"{printable(p)} x{n}" for p, n in totals.unmapped.most_common(20)))
    lines.append("")
    lines.append(f"{'mailbox':<44} {'imported':>9} {'duplicate':>9} {'no_mailbox':>10}")
    for mailbox, counts in sorted(totals.per_mailbox.items()):
        lines.append(f"{printable(mailbox)[:44]:<44} {counts.get('imported', 0):>9} "
                     f"{counts.get('duplicate', 0):>9} {counts.get('no_mailbox', 0):>10}")
    return "\n".join(lines)


def report_status(report: ExportReport, split_at: str, now: datetime,
                  grace: timedelta) -> str:
    """complete, in_progress (items pending within the grace period), or unreconciled."""
    if report.reconciled:
        return "complete"
    if report.error:
        return "unreconciled"
    try:
        started = datetime.fromisoformat(split_at)
    except ValueError:
        return "unreconciled"
    return "in_progress" if report.pending and now - started < grace else "unreconciled"


def publish_reports(state: StateStore, outcomes: OutcomeStore, reports_container: ContainerClient,
                    now: datetime, lookback: timedelta = timedelta(days=3),
                    grace: timedelta = timedelta(hours=1)) -> list[dict[str, Any]]:
    """Writes `exports/<export>.json`, `days/<day>.json` and `days/<day>.html` for recently
    split exports and logs one "export report" event each (what the unreconciled-report alert
    and the workbook query)."""
    from shared.report_html import render_day  # it renders this module's reports

    published: list[dict[str, Any]] = []
    by_day: dict[str, list[ExportReport]] = {}
    for record in state.exports():
        try:
            split_at = datetime.fromisoformat(record.split_at)
        except ValueError:
            continue
        if now - split_at > lookback:
            continue
        report = export_report(record, outcomes.for_export(record.name))
        status = report_status(report, record.split_at, now, grace)
        document = report.to_json() | {"status": status, "split_at": record.split_at,
                                       "generated_at": now.isoformat()}
        reports_container.upload_blob(f"exports/{record.name}.json",
                                      json.dumps(document, indent=1, ensure_ascii=False),
                                      overwrite=True)
        by_day.setdefault(record.day or "undated", []).append(report)
        event(log, "export report", logging.INFO if status != "unreconciled" else logging.ERROR,
              export=record.name, day=record.day or "undated", status=status,
              reconciled=report.reconciled,
              discrepancy=report.discrepancy()[:500], total=report.total,
              manifest_count=report.manifest_count if report.manifest_count is not None else -1)
        published.append(document)
    for day, reports in by_day.items():
        reports_container.upload_blob(f"days/{day}.json", json.dumps(
            daily_summary(day, reports), indent=1, ensure_ascii=False), overwrite=True)
        reports_container.upload_blob(
            f"days/{day}.html", render_day(day, reports, now).encode("utf-8"), overwrite=True,
            content_settings=ContentSettings(content_type="text/html; charset=utf-8"))
    return published


def daily_summary(day: str, reports: list[ExportReport]) -> dict[str, Any]:
    """One day across its ZIPs (a busy day spans several `TeleMessage_<file#>` exports)."""
    totals = add_up(reports)
    manifests = [r.manifest_count for r in reports]
    return {"day": day, "exports": sorted(r.export for r in reports),
            "manifest_count": None if None in manifests else sum(m or 0 for m in manifests),
            "total": sum(totals.outcomes.values()), "outcomes": dict(totals.outcomes),
            "reconciled": all(r.reconciled for r in reports),
            "per_mailbox": {m: dict(c) for m, c in sorted(totals.per_mailbox.items())},
            "unmapped": dict(totals.unmapped.most_common())}
