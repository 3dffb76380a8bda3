"""Promise 6: no message content, attachment name, phone number or address in clear, token or
password in logs or telemetry. Captures everything an end-to-end run emits and searches it."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import function_app
from devhost.host import LocalFunctionsHost
from devhost.stack import GRAPH_TOKEN, TM_PASSWORD, LocalStack
from shared import telemetry
from shared.clients import Runtime, set_runtime
from shared.settings import Settings
from simulators.telemessage.eml_builder import SimItem

pytestmark = pytest.mark.e2e
DAY = datetime.now(UTC).date() - timedelta(days=1)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items()
                          if k not in telemetry._STANDARD)
        self.lines.append(self.format(record) + " " + extras)


def secrets_of(items: list[SimItem]) -> set[str]:
    """What must never appear: texts, attachment names, numbers, addresses, credentials."""
    found = {GRAPH_TOKEN, TM_PASSWORD}
    for item in items:
        for line in item.body.splitlines():
            if len(line.strip()) >= 12:
                found.add(line.strip())
        found.update(a.filename for a in item.attachments)
        for person in (item.sender, *item.recipients):
            found.add(person.mobile)
            found.add("+" + person.mobile)
            if person.email:
                found.add(person.email)
    return found


def leaks(haystack: list[str], secrets: set[str]) -> list[str]:
    return sorted({secret for secret in secrets for text in haystack if secret in text})


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], set[str]]]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    capture = Capture()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.INFO)  # the Functions host's default ("Information")
    telemetry.configure()
    telemetry.install_redaction(root)
    stack = LocalStack(tmp_path_factory.mktemp("leaks"), days=[DAY], items_per_day=60,
                       employees=10, seed=13, telemessage_options={
                           "oversize": 1, "large_attachments": 1, "encrypted": 1})
    try:
        with stack:
            assert stack.azurite and stack.telemessage
            runtime = Runtime(Settings.from_env())
            set_runtime(runtime)
            host = LocalFunctionsHost(function_app.app, stack.azurite.connection_string)
            host.run_timer()
            asyncio.run(host.run_until_idle(timeout=300))
            items = stack.telemessage.items(DAY)
    finally:
        root.removeHandler(capture)
        root.setLevel(previous_level)
        set_runtime(None)
    haystack = list(capture.lines)
    for span in spans.get_finished_spans():
        haystack.append(f"{span.name} {dict(span.attributes or {})} "
                        f"{[(e.name, dict(e.attributes or {})) for e in span.events]} "
                        f"trace={span.context.trace_id:032x}")
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else []:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                haystack += [f"{metric.name} {dict(p.attributes or {})}"
                             for p in metric.data.data_points]
    yield haystack, secrets_of(items)


def test_the_run_emitted_logs_spans_and_metrics(emitted: tuple[list[str], set[str]]) -> None:
    haystack, _ = emitted
    assert any("item outcome" in line for line in haystack)
    assert any(line.startswith("import item") for line in haystack)
    assert any(line.startswith("archive.items") for line in haystack)


def test_imported_items_carry_their_lag_from_capture(
        emitted: tuple[list[str], set[str]]) -> None:
    """The workbook's lag chart reads lag_seconds of "item outcome" (yesterday's items)."""
    haystack, _ = emitted
    lags = [float(found.group(1)) for line in haystack
            if " item outcome " in line and "outcome=imported" in line
            and (found := re.search(r"lag_seconds=(-?[\d.]+)", line))]
    assert lags and all(0 < lag < 3 * 86400 for lag in lags)


def test_each_item_is_one_trace_from_split_to_import(
        emitted: tuple[list[str], set[str]]) -> None:
    haystack, _ = emitted

    def traces(name: str) -> list[str]:
        return [line.rsplit("trace=", 1)[1] for line in haystack if line.startswith(name + " ")]

    split, imported = traces("split item"), traces("import item")
    assert len(split) == len(set(split)) == 60  # one trace per item
    assert imported and set(imported) <= set(split)


def test_nothing_secret_was_emitted(emitted: tuple[list[str], set[str]]) -> None:
    haystack, secrets = emitted
    assert len(secrets) > 50
    assert leaks(haystack, secrets) == []


def test_the_search_would_catch_a_logged_message_text(emitted: tuple[list[str],
                                                                     set[str]]) -> None:
    _, secrets = emitted
    text = next(s for s in sorted(secrets) if " " in s and "@" not in s)
    capture = Capture()
    capture.addFilter(telemetry.RedactingFilter())
    logger = logging.getLogger("shared.careless")
    logger.addHandler(capture)
    try:
        logger.warning("parsed text: %s", text)  # what a careless change might do
    finally:
        logger.removeHandler(capture)
    assert leaks(capture.lines, secrets) == [text]


def test_redaction_masks_numbers_addresses_and_tokens() -> None:
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
