"""Logs, traces and metrics: Application Insights through OpenTelemetry when
APPLICATIONINSIGHTS_CONNECTION_STRING is set, plain logging otherwise.

Never in logs or telemetry: message text, attachment names, phone numbers or addresses in
clear, tokens, passwords. Our own code logs only export names, reason codes, counts and hashed
keys. The second line of defence is on both paths to Application Insights: the redaction
filter on every handler of the root logger (for whatever a library logs), and the scrubbing
span processor ahead of every span exporter (HTTP spans carry URLs: `/users/{address}`, the
archive key in `$filter`, the upload session's `?authtoken=`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.trace import Status

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
# The exporter's own INFO records would be exported in turn, a record per transmission, forever.
_CHATTY = ("httpx", "httpcore", "azure.core.pipeline.policies.http_logging_policy",
           "azure.identity", "urllib3", "kiota_http", "msgraph", "azure.monitor.opentelemetry")

# Instrumentations that would add a span (with its URL) per storage request on top of the Azure
# SDK's own; none of the web-framework ones apply to a Functions app.
_OFF = ("requests", "urllib", "urllib3", "django", "fastapi", "flask", "psycopg2")

# An address also as it appears in URLs: "%40" (or "%2540" encoded twice) for "@". Matches
# start only where a run of such characters starts, which keeps the scan linear.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+(?:@|%40|%2540)[A-Za-z0-9.\-]+"
                    r"\.[A-Za-z]{2,}", re.IGNORECASE)
# TeleMessage writes numbers as bare digits with the country code; people write
# "+44 (0)7700 900.123" or "0044-7700-900123"; URLs write "+" as "%2B". A candidate counts
# as a number when it holds 9 to 15 digits (so dates and versions stay readable).
_PHONE = re.compile(r"(?<![\w.\-%])(?:\+|%2B)?\(?\d[\d \-.()]{5,24}\d(?![\w\-]|:\d)",
                    re.IGNORECASE)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/]+=*")
# Names whose value is a credential: "...password", "...token" (authtoken, access_token),
# "AccountKey", "sig", "code" (function keys), ...
_SENSITIVE = re.compile(r"(?i)(?:password|passwd|secret|token|accountkey|accesskey|apikey|"
                        r"api_key|signature)$|^(?:pwd|sig|code|key)$")
# name=value (query strings, connection strings) and "name": "value" (JSON bodies); the name is
# matched generally and then checked, which keeps the scan linear.
_ASSIGNMENT = re.compile(r"(?<![\w\-])([\w\-]+)=([^&;\s\"',]+)")
_JSON_MEMBER = re.compile(r'("([\w\-]+)"\s*:\s*)"(?:[^"\\]|\\.)*"')


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
    # Each pattern runs only when the text has the character it needs: this runs on every log
    # record and on every string of every span.
    if "bearer" in text.lower():
        text = _BEARER.sub(r"\1[redacted]", text)
    if "=" in text:
        text = _ASSIGNMENT.sub(
            lambda m: f"{m[1]}=[redacted]" if _SENSITIVE.search(m[1]) else m[0], text)
    if '"' in text:
        text = _JSON_MEMBER.sub(
            lambda m: f'{m[1]}"[redacted]"' if _SENSITIVE.search(m[2]) else m[0], text)
    if "@" in text or "%" in text:
        text = _EMAIL.sub("[address]", text)
    if sum(map(text.count, "0123456789")) >= 9:
        text = _PHONE.sub(_number, text)
    return text


def _number(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match[0]) - (2 if match[0][:3].upper() == "%2B" else 0)
    return "[number]" if 9 <= digits <= 15 else match[0]


# Span attributes that hold a URL or a part of one. Their query is dropped whole ($filter
# holds archive keys, upload URLs their authtoken) and the user in the path is templated.
_URL_KEYS = frozenset({"url.full", "http.url", "http.target", "url.path", "url.query",
                       "url.original", "http.route"})
_URL_USER = re.compile(r"(?i)(/users/)[^/?#]+|(users\()[^)]*(\))")


def scrub_url(url: str) -> str:
    base, query, _ = url.partition("?")
    base = _URL_USER.sub(lambda m: f"{m[1]}{{id}}" if m[1] else f"{m[2]}{{id}}{m[3]}", base)
    return redact(base) + ("?[redacted]" if query else "")


def _scrub_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return scrub_url(value) if key in _URL_KEYS or "://" in value else redact(value)
    if isinstance(value, tuple | list):
        return tuple(_scrub_value(key, v) for v in value)
    return value


def _scrub_attributes(attributes: Any) -> dict[str, Any]:
    return {key: _scrub_value(key, value) for key, value in (attributes or {}).items()}


class ScrubbingSpanProcessor(SpanProcessor):
    """Rewrites every ended span's name, attributes, events and status before the exporters
    that follow it see the span: URLs lose their query and user, everything else is redacted.

    A processor cannot change an ended span through the API, so this replaces the fields of
    the ReadableSpan that the SDK hands, as one object, to each processor in turn; it must be
    registered before any exporting processor (configure() does). tests/shared/test_telemetry
    checks that it still works with the installed SDK."""

    def on_end(self, span: ReadableSpan) -> None:
        span._name = redact(span.name)
        span._attributes = _scrub_attributes(span.attributes)
        span._events = tuple(Event(e.name, _scrub_attributes(e.attributes), e.timestamp)
                             for e in span.events)
        if span.status.description:
            span._status = Status(span.status.status_code, redact(span.status.description))


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
    exported = env.get("TELEMETRY_LOGGER", "")
    if connection:
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(
            connection_string=connection, logger_name=exported,
            span_processors=[ScrubbingSpanProcessor()],
            instrumentation_options={name: {"enabled": False} for name in _OFF})
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    install_redaction(logging.getLogger())
    if exported:  # the distro's handler sits on that logger, not on the root
        install_redaction(logging.getLogger(exported))


def install_redaction(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def event(logger: logging.Logger, message: str, level: int = logging.INFO,
          **dimensions: Any) -> None:
    """A log record whose keyword arguments become customDimensions in Application Insights."""
    logger.log(level, message, extra=dimensions)
