"""Logs, traces and metrics: Application Insights through OpenTelemetry when
APPLICATIONINSIGHTS_CONNECTION_STRING is set, plain logging otherwise.

Never in logs or telemetry: message text, attachment names, phone numbers or addresses in
clear, tokens, passwords. Our own code logs only export names, reason codes, counts and hashed
keys; the redaction filter is the second line of defence, on every handler of the root logger,
for whatever a library might log (HTTP client URLs carry user addresses, for example).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context

log = logging.getLogger(__name__)

tracer = trace.get_tracer("telegram-archive-connector")
meter = metrics.get_meter("telegram-archive-connector")
items_outcome = meter.create_counter("archive.items", description="items by outcome")
graph_throttled = meter.create_counter("archive.graph.throttled",
                                       description="Graph 429 answers")
graph_throttle_wait = meter.create_histogram("archive.graph.throttle_wait", unit="s")
graph_latency = meter.create_histogram("archive.graph.latency", unit="ms")
queue_age = meter.create_histogram("archive.queue.age", unit="s",
                                   description="time from queueing to import")
fetch_bytes = meter.create_counter("archive.fetch.bytes", unit="By")
fetch_duration = meter.create_histogram("archive.fetch.duration", unit="s")

# Libraries that log request URLs (which contain user addresses) at INFO.
_CHATTY = ("httpx", "httpcore", "azure.core.pipeline.policies.http_logging_policy",
           "azure.identity", "urllib3", "kiota_http", "msgraph")

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# TeleMessage writes numbers as bare digits with the country code; people write "+44 7700 ...".
_PHONE = re.compile(r"(?<![\w.\-])(?:\+\d[\d \-]{6,17}\d|\d{9,15})(?![\w.\-])")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/]+=*")
_SECRETS = re.compile(r"(?i)(password|secret|token|accountkey|sig)=([^&;\s]+)")


def begin_item_trace(export: str, member: str) -> str:
    """Starts an item's trace at split; returns its traceparent ('' when tracing is off), which
    the queue message carries so that import continues the same trace."""
    with tracer.start_as_current_span("split item", context=Context(), attributes={
            "export": export, "member": digest(member)}):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier.get("traceparent", "")


def item_trace_context(traceparent: str) -> Context | None:
    return propagate.extract({"traceparent": traceparent}) if traceparent else None


def digest(value: str) -> str:
    """A stable, non-reversible handle for a key or address in telemetry."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16] if value else "-"


def redact(text: str) -> str:
    text = _BEARER.sub(r"\1[redacted]", text)
    text = _SECRETS.sub(r"\1=[redacted]", text)
    text = _EMAIL.sub("[address]", text)
    return _PHONE.sub("[number]", text)


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message",
                                                                            "asctime"}


class RedactingFilter(logging.Filter):
    """Rewrites every record's message and custom dimensions before any handler emits it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_configured = False


def configure(env: dict[str, str] | None = None) -> None:
    """Once per process, at start-up (function_app imports it)."""
    global _configured
    if _configured:
        return
    _configured = True
    env = dict(os.environ) if env is None else env
    connection = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "")
    if connection:
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(connection_string=connection,
                                logger_name=env.get("TELEMETRY_LOGGER", ""))
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    install_redaction(logging.getLogger())


def install_redaction(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def event(logger: logging.Logger, message: str, level: int = logging.INFO,
          **dimensions: Any) -> None:
    """A log record whose keyword arguments become customDimensions in Application Insights."""
    logger.log(level, message, extra=dimensions)
