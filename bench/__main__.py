"""`python -m bench [--only NAME[,NAME]] [--quick]`: run, print a table, write results.json."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import QUIET_MAX_WAIT, RESULTS, ROOT, Row, py_spy

BENCHES = {"parse": "bench.parse", "split": "bench.split", "memory": "bench.memory",
           "import": "bench.graph_import", "lag": "bench.lag"}


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
    azurite = subprocess.run([str(ROOT / "node_modules/.bin/azurite"), "--version"],
                             capture_output=True, text=True, check=False).stdout.strip()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                          check=False).stdout.strip()
    import os
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gib": round(mem_kib / 2**20, 1),
            "python": platform.python_version(), "azurite": azurite, "node": node,
            "py_spy": bool(py_spy())}


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    header = ("bench", "case", "metric", "value", "unit", "ceiling", "ratio", "target", "met")
    lines = [header] + [(r.bench, r.case, r.metric, _fmt(r.value), r.unit, _fmt(r.ceiling),
                         f"{r.ratio:.0%}" if r.ratio is not None else "", r.target,
                         {True: "yes", False: "NO", None: ""}[r.met]) for r in rows]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
           for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.bench}/{r.case}: {r.notes}" for r in rows if r.notes]
    return "\n".join(out + (["", "notes:", *notes] if notes else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS / "results.json")
    parser.add_argument("--workdir", type=Path, default=RESULTS / "work")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHES)}")

    if args.quick:
        QUIET_MAX_WAIT["seconds"] = 0.0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    rows: list[Row] = []
    failures: dict[str, str] = {}
    for name in names:
        print(f"== {name}{' (quick)' if args.quick else ''} ...", flush=True)
        t0 = time.monotonic()
        try:
            module = importlib.import_module(BENCHES[name])
            new_rows = module.run(args.quick, args.workdir / name)
        except Exception:  # noqa: BLE001 - one failing benchmark must not hide the others
            failures[name] = traceback.format_exc()
            print(failures[name], file=sys.stderr, flush=True)
            continue
        rows.extend(new_rows)
        if not args.quick:  # each benchmark's latest full result, whatever --only said
            (args.out.parent / f"{name}.json").write_text(json.dumps(
                [asdict(r) | {"ratio": r.ratio} for r in new_rows], indent=2, default=str))
        print(table(new_rows), f"\n   ({time.monotonic() - t0:.0f}s)\n", flush=True)

    print("== results\n" + table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "started": started.isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick, "machine": machine(), "failures": failures,
        "rows": [asdict(r) | {"ratio": r.ratio} for r in rows]}, indent=2, default=str))
    print(f"\nwritten: {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
