"""GraphApi: the hot-path writes as plain JSON over aiohttp, against a loopback server that
answers as Graph would (or breaks the connection), and what each answer becomes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from shared.clients import StaticTokenProvider
from shared.graph import Failure, GraphApi, GraphError, classify

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def graph_at() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[GraphApi, list[Any]]]]]:
    """Starts a loopback server with the given handler; returns a GraphApi pointed at it and
    the list of requests it saw (headers and JSON bodies)."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> tuple[GraphApi, list[Any]]:
        seen: list[Any] = []

        async def recording(request: web.Request) -> web.StreamResponse:
            seen.append((dict(request.headers), await request.json(), request.path))
            return await handler(request)

        app = web.Application()
        app.router.add_post("/{tail:.*}", recording)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        base = f"http://127.0.0.1:{port}/v1.0"
        return GraphApi(base, StaticTokenProvider("graph-token", "127.0.0.1")), seen

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_a_created_message_answers_its_json_and_the_request_carries_token_and_body(
        graph_at: Any) -> None:
    async def created(request: web.Request) -> web.Response:
        return web.json_response({"id": "AAMk-1"}, status=201)

    api, seen = await graph_at(created)
    answer = await api.post("users/dana%40contoso.com/messages", b'{"subject": "hi"}')
    assert answer == {"id": "AAMk-1"}
    headers, body, path = seen[0]
    assert headers["Authorization"] == "Bearer graph-token"
    assert body == {"subject": "hi"}
    assert path == "/v1.0/users/dana@contoso.com/messages"


@pytest.mark.parametrize(("status", "code", "retry_after", "failure"), [
    (429, "ApplicationThrottled", "7", Failure.THROTTLED),
    (503, "ServiceUnavailable", None, Failure.UNKNOWN),  # a write may have happened
    (504, "", None, Failure.UNKNOWN),
    (404, "ErrorItemNotFound", None, Failure.NOT_FOUND),
    (400, "ErrorInvalidRequest", None, Failure.REJECTED),
    (404, "MailboxNotEnabledForRESTAPI", None, Failure.NO_MAILBOX),
])
async def test_an_error_answer_becomes_a_classified_graph_error(
        graph_at: Any, status: int, code: str, retry_after: str | None,
        failure: Failure) -> None:
    async def refuse(request: web.Request) -> web.Response:
        headers = {"Retry-After": retry_after} if retry_after else {}
        body = json.dumps({"error": {"code": code, "message": "no"}}) if code else "gateway"
        return web.Response(status=status, text=body, headers=headers,
                            content_type="application/json")

    api, _ = await graph_at(refuse)
    with pytest.raises(GraphError) as raised:
        await api.post("users/dana/messages", b'{"subject": "hi"}')
    assert raised.value.failure is failure
    assert raised.value.status == status
    assert raised.value.code == code
    if retry_after:
        assert raised.value.retry_after == float(retry_after)


async def test_a_connection_dropped_before_the_answer_is_an_unknown_write(graph_at: Any) -> None:
    """The request reached the server, so the message may exist: the writer must ask Graph
    before writing again, which it does for UNKNOWN (never a blind retry)."""
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.5)
        return web.Response()

    api, seen = await graph_at(drop)
    with pytest.raises(Exception) as raised:  # noqa: B017 - classified below
        await api.post("users/dana/messages", b'{"subject": "hi"}')
    assert len(seen) == 1
    error = classify(raised.value, write=True)
    assert error.failure is Failure.UNKNOWN
    assert classify(raised.value, write=False).failure is Failure.TRANSIENT


def test_the_session_closes_with_its_event_loop() -> None:
    """Each asyncio.run() (the local host, the CLI, a test) ends with the session closed, not
    left to warn "Unclosed client session" at garbage collection."""
    api = GraphApi("http://127.0.0.1:9/v1.0", StaticTokenProvider("t", "127.0.0.1"))

    async def open_session() -> Any:
        return await api._http()

    session = asyncio.run(open_session())
    assert session.closed
    second = asyncio.run(open_session())  # a new loop gets a new session
    assert second is not session and second.closed


def test_httpcore_finds_sniffio() -> None:
    """anyio 4.16 no longer pulls sniffio in; without it httpcore (msgraph's and the upload
    client's transport) retries the failed import several times per request, ~23 us each."""
    from httpcore._synchronization import current_async_library

    async def library() -> str:
        return current_async_library()

    assert asyncio.run(library()) == "asyncio"
    import sys
    assert "sniffio" in sys.modules
