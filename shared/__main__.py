"""Admin commands: inspect, mapping validate/upload, report, status, replay, ledger rebuild.

`python -m shared --help` lists them; each has its own --help. Everything they print goes
through shared.terminal: names and details come from exports, whose control characters must not
reach the admin's terminal."""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from shared.blob_names import check_blob_name
from shared.eml import InvalidItem, parse_eml
from shared.export_format import ExportCheck, ExportRefused, check_export, open_export, read_member
from shared.item import Item
from shared.mapping import parse_mapping_csv
from shared.terminal import printable, printable_json, printable_lines


def say(text: str, err: bool = False) -> None:
    print(printable_lines(text), file=sys.stderr if err else sys.stdout)


def inspect_command(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        if args.member is not None or zipfile.is_zipfile(path):
            with path.open("rb") as fp, open_export(fp) as zf:
                check = check_export(zf)
                if args.member is None:
                    if args.json:
                        say(printable_json(_export_json(check)))
                    else:
                        say(_export_summary(path.name, check))
                    return 1 if any(m.rejected for m in check.members) else 0
                member = next((m for m in check.members if m.name == args.member), None)
                if member is None:
                    say(f"error: no member {printable(args.member)} in {printable(path)}",
                        err=True)
                    return 2
                if member.rejected:
                    say(f"quarantined: {member.rejected}: {printable(member.detail)}", err=True)
                    return 1
                data = b"".join(read_member(zf, member, member.size))
        else:
            data = path.read_bytes()
    except (OSError, zipfile.BadZipFile) as exc:
        say(f"error: cannot read {printable(path)}: {printable(exc)}", err=True)
        return 2
    except ExportRefused as refused:
        say(f"refused: {refused.reason}: {printable(refused.detail)}", err=True)
        return 1
    try:
        item = parse_eml(data)
    except InvalidItem as invalid:
        say(f"quarantined: {invalid.reason}: {printable(invalid.detail)}", err=True)
        return 1
    say(printable_json(item.to_json()) if args.json else _item_summary(item))
    return 0


def _export_json(check: ExportCheck) -> dict[str, Any]:
    return {
        "manifest_count": check.manifest.count if check.manifest else None,
        "members": [{"name": m.name, "size": m.size, "rejected": m.rejected,
                     "detail": m.detail} for m in check.members],
        "problems": [{"code": p.code, "detail": p.detail, "names": list(p.names)}
                     for p in check.problems],
    }


def _export_summary(name: str, check: ExportCheck) -> str:
    rejected = [m for m in check.members if m.rejected]
    manifest = ("no manifest" if check.manifest is None else
                 f"manifest {printable(check.manifest.name)}, count {check.manifest.count}")
    lines = [f"export     {printable(name)}", f"manifest   {manifest}",
             f"members    {len(check.members)}: {len(check.accepted)} accepted, "
             f"{len(rejected)} refused",
             f"bytes      {sum(m.size for m in check.members)} uncompressed"]
    for reason, count in Counter(m.rejected for m in rejected).most_common():
        names = [printable(m.name) for m in rejected if m.rejected == reason]
        lines.append(f"refused    {reason} x{count}: {', '.join(names[:5])}"
                     + (f" and {len(names) - 5} more" if len(names) > 5 else ""))
    lines += [f"problem    {p.code}: {printable(p.detail)}" for p in check.problems]
    lines.append("(--json for every member; add a member name to see its item)")
    return "\n".join(lines)


def _item_summary(item: Item) -> str:
    chat = item.chat.group_name or item.chat.thread_name or item.chat.thread_id or "-"
    lines = [f"archive key  {printable(item.archive_key)}", f"kind         {item.kind.value}",
             f"captured     {item.captured_at.isoformat()}",
             f"chat         {printable(chat)}{' (group)' if item.chat.is_group else ''}",
             f"direction    {item.direction.value}",
             f"from         {printable(item.sender.label())}"]
    lines += [f"to           {printable(p.label())}" for p in item.recipients]
    lines.append(f"text         {len(item.text)} characters")
    lines += [f"attachment   {printable(a.name)} ({printable(a.content_type)}, {a.size} bytes)"
              for a in item.attachments]
    if item.deleted:
        lines.append(f"deleted      original sent {item.deleted.original_sent}")
    if item.call:
        lines.append(f"call         {printable(item.call.call_type)} "
                     f"{printable(item.call.status)}, "
                     f"{item.call.duration_seconds} s")
    lines.append("(--json for the whole normalized item)")
    return "\n".join(lines)


def mapping_command(args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        say(f"error: cannot read {printable(args.file)}: {printable(exc)}", err=True)
        return 2
    table, errors = parse_mapping_csv(text)
    for error in errors:
        say(f"{printable(args.file)}:{error.line}: {printable(error.reason)}", err=True)
    if errors:
        say(f"{len(errors)} bad row(s); nothing applied", err=True)
        return 1
    if args.action == "validate":
        say(f"ok: {len(table.by_phone)} number(s) mapped")
        return 0
    from shared.clients import runtime
    from shared.mapping_store import MappingStore

    rt = runtime()
    MappingStore(rt.blob_service, rt.settings.mapping_blob).upload(text)
    say(f"uploaded: {len(table.by_phone)} number(s) mapped; replay unmapped items to apply")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from shared.clients import runtime
    from shared.reports import all_reports, render_summary

    if args.html and args.day is None:
        say("error: --html needs a DATE (the report is per day)", err=True)
        return 2
    rt = runtime()
    reports = [r for r in all_reports(rt.state, rt.outcomes)
               if args.day is None or r.day == args.day]
    if args.html:
        from datetime import UTC, datetime

        from shared.report_html import render_day

        args.html.write_text(render_day(args.day, reports, datetime.now(UTC)), encoding="utf-8")
        say(f"wrote {printable(args.html)}: {len(reports)} export(s) of {printable(args.day)}")
    elif args.json:
        say(printable_json([r.to_json() for r in reports]))
    else:
        say(render_summary(reports))
    return 0 if all(r.reconciled for r in reports) else 1


def progress(done: int, total: int, what: str) -> None:
    """A bar in a terminal, plain lines elsewhere (CI logs)."""
    what = printable(what)
    if sys.stderr.isatty() and total:
        filled = int(30 * done / total)
        print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {what[:50]:<50}",
              end="" if done < total else "\n", file=sys.stderr, flush=True)
    else:
        print(f"{done}/{total or '?'} {what}", file=sys.stderr, flush=True)


def replay_command(args: argparse.Namespace) -> int:
    from datetime import date

    from shared.clients import runtime
    from shared.outcomes import Outcome
    from shared.replay import Replayer

    replayer = Replayer(runtime(), progress)
    if args.what == "export":
        result = replayer.exports(args.names, args.dry_run)
    elif args.what == "days":
        last = date.fromisoformat(args.to) if args.to else date.fromisoformat(args.first)
        result = replayer.days(date.fromisoformat(args.first), last, args.dry_run)
    elif args.what == "item":
        result = replayer.item(args.export, args.member, args.dry_run)
    elif args.what == "outcomes":
        result = replayer.outcomes({Outcome(o) for o in args.outcomes}, args.exports,
                                   args.dry_run)
    else:
        result = replayer.poison(args.dry_run)
    verb = "would re-queue" if result.dry_run else "re-queued"
    say(f"{verb} {result.items} item(s) from {len(result.exports)} export(s)"
        + (f"; not found: {', '.join(printable(m) for m in result.missing[:20])}"
           if result.missing else ""))
    return 1 if result.missing else 0


def status_command(args: argparse.Namespace) -> int:
    from shared.clients import runtime

    rt = runtime()
    depths = rt.queue_depths()
    checkpoint = rt.state.checkpoint()
    fetch = rt.state.last_run("fetch") or {}
    say(f"checkpoint      {checkpoint.isoformat() if checkpoint else 'none (first run)'}")
    say(f"last fetch      {printable(fetch.get('at', 'never'))}: "
        f"stored {printable(fetch.get('stored', 0))}, "
        f"skipped {printable(fetch.get('skipped', 0))}, "
        f"{'ERROR ' + printable(fetch['error']) if fetch.get('error') else 'ok'}")
    say(f"queue {rt.settings.items_queue:<24} {depths['items']}")
    say(f"queue {rt.settings.items_queue + '-poison':<24} {depths['poison']}")
    poisoned = depths["poison"]
    if poisoned:
        say("poison queue not empty: fix the cause, then `python -m shared replay poison`")
    return 1 if poisoned or fetch.get("error") else 0


def ledger_command(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from shared.clients import graph_mailboxes, runtime
    from shared.ledger_rebuild import LedgerRebuilder
    from shared.mapping_store import MappingStore
    from shared.throttle import MailboxGate

    rt = runtime()
    s = rt.settings
    mailboxes = set(args.mailbox or [])
    if not mailboxes:  # every mailbox the mapping names or an outcome lists
        mailboxes |= set(MappingStore(rt.blob_service, s.mapping_blob).current()
                         .by_phone.values())
        for record in rt.state.exports():
            for outcome in rt.outcomes.for_export(record.name):
                mailboxes |= {m for m, result in outcome.mailboxes.items()
                              if result in ("imported", "duplicate", "failed")}

    async def rebuild() -> list[dict[str, object]]:
        graph = graph_mailboxes(s, MailboxGate(s.graph_max_concurrency_per_mailbox))
        rebuilder = LedgerRebuilder(graph, rt.ledger, rt.run_io, s.archive_folder_name,
                                    progress)
        return [r.to_json() for r in await rebuilder.run(mailboxes)]

    results = asyncio.run(rebuild())
    if args.json:
        print(json.dumps(results, indent=2))
    for r in results:
        print(f"{r['mailbox']}: {r['messages']} message(s), {r['restored']} restored, "
              f"{r['known']} already known" + (f", {r['duplicates']} duplicate(s) in the "
                                               "mailbox" if r["duplicates"] else "")
              + (f"; ERROR {r['error']}" if r["error"] else ""), file=sys.stderr)
    print(f"restored {sum(int(str(r['restored'])) for r in results)} ledger row(s) from "
          f"{len(results)} mailbox(es)", file=sys.stderr)
    return 1 if any(r["error"] for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect_parser = commands.add_parser("inspect", help="summarize an EML file, an export "
                                         "ZIP or one member of it (--json: all of it)")
    inspect_parser.add_argument("file", type=Path)
    inspect_parser.add_argument("member", nargs="?")
    inspect_parser.add_argument("--json", action="store_true")
    inspect_parser.set_defaults(run=inspect_command)
    mapping_parser = commands.add_parser("mapping", help="validate or upload the mapping CSV")
    mapping_parser.add_argument("action", choices=["validate", "upload"])
    mapping_parser.add_argument("file", type=Path)
    mapping_parser.set_defaults(run=mapping_command)
    report_parser = commands.add_parser("report", help="per-export reports")
    report_parser.add_argument("day", nargs="?", help="YYYY-MM-DD")
    report_parser.add_argument("--json", action="store_true")
    report_parser.add_argument("--html", type=Path, metavar="FILE",
                               help="write the day's readable report (as reconcile does)")
    report_parser.set_defaults(run=report_command)
    status_parser = commands.add_parser("status", help="checkpoint, last fetch, queue depths")
    status_parser.set_defaults(run=status_command)
    replay_parser = commands.add_parser("replay", help="re-queue exports, items or the poison "
                                        "queue (safe to repeat)")
    replay_parser.add_argument("--dry-run", action="store_true", help="only count")
    what = replay_parser.add_subparsers(dest="what", required=True)
    export_parser = what.add_parser("export", help="split export blobs again")
    export_parser.add_argument("names", nargs="+", type=check_blob_name)
    days_parser = what.add_parser("days", help="every export of a date range")
    days_parser.add_argument("first", help="YYYY-MM-DD")
    days_parser.add_argument("to", nargs="?", help="YYYY-MM-DD (default: first)")
    item_parser = what.add_parser("item", help="one item")
    item_parser.add_argument("export", type=check_blob_name)
    item_parser.add_argument("member")
    outcomes_parser = what.add_parser("outcomes", help="items with these outcomes, e.g. "
                                      "unmapped after a mapping fix")
    outcomes_parser.add_argument("outcomes", nargs="+",
                                 choices=["unmapped", "failed", "quarantined", "oversize",
                                          "queued"])
    outcomes_parser.add_argument("--exports", nargs="*", type=check_blob_name)
    what.add_parser("poison", help="move the poison queue back onto the items queue")
    replay_parser.set_defaults(run=replay_command)
    ledger_parser = commands.add_parser("ledger", help="rebuild the exactly-once ledger from "
                                        "the mailboxes (after it was lost)")
    ledger_action = ledger_parser.add_subparsers(dest="action", required=True)
    rebuild_parser = ledger_action.add_parser(
        "rebuild", help="restore ledger rows from the archive-key property of the messages in "
        "each mapped mailbox's archive folder")
    rebuild_parser.add_argument("--mailbox", action="extend", nargs="+", metavar="UPN",
                                help="only these mailboxes; default: every mailbox "
                                "the mapping CSV names or an outcome lists")
    rebuild_parser.add_argument("--json", action="store_true")
    ledger_parser.set_defaults(run=ledger_command)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
