"""Promise 6: no message content, attachment name, phone number or address in clear, token or
password in logs or telemetry. Captures everything an end-to-end run emits and searches it."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from devhost.stack import GRAPH_TOKEN, TM_PASSWORD, LocalStack
from simulators.telemessage.eml_builder import SimItem

pytestmark = pytest.mark.e2e
DAY = datetime.now(UTC).date() - timedelta(days=1)
ROOT = Path(__file__).resolve().parents[2]


class Collector(ThreadingHTTPServer):
    """Application Insights' ingestion (and live metrics) endpoint on loopback: keeps every
    envelope the Azure Monitor exporters send."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Ingestion)
        self.bodies: list[str] = []

    @property
    def connection_string(self) -> str:
        url = f"http://127.0.0.1:{self.server_address[1]}/"
        return (f"InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                f"IngestionEndpoint={url};LiveEndpoint={url}")

    def envelopes(self) -> list[dict[str, Any]]:
        found = []
        for body in self.bodies:
            try:
                parsed = json.loads(body)
            except ValueError:
                continue
            found += parsed if isinstance(parsed, list) else [parsed]
        return [e for e in found if isinstance(e, dict) and "data" in e]


class _Ingestion(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
        body = data.decode("utf-8", "replace")
        self.server.bodies.append(body)
        count = body.count('"iKey"')
        answer = json.dumps({"itemsReceived": count, "itemsAccepted": count,
                             "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return None


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


def encoded_forms(secret: str) -> set[str]:
    """The secret as it appears in a URL or in JSON (escaped non-ASCII text, "%40", "%2B")."""
    return {secret, quote(secret, safe=""), quote(secret), json.dumps(secret)[1:-1]}


def leaks(haystack: list[str], secrets: set[str]) -> list[str]:
    return sorted({secret for secret in secrets for form in encoded_forms(secret)
                   for text in haystack if form in text})


# Whatever the secrets list misses: any address (also percent-encoded), an upload token, the
# archive-key search's $filter.
_ANY_ADDRESS = re.compile(r"[\w.+\-]+(?:@|%40)[\w\-]+\.[\w.\-]+", re.IGNORECASE)
_UPLOAD_TOKEN = re.compile(r"authtoken=(?!\[redacted\])", re.IGNORECASE)
_KEY_FILTER = re.compile(r"ep(?:/|%2F)value", re.IGNORECASE)


@dataclass
class Emitted:
    envelopes: list[dict[str, Any]]
    logs: list[str]
    secrets: set[str]
    uploads: int  # upload-session PUTs the Graph simulator answered

    @property
    def haystack(self) -> list[str]:
        return ([json.dumps(e) for e in self.envelopes]
                + [json.dumps(e, ensure_ascii=False) for e in self.envelopes] + self.logs)

    def of_type(self, base_type: str) -> list[dict[str, Any]]:
        return [e for e in self.envelopes if e["data"].get("baseType") == base_type]


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emitted]:
    workdir = tmp_path_factory.mktemp("leaks")
    collector = Collector()
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    stack = LocalStack(workdir, days=[DAY], items_per_day=60, employees=10, seed=13,
                       telemessage_options={"oversize": 1, "large_attachments": 3,
                                            "encrypted": 1})
    try:
        with stack:
            assert stack.telemessage and stack.graph
            env = {**os.environ, **stack.env,
                   "APPLICATIONINSIGHTS_CONNECTION_STRING": collector.connection_string,
                   "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
                   "OTEL_TRACES_SAMPLER": "always_on",  # the distro's default samples
                   "PYTHONPATH": str(ROOT)}
            run = subprocess.run([sys.executable, str(ROOT / "tests/e2e/telemetry_run.py"),
                                  str(workdir / "log.txt")], env=env, cwd=ROOT,
                                 capture_output=True, text=True, timeout=540, check=False)
            assert run.returncode == 0, run.stderr[-3000:]
            items = stack.telemessage.items(DAY)
            uploads = sum(1 for r in stack.graph.request_log
                          if r.method == "PUT" and "AttachmentSessions" in r.path)
    finally:
        collector.shutdown()
    logs = (workdir / "log.txt").read_text(encoding="utf-8").splitlines()
    (workdir / "envelopes.json").write_text(json.dumps(collector.envelopes(), indent=1))
    yield Emitted(collector.envelopes(), logs + run.stderr.splitlines(), secrets_of(items),
                  uploads)


def test_the_run_emitted_logs_spans_and_metrics(emitted: Emitted) -> None:
    assert any("item outcome" in line for line in emitted.logs)
    names = {e["data"]["baseData"].get("name") for e in emitted.envelopes}
    assert {"split item", "import item"} <= names  # our spans
    assert any(str(n).startswith(("GET", "POST", "PUT")) for n in names)  # HTTP dependencies
    metrics = {m["name"] for e in emitted.of_type("MetricData")
               for m in e["data"]["baseData"]["metrics"]}
    assert "archive.items" in metrics
    assert any("item outcome" in json.dumps(e) for e in emitted.of_type("MessageData"))


def test_imported_items_carry_their_lag_from_capture(emitted: Emitted) -> None:
    """The workbook's lag chart reads lag_seconds of "item outcome" (yesterday's items)."""
    lags = [float(found.group(1)) for line in emitted.logs
            if " item outcome " in line and "outcome=imported" in line
            and (found := re.search(r"lag_seconds=(-?[\d.]+)", line))]
    assert lags and all(0 < lag < 3 * 86400 for lag in lags)


def test_each_item_is_one_trace_from_split_to_import(emitted: Emitted) -> None:
    def traces(name: str) -> list[str]:
        return [e["tags"]["ai.operation.id"] for e in emitted.envelopes
                if e["data"]["baseData"].get("name") == name]

    split, imported = traces("split item"), traces("import item")
    assert len(split) == len(set(split)) == 60  # one trace per item
    assert imported and set(imported) <= set(split)


def test_graph_and_upload_requests_were_traced(emitted: Emitted) -> None:
    """The spans that used to carry addresses, archive keys and upload tokens are there."""
    urls = [str(e["data"]["baseData"].get("data", "")) for e in emitted.envelopes]
    assert any("/users/{id}" in url for url in urls)
    assert emitted.uploads and any("AttachmentSessions" in url for url in urls)


def test_nothing_secret_was_emitted(emitted: Emitted) -> None:
    haystack = emitted.haystack
    assert len(emitted.secrets) > 50
    assert leaks(haystack, emitted.secrets) == []
    assert [m[0] for text in haystack for m in _ANY_ADDRESS.finditer(text)] == []
    assert [text for text in haystack if _UPLOAD_TOKEN.search(text)] == []
    assert [text for text in haystack if _KEY_FILTER.search(text)] == []


def test_the_search_finds_encoded_forms(emitted: Emitted) -> None:
    text = next(s for s in sorted(emitted.secrets) if " " in s and "@" not in s)
    address = next(s for s in sorted(emitted.secrets) if "@" in s)
    number = next(s for s in sorted(emitted.secrets) if s.startswith("+"))
    careless = [json.dumps({"text": text}), f"GET /users/{quote(address)}",
                f"to={quote(number)}"]
    assert leaks(careless, emitted.secrets) == sorted({text, address, number,
                                                      number.lstrip("+")})
