"""The connector end to end for the import and lag benchmarks: Azurite, the Graph simulator in
its own process, the real functions driven by the local Functions host (devhost.host)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import function_app
from bench.common import (
    SEED,
    CpuMeter,
    Profile,
    apply_env,
    local_storage,
    settings_env,
    wait_for_quiet,
)
from bench.graph_server import GraphProcess
from devhost.azurite import Azurite
from devhost.host import HostStats, LocalFunctionsHost
from devhost.workers import QueueWorkers
from shared.clients import Runtime, set_runtime
from shared.settings import Settings
from simulators.graph import SimUser
from simulators.telemessage.day import generate_day
from simulators.telemessage.eml_builder import SimItem
from simulators.telemessage.export import (
    BENCHMARK_DAY,
    ExportFile,
    build_exports,
    created_at_for,
)
from simulators.telemessage.org import generate_org

TOKEN = "bench-graph-token"  # noqa: S105 - accepted by the loopback simulator only
LATENCY = 0.25
PER_MAILBOX = 4  # Graph's concurrent requests per mailbox (the simulator enforces it)


def workload(mailboxes: int, items: int, seed: int = SEED) -> tuple[list[SimUser], list[SimItem]]:
    """A day whose employees are exactly `mailboxes` users, all with mailboxes: every item has
    at least one employee participant (the capturing phone), group items several."""
    org = generate_org(seed, employees=mailboxes, externals=max(10, mailboxes // 2))
    day = generate_day(org, BENCHMARK_DAY, items, seed, oversize=0,
                       large_attachments=items // 400)
    users = [SimUser(id=f"00000000-0000-4000-8000-{n:012d}", user_principal_name=str(p.email),
                     mail=p.email, display_name=p.name) for n, p in enumerate(org.employees)]
    return users, day


def export_files(items: list[SimItem], out_dir: Path, per_zip: int = 1000) -> list[ExportFile]:
    for old in out_dir.glob("*.zip"):
        old.unlink()
    return build_exports(items, BENCHMARK_DAY, created_at_for(BENCHMARK_DAY), per_zip,
                         out_dir=out_dir)


@dataclass
class Timing:
    """Per-invocation timing of a function, wrapped around it inside the local host."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0

    def wrap(self, host: LocalFunctionsHost, kind: str) -> None:
        for fn in host.functions:
            if fn.kind != kind:
                continue
            original = fn.function
            # wraps: the host reads the parameter's annotation through the signature
            if asyncio.iscoroutinefunction(original):
                @functools.wraps(original)
                async def timed_async(_f: Any = original, **kwargs: Any) -> None:
                    with self.measure():
                        await _f(**kwargs)
                fn.function = timed_async
            else:
                @functools.wraps(original)
                def timed_sync(_f: Any = original, **kwargs: Any) -> None:
                    with self.measure():
                        _f(**kwargs)
                fn.function = timed_sync

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        start = time.time()
        self.starts.append(start)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
            end = time.time()
            self.ends.append(end)
            self.durations.append(end - start)

    @property
    def first(self) -> float:
        return min(self.starts) if self.starts else 0.0

    @property
    def last(self) -> float:
        return max(self.ends) if self.ends else 0.0

    def summary(self) -> dict[str, Any]:
        if not self.durations:
            return {"invocations": 0}
        window = max(self.last - self.first, 1e-9)
        ordered = sorted(self.durations)
        return {"invocations": len(self.durations),
                "window_s": round(window, 2),
                "mean_in_flight": round(sum(self.durations) / window, 1),  # Little's law
                "peak_in_flight": self.peak_in_flight,
                "latency_p50_s": round(statistics.median(ordered), 3),
                "latency_p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
                "latency_max_s": round(ordered[-1], 3)}


@dataclass
class Stack:
    azurite: Azurite
    graph: GraphProcess
    runtime: Runtime
    settings: Settings

    def stage(self, exports: list[ExportFile], container: str) -> list[Any]:
        """Upload export ZIPs; into `exports` they are BlobCreated events for the host."""
        client = self.runtime.blob_service.get_container_client(container)
        if not client.exists():
            client.create_container()
        blobs = []
        for export in exports:
            blob = client.get_blob_client(export.name)
            with export.path.open("rb") as stream:
                blob.upload_blob(stream, overwrite=True, max_concurrency=4)
            blobs.append(blob)
        return blobs

    def outcomes(self, exports: list[ExportFile]) -> Counter[str]:
        """Item outcomes, and "placements": items written into a mailbox (one per mailbox)."""
        counts: Counter[str] = Counter()
        for export in exports:
            for outcome in self.runtime.outcomes.for_export(export.name):
                label = outcome.outcome.value
                counts[f"{label}:{outcome.reason}" if outcome.reason else label] += 1
                counts["placements"] += sum(1 for value in outcome.mailboxes.values()
                                            if value == "imported")
        return counts


@contextlib.contextmanager
def stack(workdir: Path, users: list[SimUser], latency: float = LATENCY) -> Iterator[Stack]:
    with local_storage(workdir) as azurite, \
            GraphProcess(users, workdir / "graph", TOKEN, latency) as graph:
        env = settings_env(azurite.connection_string, graph.base_url, TOKEN)
        settings = apply_env(env)
        runtime = Runtime(settings)
        set_runtime(runtime)
        try:
            yield Stack(azurite, graph, runtime, settings)
        finally:
            set_runtime(None)
            runtime.io_pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class HostRun:
    seconds: float
    queue: Timing
    blob: Timing
    host_stats: Any
    cpu_pct: dict[str, float]
    cpu_seconds: dict[str, float]
    profiles: dict[str, Any]
    workers: list[HostStats] = field(default_factory=list)  # the extra worker processes'

    @property
    def connector_cpu_seconds(self) -> float:
        """CPU of every connector process (the host's and the extra workers')."""
        return sum(v for k, v in self.cpu_seconds.items()
                   if k == "connector" or k.startswith("worker"))

    @property
    def queue_first(self) -> float:
        return min([self.queue.first, *(w.queue_first_start for w in self.workers
                                         if w.queue_first_start)])

    @property
    def queue_last(self) -> float:
        return max([self.queue.last, *(w.queue_last_end for w in self.workers)])

    @property
    def queue_invocations(self) -> int:
        return len(self.queue.durations) + sum(w.queue_invocations for w in self.workers)


def run_host(st: Stack, host_json: dict[str, Any] | None = None, profile_dir: Path | None = None,
             timeout: float = 3600.0, workers: int = 1) -> HostRun:
    """Runs the registered functions through the local host until everything is idle, with
    `workers - 1` extra worker processes on the queue (devhost.workers)."""
    # azure-functions' get_functions() refuses a second call on one app (it remembers the
    # names it indexed); the local host calls it once per host, and we build several.
    function_app.app.functions_bindings = {}
    host = LocalFunctionsHost(function_app.app, st.azurite.connection_string, host_json=host_json)
    queue, blob = Timing(), Timing()
    queue.wrap(host, "queueTrigger")
    blob.wrap(host, "blobTrigger")
    extra = QueueWorkers(workers - 1, host_json).start()
    meter = CpuMeter({"connector": os.getpid(),
                      **{f"worker {n}": pid for n, pid in enumerate(extra.pids, start=2)},
                      **st.azurite.pids, "graph simulator": st.graph.pid})
    profiles: dict[str, Profile] = {}
    if profile_dir is not None:
        profiles = {"connector": Profile(os.getpid(), profile_dir / "connector.pyspy.txt"),
                    "graph simulator": Profile(st.graph.pid, profile_dir / "graph.pyspy.txt")}
    wait_for_quiet()
    meter.start()
    started = time.monotonic()
    extra.go()
    try:
        asyncio.run(host.run_until_idle(timeout=timeout, settle=2.0))
    finally:
        seconds = time.monotonic() - started
        cpu = meter.stop()
        worker_stats = extra.stop()
        summaries = {name: p.finish() for name, p in profiles.items()}
        host.close()
    return HostRun(seconds, queue, blob, host.stats, cpu, dict(meter.seconds), summaries,
                   worker_stats)


def host_json_with(batch_size: int, new_batch_threshold: int) -> dict[str, Any]:
    import json

    from devhost.host import ROOT
    config = json.loads((ROOT / "host.json").read_text())
    config["extensions"]["queues"].update(batchSize=batch_size,
                                          newBatchThreshold=new_batch_threshold)
    return dict(config)
