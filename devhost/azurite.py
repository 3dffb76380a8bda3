"""Start and stop the project's pinned Azurite (node_modules/.bin/azurite) on free ports.

`services_apart=True` runs blob, queue and table storage as three Node processes
(azurite-blob, azurite-queue, azurite-table), as Azure runs them on separate services: one
Node process is single-threaded, and under a day's load its queue alone (which scans every
message of the queue on each receive, update and delete) would hold up every table and blob
call behind it (docs/BENCHMARKS.md)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from simulators._server import free_port

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key, not a secret.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # noqa: S105,E501


SERVICES = ("blob", "queue", "table")
# In memory; no telemetry (Azurite sends some by default; there is no network here anyway).
OPTIONS = ("--silent", "--skipApiVersionCheck", "--loose", "--inMemoryPersistence",
           "--disableTelemetry")


class Azurite:
    def __init__(self, workdir: Path | None = None, services_apart: bool = False) -> None:
        self.blob_port, self.queue_port, self.table_port = free_port(), free_port(), free_port()
        self._workdir = workdir
        self._apart = services_apart
        self._tmp: str | None = None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def pids(self) -> dict[str, int]:
        """"azurite", or "azurite blob", "azurite queue" and "azurite table": process ids."""
        return {name: process.pid for name, process in self._processes.items()}

    @property
    def connection_string(self) -> str:
        host = "http://127.0.0.1"
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                f"BlobEndpoint={host}:{self.blob_port}/{ACCOUNT};"
                f"QueueEndpoint={host}:{self.queue_port}/{ACCOUNT};"
                f"TableEndpoint={host}:{self.table_port}/{ACCOUNT};")

    def start(self, timeout: float = 60.0) -> Azurite:
        if not AZURITE.exists():
            raise RuntimeError(f"{AZURITE} not found: run `npm ci` (make setup) first")
        location = self._workdir or Path(self._make_tmp())
        location.mkdir(parents=True, exist_ok=True)
        ports = {"blob": self.blob_port, "queue": self.queue_port, "table": self.table_port}
        if self._apart:
            commands = {f"azurite {service}": [str(AZURITE.with_name(f"azurite-{service}")),
                                               *OPTIONS, f"--{service}Host", "127.0.0.1",
                                               f"--{service}Port", str(ports[service])]
                        for service in SERVICES}
        else:
            commands = {"azurite": [str(AZURITE), *OPTIONS, *(
                arg for service in SERVICES
                for arg in (f"--{service}Host", "127.0.0.1", f"--{service}Port",
                            str(ports[service])))]}
        for name, command in commands.items():
            log = open(location / f"{name.replace(' ', '-')}.log", "wb")  # noqa: SIM115
            self._processes[name] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=location)
        deadline = time.monotonic() + timeout
        for port in (self.blob_port, self.queue_port, self.table_port):
            while not _listening(port):
                if any(process.poll() is not None for process in self._processes.values()):
                    self.stop()
                    raise RuntimeError(f"Azurite exited early; see the logs in {location}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("Azurite did not start in time")
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                # In-memory persistence: nothing to flush, and Azurite's graceful shutdown
                # waits for idle connections, so end the whole process group at once.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self._processes = {}
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _make_tmp(self) -> str:
        self._tmp = tempfile.mkdtemp(prefix="azurite-")
        return self._tmp

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
