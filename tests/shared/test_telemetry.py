"""Redaction of log records and scrubbing of spans (promise 6)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from shared import telemetry
from shared.telemetry import ScrubbingSpanProcessor, redact, scrub_url


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items()
                          if k not in telemetry._STANDARD)
        self.lines.append(f"{record.getMessage()} {extras}")


def test_the_filter_masks_numbers_addresses_and_tokens_in_messages_and_dimensions() -> None:
    capture = Capture()
    capture.addFilter(telemetry.RedactingFilter())
    logger = logging.getLogger("shared.redaction")
    logger.addHandler(capture)
    try:
        logger.warning("GET /users/dana.levi@contoso.com for 972541234567",
                       extra={"who": "+44 7700 900123", "auth": "Bearer abc.def"})
    finally:
        logger.removeHandler(capture)
    [line] = capture.lines
    for secret in ("dana.levi@contoso.com", "972541234567", "7700 900123", "abc.def"):
        assert secret not in line


@pytest.mark.parametrize("text, secret", [
    ("GET /users/dana.levi%40contoso.com", "dana.levi"),
    ("GET /users/dana%2Blevi%40contoso.com", "dana%2Blevi"),
    ("to %2B447700900123", "447700900123"),
    ("call +44 (0)7700 900.123 now", "7700 900.123"),
    ("call (020) 7946 0018 now", "7946 0018"),
    ("call +1.555.123.4567 now", "555.123.4567"),
    ("call 0044-7700-900123: no answer", "7700-900123"),
    ('{"username": "archiver", "password": "hunter2-\\"x"}', "hunter2"),
    ('{"access_token":"eyJ0eXAi.abc"}', "eyJ0eXAi"),
    ("https://upload.example/AttachmentSessions('1')?authtoken=AAMkADk", "AAMkADk"),
    ("POST /api/replay?code=fn-key-123", "fn-key-123"),
    ("AccountKey=c2VjcmV0==;EndpointSuffix=core.windows.net", "c2VjcmV0"),
])
def test_redaction_catches_encoded_and_formatted_forms(text: str, secret: str) -> None:
    assert secret not in redact(text)


@pytest.mark.parametrize("text", [
    "split 2026-11-25 at 2026-11-25T10:00:00+00:00", "version 1.26.0 on 127.0.0.1",
    "202611250000-TeleMessage_1_20261126003000.zip member TG-20261125-1a2b3c4d.eml",
    "bytes 0-3276799/5242880", "status code 429 after 12 attempts",
])
def test_redaction_leaves_dates_names_and_counts_readable(text: str) -> None:
    assert redact(text) == text


def test_urls_lose_their_query_and_user() -> None:
    assert scrub_url("https://graph.microsoft.com/v1.0/users/dana.levi%40contoso.com/"
                     "mailFolders/AAMk/messages?$filter=ep/value eq 'TG-1'&$top=2") == (
        "https://graph.microsoft.com/v1.0/users/{id}/mailFolders/AAMk/messages?[redacted]")
    assert scrub_url("https://outlook.office.com/api/v2.0/Users('00000000-1@tid')/Messages('m')"
                     "/AttachmentSessions('s')?authtoken=eyJ0") == (
        "https://outlook.office.com/api/v2.0/Users({id})/Messages('m')"
        "/AttachmentSessions('s')?[redacted]")


def test_the_span_processor_scrubs_what_exporters_receive() -> None:
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(ScrubbingSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracer = provider.get_tracer("test")
    url = ("http://127.0.0.1:1/v1.0/users/dana.levi%40contoso.com/messages"
           "?$filter=ep/value eq 'TG-20261125-1a2b3c4d'")
    with tracer.start_as_current_span("GET dana.levi@contoso.com") as span:
        span.set_attributes({"url.full": url, "http.target": "/upload?authtoken=tok-123",
                             "server.address": "127.0.0.1", "http.status_code": 200,
                             "participants": ["+447700900123", "eve@example.org"]})
        span.add_event("exception", {"exception.message": f"timeout on {url}"})
        span.set_status(Status(StatusCode.ERROR, "no user dana.levi@contoso.com"))
    [done] = exported.get_finished_spans()
    text = f"{done.name} {dict(done.attributes or {})} {done.status.description} " + " ".join(
        str(dict(e.attributes or {})) for e in done.events)
    for secret in ("dana.levi", "TG-20261125", "tok-123", "447700900123", "eve@"):
        assert secret not in text
    assert done.attributes and done.attributes["url.full"] == (
        "http://127.0.0.1:1/v1.0/users/{id}/messages?[redacted]")
    assert done.attributes["http.status_code"] == 200  # non-text values are kept
    assert done.attributes["server.address"] == "127.0.0.1"


def test_configure_registers_the_processor_and_turns_off_url_instrumentations(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    import azure.monitor.opentelemetry as distro

    exporter_handler = logging.NullHandler()  # what the distro adds to the named logger
    exported = logging.getLogger("shared.exported")

    def fake_distro(**kw: object) -> None:
        seen.update(kw)
        exported.addHandler(exporter_handler)

    monkeypatch.setattr(distro, "configure_azure_monitor", fake_distro)
    monkeypatch.setattr(telemetry, "_configured", False)
    try:
        telemetry.configure({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x",
                             "TELEMETRY_LOGGER": "shared.exported"})
    finally:
        exported.removeHandler(exporter_handler)
    assert any(isinstance(f, telemetry.RedactingFilter) for f in exporter_handler.filters)
    processors = seen["span_processors"]
    assert isinstance(processors, list) and isinstance(processors[0], ScrubbingSpanProcessor)
    options = seen["instrumentation_options"]
    assert isinstance(options, dict) and options["requests"] == {"enabled": False}
    assert logging.getLogger("azure.monitor.opentelemetry.exporter").getEffectiveLevel() \
        >= logging.WARNING


@pytest.mark.parametrize("unit", ["a", "a-", "1-", '"a":', "a%", "a=", "bearer "])
def test_redaction_stays_linear_on_hostile_text(unit: str) -> None:
    """A vendor's error body or a library's message can be long and crafted; a quadratic
    pattern would take minutes on this. A generous bound, not a benchmark."""
    import time

    text = unit * (200_000 // len(unit))
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 5.0
