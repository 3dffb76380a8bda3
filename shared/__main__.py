"""Admin commands: `python -m shared inspect FILE [MEMBER]`, `python -m shared mapping
validate FILE`, `python -m shared mapping upload FILE`, `python -m shared report`."""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

from shared.eml import InvalidItem, parse_eml
from shared.export_format import check_export, read_member
from shared.mapping import parse_mapping_csv


def inspect_command(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        if args.member is not None or zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                check = check_export(zf)
                if args.member is None:
                    print(json.dumps({
                        "manifest_count": check.manifest.count if check.manifest else None,
                        "members": [{"name": m.name, "size": m.size, "rejected": m.rejected,
                                     "detail": m.detail} for m in check.members],
                        "problems": [{"code": p.code, "detail": p.detail,
                                      "names": list(p.names)} for p in check.problems],
                    }, indent=2, ensure_ascii=False))
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
    print(json.dumps(item.to_json(), indent=2, ensure_ascii=False))
    return 0


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

    rt = runtime()
    reports = [r for r in all_reports(rt.state, rt.outcomes)
               if args.day is None or r.day == args.day]
    if args.json:
        print(json.dumps([r.to_json() for r in reports], indent=2, ensure_ascii=False))
    else:
        print(render_summary(reports))
    return 0 if all(r.reconciled for r in reports) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect_parser = commands.add_parser("inspect", help="print the normalized item of an EML "
                                         "file or of one member of an export ZIP as JSON")
    inspect_parser.add_argument("file", type=Path)
    inspect_parser.add_argument("member", nargs="?")
    inspect_parser.set_defaults(run=inspect_command)
    mapping_parser = commands.add_parser("mapping", help="validate or upload the mapping CSV")
    mapping_parser.add_argument("action", choices=["validate", "upload"])
    mapping_parser.add_argument("file", type=Path)
    mapping_parser.set_defaults(run=mapping_command)
    report_parser = commands.add_parser("report", help="per-export reports")
    report_parser.add_argument("day", nargs="?", help="YYYY-MM-DD")
    report_parser.add_argument("--json", action="store_true")
    report_parser.set_defaults(run=report_command)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
