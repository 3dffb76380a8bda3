"""What every benchmark shares: result rows, local storage, process CPU accounting, py-spy."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devhost.azurite import Azurite
from devhost.resources import ensure_resources
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
SEED = 11


@dataclass
class Row:
    """One line of the results table (and one object in results.json)."""

    bench: str
    case: str
    metric: str
    value: float
    unit: str
    ceiling: float | None = None  # same unit as value
    target: str = ""
    met: bool | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # JSON only

    @property
    def ratio(self) -> float | None:
        return self.value / self.ceiling if self.ceiling else None


def settings_env(connection_string: str, graph_base_url: str = "http://127.0.0.1:9/v1.0",
                 graph_token: str = "unused",  # noqa: S107 - loopback simulator only
                 **extra: str) -> dict[str, str]:
    """App settings for the connector against local storage and (optionally) a Graph."""
    return {
        "AzureWebJobsStorage": connection_string,
        "TELEMESSAGE_BASE_URL": "http://127.0.0.1:9",  # fetch is not benchmarked
        "TELEMESSAGE_USERNAME": "bench",
        "TELEMESSAGE_PASSWORD": "unused",
        "GRAPH_BASE_URL": graph_base_url,
        "GRAPH_CREDENTIAL_KIND": "static_token",
        "GRAPH_STATIC_TOKEN": graph_token,
        "FETCH_SCHEDULE": "0 0 0 1 1 *",
        "EXPORTS_CONTAINER": "exports",
        "ITEMS_QUEUE": "items",
        "REPLAY_QUEUE": "replay",
        **extra,
    }


@contextlib.contextmanager
def local_storage(workdir: Path) -> Iterator[Azurite]:
    """A fresh in-memory Azurite (the project's pinned one) for one measurement, its blob,
    queue and table services in three processes (see devhost.azurite)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with Azurite(workdir / "azurite", services_apart=True) as azurite:
        yield azurite


def apply_env(env: dict[str, str]) -> Settings:
    """The connector and the local host read os.environ (binding expressions, runtime())."""
    os.environ.update(env)
    settings = Settings.from_env(env)
    ensure_resources(settings, env["AzureWebJobsStorage"])
    return settings


# ---- CPU time per process -------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """pid and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """User + system CPU seconds used so far by the process (and its descendants)."""
    total = 0.0
    for each in (_tree(pid) if tree else [pid]):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have used (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def others_busy_percent(seconds: float = 2.0) -> float:
    """CPU % (of one core) used by processes other than this one and its children."""
    mine = cpu_seconds(os.getpid())
    machine = machine_busy_seconds()
    time.sleep(seconds)
    return 100 * ((machine_busy_seconds() - machine) - (cpu_seconds(os.getpid()) - mine)) / seconds


QUIET_MAX_WAIT = {"seconds": 20.0}  # __main__ sets 0 for --quick


def wait_for_quiet(limit_percent: float = 25.0) -> float:
    """Waits (up to max_wait) until other processes use under limit_percent of a core: the
    machine has 2 cores, and a test run next door halves what a benchmark measures. Returns
    the last reading; the run goes on regardless, and CpuMeter records "others"."""
    max_wait = QUIET_MAX_WAIT["seconds"]
    if max_wait <= 0:
        return -1.0
    deadline = time.monotonic() + max_wait
    busy = others_busy_percent()
    while busy > limit_percent and time.monotonic() < deadline:
        print(f"   waiting for a quiet machine: other processes use {busy:.0f}% CPU",
              flush=True)
        busy = others_busy_percent(5.0)
    return busy


class CpuMeter:
    """CPU used by named processes between start() and stop(), as % of one core (the
    machine has 2: 200% is everything), plus what every other process on the machine used
    meanwhile ("others"), which tells whether the run had the machine to itself."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._start: dict[str, float] = {}
        self._t0 = 0.0
        self._machine0 = 0.0
        self.percent: dict[str, float] = {}
        self.seconds: dict[str, float] = {}  # CPU seconds used, per process

    def _used(self, name: str, pid: int) -> float:
        return cpu_seconds(pid, tree=name != "connector")

    def start(self) -> CpuMeter:
        self._t0 = time.monotonic()
        self._machine0 = machine_busy_seconds()
        self._start = {name: self._used(name, pid) for name, pid in self._pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self._t0, 1e-9)
        ours = 0.0
        for name, pid in self._pids.items():
            used = self._used(name, pid) - self._start[name]
            ours += used
            self.seconds[name] = round(used, 2)
            self.percent[name] = round(100 * used / wall, 1)
        machine = machine_busy_seconds() - self._machine0
        self.percent["others"] = round(max(0.0, 100 * (machine - ours) / wall), 1)
        return self.percent


# ---- py-spy ---------------------------------------------------------------------------------

def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


class Profile:
    """py-spy sampling a running process from start until finish(), only the thread holding
    the GIL (`--gil`: where the Python CPU goes, not who waits), summarised as the functions
    most often at the top of a stack ("self") and anywhere in it ("total"). Does nothing
    when py-spy is not installed."""

    def __init__(self, pid: int, out: Path, rate: int = 97) -> None:
        self.out = out
        self._process: subprocess.Popen[bytes] | None = None
        tool = py_spy()
        if tool is None:
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [tool, "record", "--pid", str(pid), "--duration", "3600", "--rate", str(rate),
             "--format", "raw", "--output", str(out), "--nonblocking", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # attached before the work starts

    def finish(self, top: int = 12) -> dict[str, Any]:
        if self._process is None:
            return {"error": "py-spy not installed (pip install py-spy)"}
        self._process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if not self.out.exists():
            return {"error": "py-spy wrote no profile (ptrace not permitted?)"}
        return summarise_folded(self.out.read_text(), top)


def _frame_name(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (module.py)`, so lines of one function merge."""
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0].rstrip(")")
    return f"{name} ({module})" if module else name


# Frames that are on nearly every stack and say nothing about where the time goes.
_PLUMBING = ("Thread.", "_worker (", "_WorkItem.run", "<module>", "_run_module", "_run_code",
             "main (", "_SansIOHTTPPolicyRunner", "wrapper_use_tracer", "Pipeline.run",
             "_TransportRunner", "RedirectPolicy.send", "BaseEventLoop.", "Handle._run",
             "run (runners.py)", "Runner.run", "run_until_complete", "run_forever",
             "_run_once", "Task.__step", "Context.run")


def summarise_folded(text: str, top: int = 12) -> dict[str, Any]:
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            anywhere[name] += count
    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        ranked = [(name, n) for name, n in counter.most_common()
                  if not name.startswith(_PLUMBING)][:top]
        return [(name, round(100 * n / max(total, 1), 1)) for name, n in ranked]
    return {"samples": total, "self_pct": pct(own), "total_pct": pct(anywhere)}


def timed(func: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - started, result
