"""Split: an export blob -> item blobs + queue messages, against Azurite, and the ceiling.

The ceiling is Azurite's raw rate for the same work from the same client library and clients
(the Runtime's): the same blobs (names and bytes) uploaded and the same messages sent, with
16 threads like the splitter, and nothing else (no ZIP reading, no outcome rows). Both runs
use one fresh Azurite; the raw run goes first, into its own prefix and queue.
"""

from __future__ import annotations

import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import (
    SEED,
    CpuMeter,
    Profile,
    Row,
    apply_env,
    local_storage,
    settings_env,
    wait_for_quiet,
)
from shared.clients import Runtime
from shared.messages import ItemMessage
from simulators.telemessage.day import generate_day
from simulators.telemessage.export import BENCHMARK_DAY, build_exports, created_at_for
from simulators.telemessage.org import generate_org

NAME = "split"
THREADS = 16  # Splitter's default workers
TARGET = 0.80
RUNS = 3
STAGING = "staging"  # not the watched exports container: nothing else reacts to it


def build_day_export(items: int, out_dir: Path, seed: int = SEED) -> Path:
    """One export ZIP of a realistic simulated day (no oversize items)."""
    day = generate_day(generate_org(seed), BENCHMARK_DAY, items, seed, oversize=0,
                       large_attachments=items // 400)
    exports = build_exports(day, BENCHMARK_DAY, created_at_for(BENCHMARK_DAY),
                            max_items_per_zip=items, out_dir=out_dir)
    return exports[0].path


def upload_export(runtime: Runtime, path: Path) -> Any:
    container = runtime.blob_service.get_container_client(STAGING)
    if not container.exists():
        container.create_container()
    blob = container.get_blob_client(path.name)
    with path.open("rb") as stream:
        blob.upload_blob(stream, overwrite=True, max_concurrency=4)
    return blob


def raw_rate(runtime: Runtime, path: Path) -> dict[str, float]:
    """Seconds for the splitter's storage writes done directly: uploads, then sends."""
    with zipfile.ZipFile(path) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()
                   if i.filename.endswith(".eml")]
    items = runtime.blob_service.get_container_client(runtime.settings.items_container)
    queue = runtime.queue("raw-items")
    queue.create_queue()
    export = "raw-" + path.name
    messages = [ItemMessage(export, name, f"raw/{name}", len(data)).to_json()
                for name, data in members]
    with ThreadPoolExecutor(THREADS) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda m: items.upload_blob(f"raw/{m[0]}", m[1], overwrite=True),
                      members))
        t1 = time.perf_counter()
        list(pool.map(queue.send_message, messages))
        t2 = time.perf_counter()
    return {"items": len(members), "upload_s": t1 - t0, "send_s": t2 - t1, "total_s": t2 - t0}


def measure_once(path: Path, workdir: Path, profile: bool) -> dict[str, Any]:
    """One raw run and one split of the same export, in one fresh Azurite."""
    import os

    from shared.settings import Settings
    with local_storage(workdir) as azurite:
        apply_env(settings_env(azurite.connection_string))
        runtime = Runtime(Settings.from_env())
        blob = upload_export(runtime, path)
        wait_for_quiet()
        meter = CpuMeter({"connector": os.getpid(), **azurite.pids}).start()
        raw = raw_rate(runtime, path)
        raw_cpu = meter.stop()

        wait_for_quiet()
        meter = CpuMeter({"connector": os.getpid(), **azurite.pids}).start()
        spy = Profile(os.getpid(), workdir / "split.pyspy.txt") if profile else None
        t0 = time.perf_counter()
        result = runtime.splitter().split(path.name, blob)
        split_s = time.perf_counter() - t0
        split_cpu = meter.stop()
        hot = spy.finish() if spy is not None else {}
    assert result.queued == raw["items"], (result, raw["items"])
    ceiling = raw["items"] / raw["total_s"]
    rate = result.queued / split_s
    return {"raw": raw, "raw_rate": ceiling, "raw_cpu_pct": raw_cpu, "split_rate": rate,
            "split_s": round(split_s, 2), "split_cpu_pct": split_cpu, "ratio": rate / ceiling,
            "profile": hot}


def run(quick: bool, workdir: Path) -> list[Row]:
    """RUNS runs (one is too noisy on a shared machine); the rows give the median ratio."""
    count, runs = (300, 1) if quick else (3000, RUNS)
    path = build_day_export(count, workdir / "exports")
    results = [measure_once(path, workdir / f"run{n}", profile=not quick and n == 0)
               for n in range(runs)]
    median = sorted(results, key=lambda r: r["ratio"])[len(results) // 2]
    size_mb = path.stat().st_size / 1e6
    ratios = ", ".join(f"{r['ratio']:.0%}" for r in results)
    return [
        Row(NAME, f"{count} items, {size_mb:.0f} MB ZIP", "raw Azurite rate",
            round(median["raw_rate"], 1), "items/s",
            notes=f"run with the median ratio: blob uploads "
                  f"{median['raw']['items'] / median['raw']['upload_s']:.0f}/s, queue sends "
                  f"{median['raw']['items'] / median['raw']['send_s']:.0f}/s, {THREADS} threads",
            extra={"runs": [{k: v for k, v in r.items() if k != "profile"} for r in results]}),
        Row(NAME, f"{count} items, {size_mb:.0f} MB ZIP", f"split rate (median of {runs})",
            round(median["split_rate"], 1), "items/s", ceiling=round(median["raw_rate"], 1),
            target=f">= {TARGET:.0%} of raw, median of {RUNS}",
            met=median["ratio"] >= TARGET if runs >= RUNS else None,
            notes=f"split/raw per run: {ratios}; CPU % of a core (median run): split "
                  f"{median['split_cpu_pct']}, raw {median['raw_cpu_pct']}",
            extra={"profile": results[0]["profile"]}),
    ]
