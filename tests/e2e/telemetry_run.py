"""The process that test_telemetry_leaks watches: one day through the app's own functions, with
telemetry configured exactly as in Azure. Importing function_app runs telemetry.configure(),
which starts the Azure Monitor distro from APPLICATIONINSIGHTS_CONNECTION_STRING (here a
loopback collector). Every log line the process emits is also written to argv[1].

A process of its own because the distro sets OpenTelemetry's global providers once per process.

    python tests/e2e/telemetry_run.py LOG_FILE   (with the LocalStack's settings in the env)
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared import telemetry  # noqa: E402
from shared.settings import STORAGE_PREFIX  # noqa: E402


class WithDimensions(logging.Formatter):
    """The message and its custom dimensions, as Application Insights would show them."""

    def format(self, record: logging.LogRecord) -> str:
        dimensions = " ".join(f"{k}={v}" for k, v in record.__dict__.items()
                              if k not in telemetry._STANDARD)
        return f"{super().format(record)} {dimensions}"


def main(log_file: str) -> None:
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(WithDimensions("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # the Functions host's default ("Information")

    import function_app  # configures telemetry, as the Functions worker's import does
    from devhost.host import LocalFunctionsHost

    host = LocalFunctionsHost(function_app.app, os.environ[STORAGE_PREFIX])
    host.run_timer()
    asyncio.run(host.run_until_idle(timeout=300))

    from opentelemetry import _logs, metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(),
                     _logs.get_logger_provider()):
        cast(Any, provider).force_flush()  # the SDK's providers, set by the distro


if __name__ == "__main__":
    main(sys.argv[1])
