"""The local host's Functions semantics: indexing, binding expressions, NCRONTAB, poison."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime

import azure.functions as func
import pytest
from azure.storage.queue import QueueClient

import function_app
from devhost.azurite import Azurite
from devhost.host import ROOT, LocalFunctionsHost, QueueOptions, resolve_setting_expressions


def test_two_hosts_can_index_the_same_app(azurite: Azurite) -> None:
    first = LocalFunctionsHost(function_app.app, azurite.connection_string)
    second = LocalFunctionsHost(function_app.app, azurite.connection_string)
    names = {f.name for f in first.functions}
    assert names == {f.name for f in second.functions}
    assert {"fetch", "split", "import_item", "reconcile", "replay"} <= names


def test_queue_options_come_from_host_json() -> None:
    options = QueueOptions.from_host_json(json.loads((ROOT / "host.json").read_text()))
    assert (options.batch_size, options.max_dequeue_count, options.message_encoding) == (
        16, 5, "base64")


def test_binding_expressions_need_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITEMS_QUEUE", "items-x")
    assert resolve_setting_expressions("%ITEMS_QUEUE%") == "items-x"
    monkeypatch.delenv("ITEMS_QUEUE")
    with pytest.raises(KeyError, match="ITEMS_QUEUE"):
        resolve_setting_expressions("%ITEMS_QUEUE%")


def test_ncrontab_seconds_field_comes_first(azurite: Azurite,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FETCH_SCHEDULE", "0 30 1 * * *")
    host = LocalFunctionsHost(function_app.app, azurite.connection_string)
    fetch = next(f for f in host.functions if f.name == "fetch")
    fire = host.next_timer_fire(fetch, datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    assert fire == datetime(2026, 11, 27, 1, 30, tzinfo=UTC)


async def test_a_failing_message_is_retried_then_moved_to_poison(
        azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    queue_name = "hosttest"
    monkeypatch.setenv("ITEMS_QUEUE", queue_name)
    attempts: list[int] = []

    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="%ITEMS_QUEUE%",
                       connection="AzureWebJobsStorage")
    async def always_fails(msg: func.QueueMessage) -> None:
        attempts.append(msg.dequeue_count or 0)
        assert msg.get_body() == b"hello"  # decoded from base64 as host.json declares
        raise RuntimeError("boom")

    host_json = copy.deepcopy(json.loads((ROOT / "host.json").read_text()))
    host_json["extensions"]["queues"].update({"maxDequeueCount": 3,
                                              "visibilityTimeout": "00:00:00"})
    host = LocalFunctionsHost(app, azurite.connection_string, host_json=host_json)
    queue = QueueClient.from_connection_string(azurite.connection_string, queue_name)
    queue.create_queue()
    queue.send_message(base64.b64encode(b"hello").decode())
    await host.run_until_idle(timeout=60)
    assert attempts == [1, 2, 3]
    poison = QueueClient.from_connection_string(azurite.connection_string,
                                                f"{queue_name}-poison")
    [moved] = list(poison.receive_messages())
    assert base64.b64decode(moved.content) == b"hello"
    assert host.stats.poisoned == 1
