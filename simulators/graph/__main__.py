"""Run the Graph simulator standalone: `python -m simulators.graph --port 0 --users users.json`.

Prints the base URL (what GRAPH_BASE_URL should be) and serves until interrupted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from simulators._server import run_until_terminated

from . import GraphSimulator, SimUser


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.graph",
                                     description="Serve a simulated Microsoft Graph on loopback.")
    parser.add_argument("--port", type=int, default=0, help="API port (0: any free port)")
    parser.add_argument("--upload-port", type=int, default=0,
                        help="upload listener port (0: any free port)")
    parser.add_argument("--users", type=Path,
                        help="JSON file: a list of objects with the SimUser fields")
    parser.add_argument("--token", default="sim-token", help="the bearer token accepted")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds added to every request")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    users = [SimUser(**entry) for entry in json.loads(args.users.read_text())] \
        if args.users else []
    sim = GraphSimulator(users, token=args.token, latency=args.latency, seed=args.seed,
                         port=args.port or None, upload_port=args.upload_port or None)
    sim.start()
    print(sim.base_url, flush=True)
    run_until_terminated(sim.stop)


if __name__ == "__main__":
    main()
