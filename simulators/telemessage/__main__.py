"""Run the TeleMessage simulator standalone: `python -m simulators.telemessage --help`."""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path

from simulators._server import run_until_terminated
from simulators.telemessage.app import iso_z
from simulators.telemessage.simulator import TeleMessageSimulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.telemessage",
                                     description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--workdir", type=Path, required=True, help="where ZIPs are generated")
    parser.add_argument("--days", type=date.fromisoformat, nargs="+",
                        help="UTC days of activity (default: yesterday)")
    parser.add_argument("--items", type=int, default=2000, help="items per day")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--employees", type=int, default=60)
    parser.add_argument("--externals", type=int, default=40)
    parser.add_argument("--max-items-per-zip", type=int, default=1000)
    parser.add_argument("--oversize", type=int, default=3)
    parser.add_argument("--large-attachments", type=int, default=5)
    parser.add_argument("--encrypted", type=int, default=2)
    parser.add_argument("--created-delay-minutes", type=int, default=30)
    parser.add_argument("--username", default="archiver")
    parser.add_argument("--password", default="s3cret")
    args = parser.parse_args(argv)
    sim = TeleMessageSimulator(
        args.workdir, username=args.username, password=args.password, seed=args.seed,
        employees=args.employees, externals=args.externals, days=args.days,
        items_per_day=args.items, max_items_per_zip=args.max_items_per_zip,
        oversize=args.oversize, large_attachments=args.large_attachments,
        encrypted=args.encrypted, created_delay=timedelta(minutes=args.created_delay_minutes))
    sim.start(port=args.port or None)
    print(f"TeleMessage simulator at {sim.url}", flush=True)
    print(f"username: {args.username}  password: {args.password}", flush=True)
    for export in sim.exports:
        print(f"  {export.name}  {export.size} bytes  created {iso_z(export.created_at)}",
              flush=True)
    run_until_terminated(sim.stop)


if __name__ == "__main__":
    main()
