"""aiohttp front ends: the Graph API listener and the upload listener ("another host")."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from .service import JSON_TYPE, GraphService, SimRequest, SimResponse

# aiohttp's own read limit; the 4 MB Graph limits are enforced by the service.
CLIENT_MAX_SIZE = 256 * 1024 * 1024


async def _sim_request(request: web.Request) -> SimRequest:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    host_port = f"{sockname[0]}:{sockname[1]}" if sockname else request.host
    return SimRequest(
        method=request.method,
        path=request.rel_url.raw_path,
        target=request.raw_path,
        query=request.query,
        headers=request.headers,
        body=await request.read(),
        origin=f"{request.scheme}://{request.host}",
        host_port=host_port,
    )


def _web_response(response: SimResponse) -> web.Response:
    headers = dict(response.headers)
    if response.json is not None:
        headers["Content-Type"] = JSON_TYPE
        body = json.dumps(response.json).encode()
    else:
        if response.raw and response.content_type:
            headers["Content-Type"] = response.content_type
        body = response.raw or b""
    return web.Response(status=response.status, body=body, headers=headers)


def _catch_all(handler: Callable[[SimRequest], Awaitable[SimResponse]]) -> web.Application:
    """A listener sending every path to `handler`."""
    async def handle(request: web.Request) -> web.Response:
        return _web_response(await handler(await _sim_request(request)))

    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def api_app(service: GraphService) -> web.Application:
    """The Graph v1.0 listener: every path goes through `service.handle`."""
    return _catch_all(service.handle)


def upload_app(service: GraphService) -> web.Application:
    """The listener of pre-authenticated upload URLs: every path goes to `handle_upload`."""
    return _catch_all(service.handle_upload)
