"""The Graph simulator in its own process, so it does not share the connector's GIL.

Same as `python -m simulators.graph --port P --upload-port Q --users users.json --token T
--latency L`, plus a control channel on stdin/stdout: the line `stats` answers one JSON line
with the simulator's `stats()` and a summary of its `request_log`; `quit` stops it. The
parent side is `GraphProcess`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simulators.graph import GraphSimulator, RequestRecord, SimUser

_ID_SEGMENT = re.compile(r"^(?!v1\.0$)(?:[^/]*[=@%'(]|[A-Za-z0-9_-]{20,}).*$")


def operation(record: RequestRecord) -> str:
    """`POST /users/{}/mailFolders/{}/messages`: the route, ids replaced."""
    path = record.path.split("?", 1)[0]
    segments = ["{}" if _ID_SEGMENT.match(s) else s for s in path.strip("/").split("/")]
    return f"{record.method} /{'/'.join(segments)}"


def summary(sim: GraphSimulator) -> dict[str, Any]:
    log = sim.request_log
    per_mailbox = Counter(r.mailbox for r in log if r.mailbox and r.status != 429)
    admitted = [r for r in log if r.status != 429]
    busiest = per_mailbox.most_common(1)[0][0] if per_mailbox else None
    return {
        "stats": sim.stats(),
        "requests": len(log),
        "mailbox_requests": sum(per_mailbox.values()),  # admitted, counted against a mailbox
        "max_mailbox_requests": max(per_mailbox.values(), default=0),
        # seconds the busiest mailbox's admitted requests took, summed: / 4 / window is how
        # busy the connector kept the mailbox that bounds the day
        "busiest_mailbox_request_seconds": sum(r.ended - r.started for r in admitted
                                               if r.mailbox == busiest),
        "mailboxes_used": len(per_mailbox),
        "by_operation": dict(Counter(operation(r) for r in log).most_common()),
        "by_status": dict(Counter(str(r.status) for r in log)),
        "first": min((r.started for r in admitted), default=0.0),
        "last": max((r.ended for r in admitted), default=0.0),
        "peak_concurrency": max((sim.max_concurrency(m) for m in per_mailbox), default=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upload-port", type=int, default=0)
    parser.add_argument("--users", type=Path, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    users = [SimUser(**u) for u in json.loads(args.users.read_text())]
    sim = GraphSimulator(users, token=args.token, latency=args.latency,
                         port=args.port or None, upload_port=args.upload_port or None).start()
    print(sim.base_url, flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            print(json.dumps(summary(sim)), flush=True)
        elif command == "quit":
            break
    sim.stop()


class GraphProcess:
    """Starts bench.graph_server as a child process; `stats()` asks it for its counters."""

    def __init__(self, users: list[SimUser], workdir: Path, token: str,
                 latency: float) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        users_file = workdir / "users.json"
        users_file.write_text(json.dumps([asdict(u) for u in users]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.graph_server", "--users", str(users_file),
             "--token", token, "--latency", str(latency)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.close()
            raise RuntimeError("the Graph simulator process did not start")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stats(self) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> GraphProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    main()
