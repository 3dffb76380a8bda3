"""Admin commands: inspect, mapping validate/upload, report, status, replay.

`python -m shared --help` lists them; each has its own --help."""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from shared.blob_names import check_blob_name
from shared.eml import InvalidItem, parse_eml
from shared.export_format import ExportCheck, check_export, read_member
from shared.item import Item
from shared.mapping import parse_mapping_csv


def inspect_command(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        if args.member is not None or zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                check = check_export(zf)
                if args.member is None:
                    if args.json:
                        print(json.dumps(_export_json(check), indent=2, ensure_ascii=False))
                    else:
                        print(_export_summary(path.name, check))
                    return 1 if any(m.rejected for m in check.members) else 0
                member = next((m for m in check.members if m.name == args.member), None)
                if member is None:
                    print(f"error: no member {args.member!r} in {path}", file=sys.stderr)
                    return 2
                if member.rejected:
                    print(f"quarantined: {member.rejected}: {member.detail}", file=sys.stderr)
                    return 1
                data = b"".join(read_member(zf, member, member.size))
        else:
            data = path.read_bytes()
    except (OSError, zipfile.BadZipFile) as exc:
        print(f"error: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    try:
        item = parse_eml(data)
    except InvalidItem as invalid:
        print(f"quarantined: {invalid.reason}: {invalid.detail}", file=sys.stderr)
        return 1
    print(json.dumps(item.to_json(), indent=2, ensure_ascii=False) if args.json
          else _item_summary(item))
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
                 f"manifest {check.manifest.name}, count {check.manifest.count}")
    lines = [f"export     {name}", f"manifest   {manifest}",
             f"members    {len(check.members)}: {len(check.accepted)} accepted, "
             f"{len(rejected)} refused",
             f"bytes      {sum(m.size for m in check.members)} uncompressed"]
    for reason, count in Counter(m.rejected for m in rejected).most_common():
        names = [m.name for m in rejected if m.rejected == reason]
        lines.append(f"refused    {reason} x{count}: {', '.join(names[:5])}"
                     + (f" and {len(names) - 5} more" if len(names) > 5 else ""))
    lines += [f"problem    {p.code}: {p.detail}" for p in check.problems]
    lines.append("(--json for every member; add a member name to see its item)")
    return "\n".join(lines)


def _item_summary(item: Item) -> str:
    chat = item.chat.group_name or item.chat.thread_name or item.chat.thread_id or "-"
    lines = [f"archive key  {item.archive_key}", f"kind         {item.kind.value}",
             f"captured     {item.captured_at.isoformat()}",
             f"chat         {chat}{' (group)' if item.chat.is_group else ''}",
             f"direction    {item.direction.value}", f"from         {item.sender.label()}"]
    lines += [f"to           {p.label()}" for p in item.recipients]
    lines.append(f"text         {len(item.text)} characters")
    lines += [f"attachment   {a.name} ({a.content_type}, {a.size} bytes)"
              for a in item.attachments]
    if item.deleted:
        lines.append(f"deleted      original sent {item.deleted.original_sent}")
    if item.call:
        lines.append(f"call         {item.call.call_type} {item.call.status}, "
                     f"{item.call.duration_seconds} s")
    lines.append("(--json for the whole normalized item)")
    return "\n".join(lines)


def mapping_command(args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    table, errors = parse_mapping_csv(text)
    for error in errors:
        print(f"{args.file}:{error.line}: {error.reason}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} bad row(s); nothing applied", file=sys.stderr)
        return 1
    if args.action == "validate":
        print(f"ok: {len(table.by_phone)} number(s) mapped")
        return 0
    from shared.clients import runtime
    from shared.mapping_store import MappingStore

    rt = runtime()
    MappingStore(rt.blob_service, rt.settings.mapping_blob).upload(text)
    print(f"uploaded: {len(table.by_phone)} number(s) mapped; replay unmapped items to apply")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from shared.clients import runtime
    from shared.reports import all_reports, render_summary

    if args.html and args.day is None:
        print("error: --html needs a DATE (the report is per day)", file=sys.stderr)
        return 2
    rt = runtime()
    reports = [r for r in all_reports(rt.state, rt.outcomes)
               if args.day is None or r.day == args.day]
    if args.html:
        from datetime import UTC, datetime

        from shared.report_html import render_day

        args.html.write_text(render_day(args.day, reports, datetime.now(UTC)), encoding="utf-8")
        print(f"wrote {args.html}: {len(reports)} export(s) of {args.day}")
    elif args.json:
        print(json.dumps([r.to_json() for r in reports], indent=2, ensure_ascii=False))
    else:
        print(render_summary(reports))
    return 0 if all(r.reconciled for r in reports) else 1


def progress(done: int, total: int, what: str) -> None:
    """A bar in a terminal, plain lines elsewhere (CI logs)."""
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
    print(f"{verb} {result.items} item(s) from {len(result.exports)} export(s)"
          + (f"; not found: {', '.join(result.missing[:20])}" if result.missing else ""))
    return 1 if result.missing else 0


def status_command(args: argparse.Namespace) -> int:
    from shared.clients import runtime

    rt = runtime()
    depths = rt.queue_depths()
    checkpoint = rt.state.checkpoint()
    fetch = rt.state.last_run("fetch") or {}
    print(f"checkpoint      {checkpoint.isoformat() if checkpoint else 'none (first run)'}")
    print(f"last fetch      {fetch.get('at', 'never')}: stored {fetch.get('stored', 0)}, "
          f"skipped {fetch.get('skipped', 0)}, "
          f"{'ERROR ' + fetch['error'] if fetch.get('error') else 'ok'}")
    print(f"queue {rt.settings.items_queue:<24} {depths['items']}")
    print(f"queue {rt.settings.items_queue + '-poison':<24} {depths['poison']}")
    poisoned = depths["poison"]
    if poisoned:
        print("poison queue not empty: fix the cause, then `python -m shared replay poison`")
    return 1 if poisoned or fetch.get("error") else 0


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
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
