"""The TeleMessage export API on aiohttp: log in, list exports in a window, download with Range.

Contract (the connector's client implements the other side):
  POST /api/v1/login                 {"username", "password"} -> {"access_token", "token_type",
                                     "expires_in"}; 401 invalid_credentials
  GET  /api/v1/exports?created_after=&created_before=   (ISO 8601 with a UTC offset)
                                     -> {"exports": [{"name", "size", "sha256", "created_at"}]}
                                     created_after <= created_at < created_before and
                                     created_at <= now, sorted by (created_at, name)
  GET  /api/v1/exports/{name}        the ZIP, streamed; Range bytes=N-, N-M, -N -> 206; 416
Errors are JSON {"error": <code>, "message": <text>}; a bad or expired token is 401
invalid_token. An export is neither listed nor downloadable before its created_at.
"""

from __future__ import annotations

import hmac
import random
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web

from simulators.telemessage.export import ExportFile

CHUNK_BYTES = 256 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass
class Faults:
    """Failure injection; fields may be changed while the server runs."""

    fail_downloads_after_bytes: int | None = None  # cut the first download of each export
    unavailable_ratio: float = 0.0  # share of requests answered 503
    token_ttl: int = 3600  # seconds


@dataclass
class ApiState:
    """What the handlers serve. `exports` is replaced, never mutated, so readers need no lock;
    `tokens` and `truncated` are only touched on the server's loop."""

    username: str
    password: str
    clock: Callable[[], datetime]
    faults: Faults
    rng: random.Random
    exports: tuple[ExportFile, ...] = ()
    tokens: dict[str, datetime] = field(default_factory=dict)  # token -> expiry
    truncated: set[str] = field(default_factory=set)  # exports whose first download was cut


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


STATE = web.AppKey("telemessage_state", ApiState)


def _error(status: int, code: str, message: str,
           headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


def _state(request: web.Request) -> ApiState:
    return request.app[STATE]


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _faults_and_auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
    state = _state(request)
    if state.rng.random() < state.faults.unavailable_ratio:
        return _error(503, "unavailable", "Service temporarily unavailable", {"Retry-After": "1"})
    if request.path != "/api/v1/login":
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expiry = state.tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= state.clock():
            return _error(401, "invalid_token", "Missing, unknown or expired access token",
                          {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return await handler(request)


async def _login(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str)
                                             for k in ("username", "password")):
        return _error(400, "invalid_request", "Expected JSON with username and password")
    valid = (hmac.compare_digest(body["username"].encode(), state.username.encode())
             & hmac.compare_digest(body["password"].encode(), state.password.encode()))
    if not valid:
        return _error(401, "invalid_credentials", "Wrong username or password")
    now = state.clock()
    state.tokens = {t: e for t, e in state.tokens.items() if e > now}
    token = secrets.token_urlsafe(32)
    state.tokens[token] = now + timedelta(seconds=state.faults.token_ttl)
    return web.json_response({"access_token": token, "token_type": "Bearer",
                              "expires_in": state.faults.token_ttl})


def _parse_time(value: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


def _visible(state: ApiState) -> list[ExportFile]:
    now = state.clock()
    return [export for export in state.exports if export.created_at <= now]


async def _list(request: web.Request) -> web.Response:
    after = _parse_time(request.query.get("created_after"))
    before = _parse_time(request.query.get("created_before"))
    if after is None or before is None or after > before:
        return _error(400, "invalid_window", "created_after and created_before must be ISO 8601 "
                      "times with a UTC offset, created_after <= created_before")
    listed = sorted((e for e in _visible(_state(request)) if after <= e.created_at < before),
                    key=lambda e: (e.created_at, e.name))
    return web.json_response({"exports": [
        {"name": e.name, "size": e.size, "sha256": e.sha256, "created_at": iso_z(e.created_at)}
        for e in listed]})


class _Unsatisfiable(Exception):
    """A well-formed range that does not overlap the file."""


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a single-range header; None to serve the whole file."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return None  # absent, multi-range or malformed: ignored, as RFC 9110 allows
    first, last = match.groups()
    if not first:  # suffix range: the last N bytes
        if int(last) == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - int(last)), size - 1
    if last and int(last) < int(first):
        return None
    if int(first) >= size:
        raise _Unsatisfiable
    return int(first), min(int(last), size - 1) if last else size - 1


async def _download(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    name = request.match_info["name"]
    export = next((e for e in _visible(state) if e.name == name), None)
    if export is None:
        return _error(404, "not_found", f"No export named {name}")
    try:
        span = _byte_range(request.headers.get("Range"), export.size)
    except _Unsatisfiable:
        return _error(416, "range_not_satisfiable", f"The export has {export.size} bytes",
                      {"Content-Range": f"bytes */{export.size}"})
    first, last = span if span is not None else (0, export.size - 1)
    length = last - first + 1
    response = web.StreamResponse(status=206 if span is not None else 200, headers={
        "Content-Type": "application/zip", "Accept-Ranges": "bytes",
        "ETag": f'"{export.sha256}"',
        "Content-Disposition": f'attachment; filename="{export.name}"'})
    if span is not None:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{export.size}"
    response.content_length = length
    await response.prepare(request)
    cut = state.faults.fail_downloads_after_bytes
    if cut is not None and cut < length and name not in state.truncated:
        state.truncated.add(name)
    else:
        cut = None
    remaining = length if cut is None else cut
    with export.path.open("rb") as stream:
        stream.seek(first)
        while remaining > 0:
            chunk = stream.read(min(CHUNK_BYTES, remaining))
            await response.write(chunk)
            remaining -= len(chunk)
    if cut is not None and request.transport is not None:
        request.transport.close()  # flushes what was written, then drops the connection
        return response
    await response.write_eof()
    return response


def create_app(state: ApiState) -> web.Application:
    app = web.Application(middlewares=[_faults_and_auth])
    app[STATE] = state
    app.router.add_post("/api/v1/login", _login)
    app.router.add_get("/api/v1/exports", _list, allow_head=False)
    app.router.add_get("/api/v1/exports/{name}", _download, allow_head=False)
    return app
