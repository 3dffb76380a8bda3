"""The function metadata the Python worker would send the host for function_app.py.

The worker that Flex Consumption runs for Python 3.11 (azure-functions-python-worker 4.x) ships
with the Functions host and is not on PyPI for 3.11: `azure-functions-runtime` needs Python
3.13, and `azure-functions-worker` there stopped at 1.1.9 (2020). So devhost/indexing.py makes
the worker's own library calls, and `test_the_worker_agrees` runs the real worker's loader when
`azure_functions_worker` is importable. To run it: take `azure_functions_worker/` from the
worker's source (4.34.0 was checked; loader and deferred-binding code are unchanged in 4.38),
`pip install --target DIR grpcio-tools~=1.59.0 protobuf~=4.25.3`, compile its protos as its
setup does (grpc_tools.protoc on protos/_src/src/proto, imports made absolute), and put DIR and
the source on PYTHONPATH.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob
import pytest

from devhost.azurite import Azurite
from devhost.host import ROOT, LocalFunctionsHost
from devhost.indexing import FunctionMetadata, IndexingError, index_app, index_module
from shared.settings import Settings


def fresh_function_app() -> ModuleType:
    """function_app.py imported anew: FunctionApp.get_functions() works once per app."""
    spec = importlib.util.spec_from_file_location("function_app", ROOT / "function_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def metadata() -> dict[str, FunctionMetadata]:
    return {m.name: m for m in index_module(fresh_function_app())}


def binding(meta: FunctionMetadata, name: str) -> dict[str, Any]:
    [found] = [b for b in meta.bindings if b["name"] == name]
    return found


def test_names_types_and_directions(metadata: dict[str, FunctionMetadata]) -> None:
    shapes = {name: sorted((b["name"], b["type"], b["direction"]) for b in m.bindings)
              for name, m in metadata.items()}
    assert shapes == {
        "fetch": [("timer", "timerTrigger", "IN")],
        "split": [("export", "blobTrigger", "IN")],
        "import_item": [("msg", "queueTrigger", "IN")],
        "reconcile": [("timer", "timerTrigger", "IN")],
        "replay": [("$return", "http", "OUT"), ("req", "httpTrigger", "IN")],
        "replay_job": [("msg", "queueTrigger", "IN")],
    }
    assert {m.script_file for m in metadata.values()} == {"function_app.py"}


def test_setting_expressions(metadata: dict[str, FunctionMetadata]) -> None:
    assert {n: m.setting_names() for n, m in metadata.items()} == {
        "fetch": {"FETCH_SCHEDULE"}, "split": {"EXPORTS_CONTAINER"},
        "import_item": {"ITEMS_QUEUE"}, "reconcile": {"REPORT_SCHEDULE"}, "replay": set(),
        "replay_job": {"REPLAY_QUEUE"}}
    assert binding(metadata["split"], "export")["path"] == "%EXPORTS_CONTAINER%/{name}"
    assert binding(metadata["import_item"], "msg")["queueName"] == "%ITEMS_QUEUE%"
    assert binding(metadata["replay_job"], "msg")["queueName"] == "%REPLAY_QUEUE%"
    for name in ("split", "import_item", "replay_job"):
        assert metadata[name].trigger["connection"] == "AzureWebJobsStorage"


def test_blob_trigger_is_event_grid_and_binds_a_blob_client(
        metadata: dict[str, FunctionMetadata]) -> None:
    split = metadata["split"]
    assert split.trigger["source"] == "EventGrid"  # the only blob source Flex Consumption runs
    # the host sends a reference and the extension builds the BlobClient: no bytes in memory
    assert split.trigger["properties"] == {"SupportsDeferredBinding": True}
    assert split.deferred
    assert not any(m.deferred for n, m in metadata.items() if n != "split")


def test_http_route_and_auth_level(metadata: dict[str, FunctionMetadata]) -> None:
    trigger = metadata["replay"].trigger
    assert (trigger["route"], trigger["methods"], trigger["authLevel"]) == (
        "replay", ["POST"], "FUNCTION")


def test_timers_are_not_run_on_startup_and_keep_their_schedule(
        metadata: dict[str, FunctionMetadata]) -> None:
    for name in ("fetch", "reconcile"):
        assert metadata[name].trigger["runOnStartup"] is False
        assert metadata[name].trigger["useMonitor"] is True


def sample_settings() -> dict[str, str]:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    return {k: str(v) for k, v in values.items()}


def default_settings() -> dict[str, str]:
    s = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    return {"FETCH_SCHEDULE": s.fetch_schedule, "REPORT_SCHEDULE": s.report_schedule,
            "EXPORTS_CONTAINER": s.exports_container, "ITEMS_QUEUE": s.items_queue,
            "REPLAY_QUEUE": s.replay_queue}


@pytest.mark.parametrize("source", [sample_settings, default_settings],
                         ids=["local.settings.sample.json", "settings.py defaults"])
def test_every_expression_resolves_and_the_schedules_parse(
        source: Any, azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    values = source()
    for name in {n for m in index_module(fresh_function_app()) for n in m.setting_names()}:
        assert values.get(name), f"%{name}% has no value in {source.__name__}"
        monkeypatch.setenv(name, values[name])
    host = LocalFunctionsHost(fresh_function_app().app, azurite.connection_string)
    after = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    fires = {f.name: host.next_timer_fire(f, after) for f in host.functions
             if f.kind == "timerTrigger"}
    assert set(fires) == {"fetch", "reconcile"}
    assert all(after < fire <= after.replace(day=27, hour=12) for fire in fires.values())


def test_an_ncrontab_without_seconds_is_refused(azurite: Azurite,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FETCH_SCHEDULE", "30 1 * * *")
    host = LocalFunctionsHost(fresh_function_app().app, azurite.connection_string)
    fetch = next(f for f in host.functions if f.name == "fetch")
    with pytest.raises(ValueError, match="6 fields"):
        host.next_timer_fire(fetch, datetime(2026, 11, 26, tzinfo=UTC))


# ---- what the worker refuses, and what the local host refuses because Azure would ------------

def test_a_module_with_two_function_apps_is_refused() -> None:
    module = ModuleType("two_apps")
    module.first, module.second = func.FunctionApp(), func.FunctionApp()  # type: ignore[attr-defined]
    with pytest.raises(IndexingError, match="exactly one"):
        index_module(module)


def test_a_parameter_without_a_binding_is_refused() -> None:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
    def extra(msg: func.QueueMessage, other: str) -> None: ...

    with pytest.raises(IndexingError, match="other"):
        index_app(app)


def test_a_polling_blob_trigger_is_refused_by_the_local_host(azurite: Azurite) -> None:
    app = func.FunctionApp()

    @app.blob_trigger(arg_name="export", path="exports/{name}", connection="AzureWebJobsStorage")
    def polled(export: blob.BlobClient) -> None: ...

    assert "source" not in index_app(app)[0].trigger
    with pytest.raises(IndexingError, match="EventGrid"):
        LocalFunctionsHost(app, azurite.connection_string)


def test_the_blob_argument_follows_the_deferred_binding(azurite: Azurite) -> None:
    """BlobClient: a client on the blob (SupportsDeferredBinding); InputStream: the bytes."""
    app = func.FunctionApp()
    received: dict[str, Any] = {}

    @app.blob_trigger(arg_name="b", path="c1/{name}", connection="AzureWebJobsStorage",
                      source=func.BlobSource.EVENT_GRID)
    def as_client(b: blob.BlobClient) -> None:
        received["client"] = b

    @app.blob_trigger(arg_name="b", path="c2/{name}", connection="AzureWebJobsStorage",
                      source=func.BlobSource.EVENT_GRID)
    def as_stream(b: func.InputStream) -> None:
        received["stream"] = b

    host = LocalFunctionsHost(app, azurite.connection_string)
    assert {f.name: f.deferred for f in host.functions} == {"as_client": True,
                                                            "as_stream": False}
    container = f"deferred-{uuid.uuid4().hex[:8]}"
    host._blobs.create_container(container).upload_blob("x.zip", b"zip bytes")
    [client_fn, stream_fn] = sorted(host.functions, key=lambda f: f.name)
    client = host._blob_argument(client_fn, container, "x.zip")
    assert client.download_blob().readall() == b"zip bytes"
    assert host._blob_argument(stream_fn, container, "x.zip").read() == b"zip bytes"


def test_http_calls_follow_route_and_methods(azurite: Azurite) -> None:
    app = func.FunctionApp()

    @app.route(route="admin/echo", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.get_body(), status_code=200)

    host = LocalFunctionsHost(app, azurite.connection_string)
    assert host.call_http("admin/echo", body=b"hi").get_body() == b"hi"
    assert host.call_http("admin/echo", method="GET").status_code == 404
    assert host.call_http("echo").status_code == 404  # the route, not the function name


# ---- the real worker ---------------------------------------------------------------------------

def test_the_worker_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("azure_functions_worker") is None:
        pytest.skip("azure_functions_worker is not importable: it is not on PyPI for Python "
                    "3.11 (see the module docstring)")
    from azure_functions_worker import bindings, functions, loader  # type: ignore[import-not-found]

    monkeypatch.setitem(sys.modules, "function_app", fresh_function_app())
    bindings.load_binding_registry()
    results, _ = loader.process_indexed_function(
        functions.Registry(), loader.index_function_app(str(ROOT / "function_app.py")),
        os.fspath(ROOT))
    worker = {r.name: (r.script_file, r.entry_point, [json.loads(b) for b in r.raw_bindings],
                       {n: (i.type, i.direction) for n, i in r.bindings.items()})
              for r in results}
    ours = {m.name: (m.script_file, m.name, m.bindings,
                     {b["name"]: (b["type"], 0 if b["direction"] == "IN" else 1)
                      for b in m.bindings})
            for m in index_module(fresh_function_app())}
    assert worker == ours
    assert Path(results[0].directory) == ROOT
