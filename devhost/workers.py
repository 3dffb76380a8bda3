"""More worker processes for the local host, draining the same queues, as Azure runs several
instances (and, where the plan allows, FUNCTIONS_WORKER_PROCESS_COUNT processes per instance).

The process that owns the LocalFunctionsHost keeps the blob and timer triggers and one queue
listener; each extra worker is a separate Python process (its own GIL, Runtime, clients and
mailbox gate) with a queue listener only. Graph's per-mailbox limit holds across all of them
through shared.mailbox_slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import queue
import time
from multiprocessing.process import BaseProcess
from typing import Any

from devhost.host import HostStats


def _work(env: dict[str, str], host_json: dict[str, Any] | None, go: Any, stop: Any,
          out: Any) -> None:
    os.environ.update(env)
    import function_app
    from devhost.host import LocalFunctionsHost
    from shared.clients import Runtime, set_runtime
    from shared.settings import Settings

    set_runtime(Runtime(Settings.from_env()))
    host = LocalFunctionsHost(function_app.app, env["AzureWebJobsStorage"], host_json=host_json)
    out.put({"ready": os.getpid()})
    go.wait()
    try:
        asyncio.run(host.run(until=stop.is_set, timeout=24 * 3600, timers=False, blobs=False))
    finally:
        host.close()
        out.put(dataclasses.asdict(host.stats))


class QueueWorkers:
    """`count` extra queue-only worker processes. `start()` returns once they are ready (their
    imports done), `go()` lets them listen, `stop()` returns their host stats."""

    def __init__(self, count: int, host_json: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self._context = multiprocessing.get_context("spawn")  # no inherited threads or loops
        self._go = self._context.Event()
        self._stop = self._context.Event()
        self._out = self._context.Queue()
        env = dict(os.environ if env is None else env)
        self._processes: list[BaseProcess] = [
            self._context.Process(target=_work,
                                  args=(env, host_json, self._go, self._stop, self._out),
                                  name=f"queue-worker-{n + 2}", daemon=True)
            for n in range(count)]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def start(self, timeout: float = 600.0) -> QueueWorkers:
        """Waits for each worker's imports and clients (slow on a busy machine)."""
        for process in self._processes:
            process.start()
        deadline = time.monotonic() + timeout
        ready = 0
        while ready < len(self._processes):
            try:
                self._out.get(timeout=1.0)  # {"ready": pid}
                ready += 1
            except queue.Empty:
                dead = [p.name for p in self._processes if p.exitcode is not None]
                if dead or time.monotonic() > deadline:
                    self.stop(timeout=5.0)
                    raise RuntimeError(f"worker processes not ready: {dead or 'timeout'}") from None
        return self

    def go(self) -> None:
        self._go.set()

    def stop(self, timeout: float = 60.0) -> list[HostStats]:
        self._go.set()
        self._stop.set()
        stats = []
        for process in self._processes:
            if process.is_alive() or process.exitcode == 0:
                with contextlib.suppress(queue.Empty):  # a worker that died reports nothing
                    stats.append(HostStats(**self._out.get(timeout=timeout)))
        for process in self._processes:
            process.join(timeout)
            if process.is_alive():
                process.terminate()
        return stats

    def __enter__(self) -> QueueWorkers:
        self.start().go()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
