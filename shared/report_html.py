"""The daily report as one self-contained HTML page an admin opens from the storage account (or
prints): the summary, each export's reconciliation, per-mailbox counts, the unmapped numbers and
addresses with the CSV lines to add, the items that need attention with the replay command for
each group, and charts of outcomes and of lag as inline SVG.

No scripts, external styles or fonts. Every value from the data (export and member names,
reasons, details, addresses: they come from EMLs and ZIPs) goes through `_e`, so the page
cannot be made to run or load anything. Long lists are cut at fixed sizes with a line saying
how many more there are and where the full list is (the day's and the exports' JSON), so the
page stays readable, and small, at thousands of mailboxes and tens of thousands of items.
"""

from __future__ import annotations

import shlex
from collections import Counter
from datetime import datetime
from html import escape
from statistics import median

from shared.outcomes import MailboxOutcome, Outcome
from shared.phone import to_e164
from shared.reports import ExportReport, add_up

MAX_MAILBOX_ROWS = 200
MAX_UNMAPPED_ROWS = 200
MAX_CSV_LINES = 1000
MAX_ITEMS_PER_GROUP = 50

# Known outcomes in reading order, with a colour each; others (added later) come after, grey.
_COLOURS = {"imported": "#2e7d32", "stubbed": "#558b2f", "imported_damaged": "#827717",
            "duplicate": "#66bb6a", "unmapped": "#f9a825",
            "oversize": "#ef6c00", "quarantined": "#c62828", "failed": "#6a1b9a",
            "queued": "#1565c0"}
_IMPORTED = {Outcome.IMPORTED.value, Outcome.STUBBED.value, Outcome.IMPORTED_DAMAGED.value}
_SETTLED = {Outcome.IMPORTED.value, Outcome.DUPLICATE.value, Outcome.UNMAPPED.value}
_REPLAYABLE = {"unmapped", "failed", "quarantined", "oversize", "queued"}  # replay's choices
_GROUP_ADVICE = {
    "failed": "Retries exhausted (an outage, or Graph refusing for too long); the messages are "
              "in the poison queue. Fix the cause, then replay them",
    "quarantined": "The input itself is bad or Graph refused it; inspect the item "
                   "(python -m shared inspect) and replay once the cause is fixed (a damaged "
                   "EML: or after setting DAMAGED_POLICY=best_effort)",
    "oversize": "Over MAX_ITEM_BYTES; replay after setting OVERSIZE_POLICY to stub or import "
                "(or raising the limit)",
    "stubbed": "In the mailboxes, each attachment over the limit replaced by a note; the "
               "originals are in the preserved container (OVERSIZE_POLICY)",
    "imported_damaged": "In the mailboxes with what could be read, the original EML attached "
                        "and the defects named (DAMAGED_POLICY=best_effort)",
    "queued": "Split but not imported yet; if this stays, replay them",
}
LAG_BUCKETS = ((15 * 60, "< 15 min"), (3600, "15-60 min"), (6 * 3600, "1-6 h"),
               (24 * 3600, "6-24 h"), (2 * 86400, "1-2 days"), (7 * 86400, "2-7 days"),
               (float("inf"), "> 7 days"))

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1a1a1a;
margin:24px auto;max-width:1100px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:2px solid #ddd}
h3{font-size:15px;margin:16px 0 6px}
.meta{color:#555;margin:0 0 12px}
.banner{padding:10px 14px;border-radius:4px;font-weight:600;margin:12px 0}
.ok{background:#e8f5e9;border:1px solid #2e7d32}.bad{background:#ffebee;border:1px solid #c62828}
.figures{display:flex;flex-wrap:wrap;gap:8px}
.figure{border:1px solid #ccc;border-radius:4px;padding:6px 12px;min-width:90px}
.figure b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;background:#fafafa}
.more{color:#555;font-style:italic}
.wrap{word-break:break-all}
pre{background:#f6f6f6;border:1px solid #ccc;padding:8px;white-space:pre-wrap;
word-break:break-all;font-size:12px}
code{font-size:12px;background:#f6f6f6;padding:1px 3px}
.charts{display:flex;flex-wrap:wrap;gap:24px}
.chart{break-inside:avoid}
@page{size:A4;margin:14mm}
@media print{body{margin:0;max-width:none;font-size:10pt}h2{break-after:avoid}
tr,.figure,.chart{break-inside:avoid}thead{display:table-header-group}}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _outcome_order(names: set[str]) -> list[str]:
    known = [o for o in _COLOURS if o in names]
    return known + sorted(names - set(known))


def _value(outcome: object) -> str:
    return str(getattr(outcome, "value", outcome))


def render_day(day: str, reports: list[ExportReport], generated_at: datetime) -> str:
    reports = sorted(reports, key=lambda r: r.export)
    totals = add_up(reports)
    manifests = [r.manifest_count for r in reports]
    manifest = None if None in manifests else sum(m or 0 for m in manifests)
    total = sum(totals.outcomes.values())
    unreconciled = [r for r in reports if not r.reconciled]
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>Telegram archive report {_e(day)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Telegram archive: daily report for {_e(day)}</h1>",
        f"<p class=\"meta\">Generated {_e(generated_at.isoformat(timespec='seconds'))} from "
        f"{len(reports)} export(s). The same figures, item by item, are in "
        f"<code>reports/days/{_e(day)}.json</code> and <code>reports/exports/&lt;export&gt;.json"
        "</code>.</p>",
    ]
    if not reports:
        parts.append("<p class=\"banner bad\">No export was split for this day.</p>")
    elif unreconciled:
        parts.append(f"<p class=\"banner bad\" data-figure=\"reconciled\" data-value=\"false\">"
                     f"{len(unreconciled)} of {len(reports)} export(s) do not reconcile: see "
                     "the exports below.</p>")
    else:
        parts.append(f"<p class=\"banner ok\" data-figure=\"reconciled\" data-value=\"true\">"
                     f"All {len(reports)} export(s) reconcile: every item of the manifest has "
                     "a final outcome.</p>")
    parts += _summary(manifest, total, totals.outcomes, len(totals.per_mailbox),
                      len(totals.unmapped))
    parts += _charts(totals.outcomes, reports)
    parts += _exports(reports, totals.outcomes, generated_at)
    parts += _attention(reports)
    parts += _unmapped(totals.unmapped)
    parts += _mailboxes(totals.per_mailbox)
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _figure(label: str, key: str, value: object) -> str:
    return (f"<div class=\"figure\">{_e(label)}<b data-figure=\"{_e(key)}\">{_e(value)}</b>"
            "</div>")


def _summary(manifest: int | None, total: int, outcomes: Counter[str], mailboxes: int,
             unmapped: int) -> list[str]:
    parts = ["<h2>Summary</h2><div class=\"figures\">",
             _figure("manifest count", "manifest_count", "-" if manifest is None else manifest),
             _figure("items with an outcome", "total", total)]
    parts += [_figure(name, f"outcome:{name}", outcomes[name])
              for name in _outcome_order(set(outcomes))]
    parts += [_figure("mailboxes", "mailboxes", mailboxes),
              _figure("unmapped participants", "unmapped_participants", unmapped), "</div>"]
    return parts


def _bars(title: str, rows: list[tuple[str, int, str]]) -> str:
    """A horizontal bar chart: one (label, count, colour) per bar."""
    top = max((count for _, count, _ in rows), default=0) or 1
    height = 24 * len(rows) + 30
    svg = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"480\" height=\"{height}\" "
           f"role=\"img\" aria-label=\"{_e(title)}\">",
           f"<text x=\"0\" y=\"16\" font-size=\"14\" font-weight=\"600\">{_e(title)}</text>"]
    for index, (label, count, colour) in enumerate(rows):
        y = 28 + 24 * index
        width = round(260 * count / top)
        svg.append(f"<text x=\"0\" y=\"{y + 14}\" font-size=\"12\">{_e(label)}</text>"
                   f"<rect x=\"130\" y=\"{y}\" width=\"{width}\" height=\"18\" "
                   f"fill=\"{colour}\"/>"
                   f"<text x=\"{136 + width}\" y=\"{y + 14}\" font-size=\"12\">{count}</text>")
    svg.append("</svg>")
    return "".join(svg)


def lags(reports: list[ExportReport]) -> list[float]:
    """Seconds from capture to the recorded import, for imported items whose capture time is
    known."""
    return [i.updated - i.captured for r in reports for i in r.items
            if _value(i.outcome) in _IMPORTED and i.captured and i.updated]


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _charts(outcomes: Counter[str], reports: list[ExportReport]) -> list[str]:
    order = _outcome_order(set(outcomes))
    outcome_chart = _bars("Items by outcome", [(name, outcomes[name],
                                                _COLOURS.get(name, "#9e9e9e"))
                                               for name in order])
    values = sorted(lags(reports))
    counts = Counter(next(label for limit, label in LAG_BUCKETS if lag < limit)
                     for lag in values)
    lag_chart = _bars("Lag from capture to mailbox (imported items)",
                      [(label, counts[label], "#1565c0") for _, label in LAG_BUCKETS])
    if values:
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        lag_text = (f"median <b data-figure=\"lag_median_seconds\" data-value=\""
                    f"{round(median(values))}\">{_duration(median(values))}</b>, 95th "
                    f"percentile <b data-figure=\"lag_p95_seconds\" data-value=\"{round(p95)}\">"
                    f"{_duration(p95)}</b> over {len(values)} imported item(s)")
    else:
        lag_text = "no imported item with a known capture time"
    return ["<h2>Charts</h2><div class=\"charts\">",
            f"<div class=\"chart\">{outcome_chart}</div>",
            f"<div class=\"chart\">{lag_chart}<p>Lag: {lag_text}.</p></div>", "</div>"]


def _exports(reports: list[ExportReport], outcomes: Counter[str], now: datetime) -> list[str]:
    columns = _outcome_order(set(outcomes))
    parts = ["<h2>Exports</h2><table><thead><tr><th>export</th><th class=\"n\">manifest</th>"
             "<th class=\"n\">total</th>"
             + "".join(f"<th class=\"n\">{_e(c)}</th>" for c in columns)
             + "<th>reconciled</th></tr></thead><tbody>"]
    for report in reports:
        manifest = "-" if report.manifest_count is None else report.manifest_count
        status = "yes" if report.reconciled else f"NO: {report.discrepancy()}"
        retrying = report.retrying_until(now)
        if retrying is not None:
            status += f"; retrying until {retrying.isoformat(timespec='seconds')}"
        problems = "".join(f"<br>{_e(p.get('code', ''))}: {_e(p.get('detail', ''))}"
                           for p in report.problems[:20])
        parts.append(f"<tr data-export=\"{_e(report.export)}\"><td class=\"wrap\">"
                     f"{_e(report.export)}</td><td class=\"n\">{_e(manifest)}</td>"
                     f"<td class=\"n\">{report.total}</td>"
                     + "".join(f"<td class=\"n\" data-outcome=\"{_e(c)}\">"
                               f"{report.outcomes.get(c, 0)}</td>" for c in columns)
                     + f"<td>{_e(status)}{problems}</td></tr>")
    parts.append("</tbody></table>")
    return parts


def replay_command(outcome: str, exports: list[str]) -> str | None:
    """The command that re-queues a group's items (None when replay has no such outcome)."""
    if outcome not in _REPLAYABLE:
        return None
    return shlex.join(["python", "-m", "shared", "replay", "outcomes", outcome, "--exports",
                       *sorted(exports)])


def _attention(reports: list[ExportReport]) -> list[str]:
    groups: dict[tuple[str, str], list[tuple[str, str, str, int]]] = {}
    for report in reports:
        for item in report.items:
            outcome = _value(item.outcome)
            if outcome not in _SETTLED:
                groups.setdefault((outcome, item.reason), []).append(
                    (report.export, item.member, item.detail, item.size))
    parts = ["<h2>Items that need attention</h2>"]
    if not groups:
        return parts + ["<p>None: every item was imported, a duplicate, or unmapped.</p>"]
    for (outcome, reason), items in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0])):
        exports = sorted({export for export, *_ in items})
        parts.append(f"<h3 data-group=\"{_e(outcome)}:{_e(reason)}\">{_e(outcome)}"
                     f"{': ' + _e(reason) if reason else ''} "
                     f"(<span data-figure=\"group:{_e(outcome)}:{_e(reason)}\">{len(items)}"
                     "</span> item(s))</h3>")
        if outcome in _GROUP_ADVICE:
            parts.append(f"<p>{_e(_GROUP_ADVICE[outcome])}.</p>")
        command = replay_command(outcome, exports)
        if command:
            parts.append(f"<pre data-replay=\"{_e(outcome)}\">{_e(command)}</pre>")
            if outcome == "failed":
                parts.append("<p>or move the whole poison queue back: "
                             "<code>python -m shared replay poison</code></p>")
        else:
            parts.append("<p>No replay command for this outcome.</p>")
        parts.append("<table><thead><tr><th>export</th><th>member</th><th class=\"n\">bytes"
                     "</th><th>detail</th></tr></thead><tbody>")
        for export, member, detail, size in sorted(items)[:MAX_ITEMS_PER_GROUP]:
            parts.append(f"<tr><td class=\"wrap\">{_e(export)}</td><td class=\"wrap\">"
                         f"{_e(member)}</td><td class=\"n\">{size}</td>"
                         f"<td class=\"wrap\">{_e(detail[:300])}</td></tr>")
        if len(items) > MAX_ITEMS_PER_GROUP:
            parts.append(f"<tr><td colspan=\"4\" class=\"more\">and "
                         f"{len(items) - MAX_ITEMS_PER_GROUP} more: every item is in "
                         "reports/exports/&lt;export&gt;.json</td></tr>")
        parts.append("</tbody></table>")
    return parts


def csv_line(participant: str) -> str | None:
    """The mapping CSV line for an unmapped number (TeleMessage's form: digits with the
    country code), the mailbox left for the admin to fill in; None for anything else."""
    number = to_e164(participant)
    return f"{number.removeprefix('+')}," if number else None


def _unmapped(unmapped: Counter[str]) -> list[str]:
    parts = ["<h2>Unmapped participants</h2>"]
    if not unmapped:
        return parts + ["<p>None.</p>"]
    parts.append("<p>Items in which no participant maps to a Microsoft 365 user. Add the numbers "
                 "to the mapping CSV, upload it (<code>python -m shared mapping upload FILE"
                 "</code>), then <code>python -m shared replay outcomes unmapped</code>. An "
                 "address maps only when it is a Microsoft 365 user's (automatic mapping); "
                 "&quot;(no mailbox)&quot; is a user without a usable mailbox.</p>")
    parts.append("<table><thead><tr><th>number or address</th><th class=\"n\">items</th>"
                 "</tr></thead><tbody>")
    ranked = unmapped.most_common()
    for participant, count in ranked[:MAX_UNMAPPED_ROWS]:
        parts.append(f"<tr><td class=\"wrap\" data-participant=\"{_e(participant)}\">"
                     f"{_e(participant)}</td><td class=\"n\">{count}</td></tr>")
    if len(ranked) > MAX_UNMAPPED_ROWS:
        rest = ranked[MAX_UNMAPPED_ROWS:]
        parts.append(f"<tr><td class=\"more\">and {len(rest)} more (all in the day's JSON)</td>"
                     f"<td class=\"n\">{sum(c for _, c in rest)}</td></tr>")
    parts.append("</tbody></table>")
    lines = [line for participant, _ in ranked if (line := csv_line(participant))]
    if lines:
        parts.append("<h3>Lines to add to the mapping CSV (write each user's mailbox after "
                     "the comma)</h3>")
        shown = lines[:MAX_CSV_LINES]
        parts.append("<pre data-csv=\"mapping\">External User ID,Microsoft 365 User Mailbox\n"
                     + "\n".join(_e(line) for line in shown) + "</pre>")
        if len(lines) > MAX_CSV_LINES:
            parts.append(f"<p class=\"more\">and {len(lines) - MAX_CSV_LINES} more numbers "
                         "(all in the day's JSON).</p>")
    return parts


def _mailboxes(per_mailbox: dict[str, Counter[str]]) -> list[str]:
    parts = ["<h2>Per mailbox</h2>"]
    if not per_mailbox:
        return parts + ["<p>No item reached a mailbox.</p>"]
    known = [m.value for m in MailboxOutcome]
    seen = {name for counts in per_mailbox.values() for name in counts}
    columns = [c for c in known if c in seen or c in ("imported", "duplicate")]
    columns += sorted(seen - set(columns))

    def rank(entry: tuple[str, Counter[str]]) -> tuple[int, int, str]:
        mailbox, counts = entry
        problems = sum(n for name, n in counts.items() if name not in ("imported", "duplicate"))
        return (-problems, -sum(counts.values()), mailbox)

    ranked = sorted(per_mailbox.items(), key=rank)
    parts.append(f"<p>{len(ranked)} mailbox(es); those with a problem first, then by number of "
                 "items.</p>")
    parts.append("<table><thead><tr><th>mailbox</th>"
                 + "".join(f"<th class=\"n\">{_e(c)}</th>" for c in columns)
                 + "</tr></thead><tbody>")
    for mailbox, counts in ranked[:MAX_MAILBOX_ROWS]:
        parts.append(f"<tr data-mailbox=\"{_e(mailbox)}\"><td class=\"wrap\">{_e(mailbox)}</td>"
                     + "".join(f"<td class=\"n\" data-outcome=\"{_e(c)}\">{counts.get(c, 0)}"
                               "</td>" for c in columns) + "</tr>")
    rest = ranked[MAX_MAILBOX_ROWS:]
    if rest:
        rest_counts: Counter[str] = Counter()
        for _, counts in rest:
            rest_counts.update(counts)
        parts.append(f"<tr><td class=\"more\">and {len(rest)} more mailboxes (all in the day's "
                     "JSON)</td>" + "".join(f"<td class=\"n\">{rest_counts.get(c, 0)}</td>"
                                            for c in columns) + "</tr>")
    all_counts: Counter[str] = Counter()
    for counts in per_mailbox.values():
        all_counts.update(counts)
    parts.append("<tr class=\"total\"><td>all mailboxes</td>"
                 + "".join(f"<td class=\"n\" data-figure=\"mailboxes:{_e(c)}\">"
                           f"{all_counts.get(c, 0)}</td>" for c in columns) + "</tr>")
    parts.append("</tbody></table>")
    return parts
