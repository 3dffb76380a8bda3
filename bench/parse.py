"""Parse: EML -> Item (`shared.eml.parse_eml`), items per second on one core.

A simulated day (text, media, group messages, calls, deletions; no oversize items, the
simulator's share of 3-7 MB attachments) is rendered to EMLs first; only parsing is timed,
in this single thread, best of a few passes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from bench.common import SEED, Row, wait_for_quiet
from shared.eml import parse_eml
from simulators.telemessage.day import generate_day
from simulators.telemessage.eml_builder import build_eml
from simulators.telemessage.export import BENCHMARK_DAY
from simulators.telemessage.org import generate_org

NAME = "parse"


def sample(items: int, seed: int = SEED) -> list[tuple[str, bytes]]:
    """(kind, EML) for a realistic day: kind is text, media, call, deleted, or group-*."""
    day = generate_day(generate_org(seed), BENCHMARK_DAY, items, seed, oversize=0,
                       large_attachments=items // 400)
    return [(("group-" if item.group else "") + item.kind, build_eml(item)) for item in day]


def run(quick: bool, workdir: Path) -> list[Row]:
    emls = sample(300 if quick else 2000)
    passes = 1 if quick else 3
    wait_for_quiet()
    best = float("inf")
    per_kind: dict[str, float] = defaultdict(float)
    for _ in range(passes):
        kind_time: dict[str, float] = defaultdict(float)
        started = time.process_time()
        for kind, data in emls:
            t0 = time.process_time()
            parse_eml(data)
            kind_time[kind] += time.process_time() - t0
        elapsed = time.process_time() - started
        if elapsed < best:
            best, per_kind = elapsed, kind_time
    counts: dict[str, int] = defaultdict(int)
    for kind, _ in emls:
        counts[kind] += 1
    mean_bytes = sum(len(d) for _, d in emls) / len(emls)
    breakdown = {kind: {"items": counts[kind], "items_per_s": round(counts[kind] / t, 1),
                        "share_of_time_pct": round(100 * t / best, 1)}
                 for kind, t in sorted(per_kind.items())}
    return [Row(NAME, f"{len(emls)} EMLs, mean {mean_bytes / 1024:.0f} KiB", "parse rate",
                round(len(emls) / best, 1), "items/s (1 core, CPU time)",
                notes=f"best of {passes}; mean {1000 * best / len(emls):.2f} ms/item",
                extra={"by_kind": breakdown, "mean_eml_bytes": round(mean_bytes)})]
