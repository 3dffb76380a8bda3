"""Start and stop the project's pinned Azurite (node_modules/.bin/azurite) on free ports."""

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


class Azurite:
    def __init__(self, workdir: Path | None = None) -> None:
        self.blob_port, self.queue_port, self.table_port = free_port(), free_port(), free_port()
        self._workdir = workdir
        self._tmp: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

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
        log = open(location / "azurite.log", "wb")  # noqa: SIM115 - lives with the process
        self._process = subprocess.Popen(
            [str(AZURITE), "--silent", "--skipApiVersionCheck", "--loose",
             "--inMemoryPersistence",
             "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
             "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
             "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=location)
        deadline = time.monotonic() + timeout
        for port in (self.blob_port, self.queue_port, self.table_port):
            while not _listening(port):
                if self._process.poll() is not None:
                    raise RuntimeError(f"Azurite exited early; see {location / 'azurite.log'}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("Azurite did not start in time")
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            # In-memory persistence: nothing to flush, and Azurite's graceful shutdown waits
            # for idle connections, so end the whole process group at once.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        self._process = None
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
