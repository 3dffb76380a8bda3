"""The main job, locally: one day of a synthetic organization through the three functions."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import function_app
from devhost.host import LocalFunctionsHost
from devhost.stack import LocalStack
from devhost.workers import QueueWorkers
from shared.clients import Runtime, set_runtime
from shared.reports import all_reports, render_summary
from shared.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost demo", description=__doc__)
    parser.add_argument("--items", type=int, default=2000, help="items in the day")
    parser.add_argument("--employees", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path(".work/demo"))
    parser.add_argument("--passes", type=int, default=1,
                        help="run the day this many times (the 2nd shows duplicates)")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes draining the items queue (as Azure instances)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    day = datetime.now(UTC).date() - timedelta(days=1)
    with LocalStack(args.workdir, days=[day], items_per_day=args.items,
                    employees=args.employees, seed=args.seed) as stack:
        assert stack.azurite is not None
        runtime = Runtime(Settings.from_env())
        set_runtime(runtime)
        host = LocalFunctionsHost(function_app.app, stack.azurite.connection_string)
        workers = QueueWorkers(args.workers - 1).start()
        workers.go()
        ok = True
        for number in range(1, args.passes + 1):
            started = time.monotonic()
            print(f"pass {number}: fetching {day} from the TeleMessage simulator ...", flush=True)
            host.run_timer()
            asyncio.run(host.run_until_idle(timeout=1800))
            reports = all_reports(runtime.state, runtime.outcomes)
            print(f"pass {number}: done in {time.monotonic() - started:.1f}s; host "
                  f"(1 of {args.workers} worker processes): {host.stats.queue_invocations} "
                  f"queue invocations, {host.stats.queue_failures} retried, "
                  f"{host.stats.poisoned} poisoned")
            print(render_summary(reports))
            ok = ok and bool(reports) and all(r.reconciled for r in reports)
            host.redeliver_blobs()  # the next pass: the same export blobs delivered again
        if args.json:
            args.json.write_text(json.dumps([r.to_json() for r in reports], indent=2))
        for number, stats in enumerate(workers.stop(), start=2):
            print(f"worker {number}: {stats.queue_invocations} queue invocations, "
                  f"{stats.queue_failures} retried, {stats.poisoned} poisoned")
        host.close()
    print("all exports reconciled" if ok else "SOME EXPORTS DO NOT RECONCILE")
    return 0 if ok else 1
