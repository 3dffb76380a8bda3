"""Fetch against the TeleMessage simulator over HTTP, into Azurite."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from shared.clients import Runtime
from shared.fetch import Fetcher
from shared.settings import Settings
from shared.telemessage import TeleMessageClient
from simulators.telemessage import TeleMessageSimulator

pytestmark = pytest.mark.azurite

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DAYS = [(NOW - timedelta(days=n)).date() for n in (3, 2, 1)]


@pytest.fixture(scope="module")
def telemessage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeleMessageSimulator]:
    sim = TeleMessageSimulator(tmp_path_factory.mktemp("tm"), password="right", days=DAYS,
                               items_per_day=40, max_items_per_zip=25, oversize=0,
                               large_attachments=1, encrypted=0, clock=lambda: NOW)
    with sim:
        yield sim


def fetcher(storage_env: dict[str, str], sim: TeleMessageSimulator, password: str = "right",
            url: str | None = None, lookback_hours: int = 24 * 4) -> tuple[Fetcher, Runtime]:
    rt = Runtime(Settings.from_env(storage_env))
    http = httpx.Client(base_url=url or sim.url, timeout=10)
    client = TeleMessageClient(http, "archiver", password, max_attempts=3, backoff_base=0.01)
    exports = rt.blob_service.get_container_client(rt.settings.exports_container)
    return Fetcher(client, exports, rt.state, timedelta(hours=lookback_hours),
                   clock=lambda: NOW), rt


def stored(rt: Runtime) -> dict[str, str]:
    container = rt.blob_service.get_container_client(rt.settings.exports_container)
    return {b.name: hashlib.sha256(container.download_blob(b.name).readall()).hexdigest()
            for b in container.list_blobs()}


def test_catches_up_every_missed_day_oldest_first_and_verifies_bytes(
        storage_env: dict[str, str], telemessage: TeleMessageSimulator) -> None:
    fetch, rt = fetcher(storage_env, telemessage)
    result = fetch.run()
    assert result.error == ""
    expected = {e.name: e.sha256 for e in telemessage.exports}
    assert len(expected) == 6  # 3 days x 2 ZIPs (40 items, 25 per ZIP)
    assert stored(rt) == expected
    assert result.stored == sorted(expected, key=lambda n: (n[:8], n))  # oldest day first
    assert rt.state.checkpoint() == NOW


def test_a_second_run_fetches_nothing_again(storage_env: dict[str, str],
                                           telemessage: TeleMessageSimulator) -> None:
    fetch, rt = fetcher(storage_env, telemessage)
    fetch.run()
    rt.state.set_checkpoint(NOW - timedelta(days=4))  # a re-run over the same window
    again = fetch.run()
    assert again.stored == [] and len(again.skipped) == 6


def test_wrong_password_leaves_the_checkpoint_and_says_why(
        storage_env: dict[str, str], telemessage: TeleMessageSimulator) -> None:
    fetch, rt = fetcher(storage_env, telemessage, password="wrong")
    result = fetch.run()
    assert "rejected the username or password" in result.error
    assert rt.state.checkpoint() is None
    assert stored(rt) == {}
    last = rt.state.last_run("fetch")
    assert last is not None and "password" in last["error"]


def test_unreachable_endpoint_is_a_clear_error(storage_env: dict[str, str],
                                              telemessage: TeleMessageSimulator) -> None:
    fetch, rt = fetcher(storage_env, telemessage, url="http://127.0.0.1:9")
    result = fetch.run()
    assert "unreachable" in result.error
    assert rt.state.checkpoint() is None


def test_broken_download_resumes_with_range(storage_env: dict[str, str], tmp_path: Path) -> None:
    sim = TeleMessageSimulator(tmp_path, password="right", days=DAYS[-1:], items_per_day=30,
                               oversize=0, large_attachments=1, encrypted=0, clock=lambda: NOW)
    sim.faults.fail_downloads_after_bytes = 100_000
    with sim:
        fetch, rt = fetcher(storage_env, sim)
        result = fetch.run()
        assert result.error == ""
        assert stored(rt) == {e.name: e.sha256 for e in sim.exports}


def test_flaky_api_is_retried(storage_env: dict[str, str], tmp_path: Path) -> None:
    sim = TeleMessageSimulator(tmp_path, password="right", days=DAYS[-1:], items_per_day=10,
                               oversize=0, large_attachments=0, encrypted=0, clock=lambda: NOW,
                               seed=3)
    sim.faults.unavailable_ratio = 0.3
    with sim:
        http = httpx.Client(base_url=sim.url, timeout=10)
        rt = Runtime(Settings.from_env(storage_env))
        client = TeleMessageClient(http, "archiver", "right", max_attempts=8, backoff_base=0.01)
        exports = rt.blob_service.get_container_client(rt.settings.exports_container)
        result = Fetcher(client, exports, rt.state, timedelta(days=2), clock=lambda: NOW).run()
        assert result.error == ""
        assert stored(rt) == {e.name: e.sha256 for e in sim.exports}


class _HostileApi(BaseHTTPRequestHandler):
    """A TeleMessage API whose error body echoes the credentials and names a user."""

    BODY = json.dumps({"error": "invalid_window", "request": {
        "username": "archiver", "password": "hunter2-pw", "access_token": "tok-abc-123"},
        "hint": "ask dana.levi@contoso.com or +44 7700 900123"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self._answer(200, json.dumps({"access_token": "tok-abc-123"}))

    def do_GET(self) -> None:  # noqa: N802
        self._answer(400, self.BODY)

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return None


def test_an_error_body_is_redacted_before_it_is_logged_or_stored(
        storage_env: dict[str, str], telemessage: TeleMessageSimulator,
        caplog: pytest.LogCaptureFixture) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fetch, rt = fetcher(storage_env, telemessage,
                            url=f"http://127.0.0.1:{server.server_address[1]}")
        with caplog.at_level(logging.ERROR, logger="shared.fetch"):
            result = fetch.run()
    finally:
        server.shutdown()
    last = rt.state.last_run("fetch")
    assert last is not None and "HTTP 400" in last["error"] and "invalid_window" in last["error"]
    logged = " ".join(f"{r.getMessage()} {getattr(r, 'detail', '')}" for r in caplog.records)
    for text in (result.error, last["error"], logged):
        for secret in ("hunter2-pw", "tok-abc-123", "dana.levi", "7700 900123"):
            assert secret not in text
