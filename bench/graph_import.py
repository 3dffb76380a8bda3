"""Import: items per second through the queue function into the Graph simulator (250 ms per
request, 4 concurrent requests per mailbox), for 1, 10 and 100 mailboxes.

Items are split into the items container and queue first (not timed); then the local host
runs `import_item` until idle. The rate is items / (first dequeue -> last invocation done).
Ceiling = mailboxes x 4 / 0.25 s requests per second / (Graph requests per item), with the
requests per item counted by the simulator (admitted requests against a mailbox, folder
lookups included). The simulator runs in its own process (bench.graph_server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import Row
from bench.harness import (
    LATENCY,
    PER_MAILBOX,
    export_files,
    host_json_with,
    run_host,
    stack,
    workload,
)

NAME = "import"
STAGING = "staging"
TARGET = 0.85


def measure(mailboxes: int, items: int, workdir: Path, host_json: dict[str, Any] | None = None,
            profile: bool = False) -> dict[str, Any]:
    users, day = workload(mailboxes, items)
    exports = export_files(day, workdir / "exports")
    with stack(workdir, users) as st:
        for export, blob in zip(exports, st.stage(exports, STAGING), strict=True):
            st.runtime.splitter().split(export.name, blob)
        run = run_host(st, host_json, workdir / "profile" if profile else None)
        graph = st.graph.stats()
        outcomes = st.outcomes(exports)
    window = max(run.queue.last - run.queue.first, 1e-9)
    per_item = graph["mailbox_requests"] / len(day)
    ceiling = mailboxes * PER_MAILBOX / LATENCY / per_item
    busiest = graph["max_mailbox_requests"] * LATENCY / PER_MAILBOX  # its requests back to back
    return {
        "mailboxes": mailboxes, "items": len(day), "rate": len(day) / window,
        "ceiling": ceiling, "requests_per_item": per_item,
        "busiest_mailbox_bound": len(day) / busiest if busiest else None,
        "graph_requests_in_flight": graph["mailbox_requests"] * LATENCY / window,
        "throttled": graph["stats"]["throttled"], "outcomes": dict(outcomes),
        "failed": sum(n for k, n in outcomes.items() if k.startswith("failed")),
        "queue_failures": run.host_stats.queue_failures, "poisoned": run.host_stats.poisoned,
        "errors": run.host_stats.errors[:5], "timing": run.queue.summary(),
        "host_seconds": run.seconds, "cpu_pct": run.cpu_pct, "graph": graph,
        "profiles": run.profiles,
        "host_json_queues": (host_json or {}).get("extensions", {}).get("queues", "host.json"),
    }


def row(result: dict[str, Any], variant: str = "") -> Row:
    n = result["mailboxes"]
    targeted = n in (1, 10) and not variant
    met = None
    if targeted:
        met = result["rate"] >= TARGET * result["ceiling"] and result["failed"] == 0
    timing = result["timing"]
    notes = (f"{result['requests_per_item']:.2f} Graph req/item, {result['throttled']} x 429, "
             f"{result['failed']} failed; items in flight mean {timing.get('mean_in_flight')} "
             f"(peak {timing.get('peak_in_flight')}), Graph requests in flight "
             f"{result['graph_requests_in_flight']:.0f} of {n * PER_MAILBOX}; "
             f"CPU %: {result['cpu_pct']}")
    return Row(NAME, f"{n} mailbox{'es' if n > 1 else ''}, {result['items']} items{variant}",
               "import rate", round(result["rate"], 1), "items/s",
               ceiling=round(result["ceiling"], 1),
               target=f">= {TARGET:.0%} of ceiling, 0 failed" if targeted else
               ("bound named" if n >= 100 and not variant else ""),
               met=met, notes=notes, extra=result)


def run(quick: bool, workdir: Path) -> list[Row]:
    cases = [(1, 30), (10, 60)] if quick else [(1, 300), (10, 800), (100, 1500)]
    rows = []
    for mailboxes, items in cases:
        result = measure(mailboxes, items, workdir / f"{mailboxes}mb",
                         profile=mailboxes >= 100 and not quick)
        rows.append(row(result))
    if not quick:  # does more in flight lift it? (host.json: batchSize 32, threshold 64)
        for mailboxes, items in cases[1:]:
            result = measure(mailboxes, items, workdir / f"{mailboxes}mb-b32",
                             host_json=host_json_with(32, 64))
            rows.append(row(result, ", batch 32+64"))
    return rows
