"""Memory: peak RSS of a process that splits one export, for growing export sizes.

Exports are made on the fly by `build_large_export` (about 10 KB per item, one in 400 with a
1-2 MB attachment) and cached in bench-results/cache/ (git-ignored; never committed). Each
split runs in a fresh child process (`python -m bench.memory CONTAINER BLOB`); its peak RSS is
the kernel's ru_maxrss for that child (os.wait4), cross-checked with the VmHWM it reports.
The first, tiny export gives the baseline: a process that imported everything and split
almost nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from azure.core.exceptions import AzureError

from bench.common import RESULTS, SEED, Row, apply_env, local_storage, settings_env
from bench.split import STAGING, upload_export
from shared.clients import Runtime
from shared.settings import Settings
from simulators.telemessage.export import build_large_export

NAME = "memory"
MB = 1_000_000
ATTEMPTS = 3
TARGET_MB = 300


def cached_export(target_bytes: int, seed: int = SEED) -> tuple[Path, float]:
    """(path, seconds spent generating it; 0 when cached)."""
    cache = RESULTS / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    # build_large_export names nothing; give the cached file a valid export name.
    path = cache / f"2026112{seed % 10}0000-TeleMessage_{target_bytes // MB}_20261126003000.zip"
    if path.exists() and path.stat().st_size >= target_bytes:
        return path, 0.0
    started = time.monotonic()
    partial = path.with_suffix(".partial")
    build_large_export(partial, target_bytes, seed)
    partial.rename(path)
    return path, time.monotonic() - started


def split_in_child(blob_name: str) -> dict[str, float]:
    """Runs the split in a child process; returns its result and peak RSS in MB."""
    process = subprocess.Popen([sys.executable, "-m", "bench.memory", STAGING, blob_name],
                               stdout=subprocess.PIPE, env=os.environ.copy())
    assert process.stdout is not None
    started = time.monotonic()
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"split child exited {process.returncode}")
    report = json.loads(output.decode().strip().splitlines()[-1])
    return {**report, "seconds": time.monotonic() - started,
            "ru_maxrss_mb": usage.ru_maxrss * 1024 / MB}


def run(quick: bool, workdir: Path) -> list[Row]:
    sizes = [1 * MB, 20 * MB] if quick else [1 * MB, 100 * MB, 1100 * MB]
    rows: list[Row] = []
    with local_storage(workdir) as azurite:
        apply_env(settings_env(azurite.connection_string))
        runtime = Runtime(Settings.from_env())
        baseline = None
        for size in sizes:
            path, generated = cached_export(size)
            upload_export(runtime, path)
            measured = split_in_child(path.name)
            peak = measured["ru_maxrss_mb"]
            baseline = baseline if baseline is not None else peak
            is_largest = size == sizes[-1]
            rows.append(Row(
                NAME, f"{path.stat().st_size / MB:,.0f} MB export, {measured['queued']:,} items",
                "peak RSS of the split process", round(peak, 1), "MB",
                target=f"< {TARGET_MB} MB" if is_largest and not quick else "",
                met=peak < TARGET_MB if is_largest and not quick else None,
                notes=(f"+{peak - baseline:.0f} MB over the {baseline:.0f} MB baseline; split "
                       f"{measured['queued'] / measured['split_s']:.0f} items/s"
                       + (f"; {measured['attempts']} attempts: {measured['attempt_errors']}"
                          if measured["attempts"] > 1 else "")
                       + (f"; export generated in {generated:.0f}s" if generated else "")),
                extra={**measured, "zip_bytes": path.stat().st_size}))
    return rows


def _child(container: str, blob_name: str) -> None:
    runtime = Runtime(Settings.from_env())
    blob = runtime.blob_service.get_container_client(container).get_blob_client(blob_name)
    errors: list[str] = []
    started = time.perf_counter()
    for _ in range(ATTEMPTS):
        try:
            result = runtime.splitter().split(blob_name, blob)
            break
        except AzureError as exc:  # the host would run the blob trigger again: so do we
            errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    else:
        raise RuntimeError(f"split failed {ATTEMPTS} times: {errors}")
    seconds = time.perf_counter() - started
    status = Path("/proc/self/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines()
                  if line.startswith("VmHWM"))
    print(json.dumps({"queued": result.queued, "quarantined": result.quarantined,
                      "error": result.error, "split_s": round(seconds, 2),
                      "attempts": len(errors) + 1, "attempt_errors": errors,
                      "vmhwm_mb": round(hwm_kb * 1024 / MB, 1)}))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
