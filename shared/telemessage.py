"""The TeleMessage export API client: the one vendor-specific module.

TeleMessage's pull API is not public; this is the documented contract the simulator also
implements (log in; list export ZIPs created in a time window; download one, streamed, with
Range). Adapting to the real endpoint or to SFTP touches this file only.

    POST {base}/api/v1/login            {"username", "password"} -> {"access_token", ...}
    GET  {base}/api/v1/exports?created_after=ISO&created_before=ISO -> {"exports": [...]}
    GET  {base}/api/v1/exports/{name}   (Range: bytes=N-) -> the ZIP
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import httpx

from shared.telemetry import redact
from shared.throttle import backoff_seconds


class TeleMessageError(Exception):
    """The export API cannot be used now (bad credentials, unreachable, repeated 5xx)."""


class AuthenticationFailed(TeleMessageError):
    pass


class _Retryable(TeleMessageError):
    """A 5xx or 429 that outlived the retries of one request; a download retries it again."""


@dataclass(frozen=True)
class ExportInfo:
    name: str
    size: int
    sha256: str | None
    created_at: datetime


class TeleMessageClient:
    def __init__(self, http: httpx.Client, username: str, password: str,
                 max_attempts: int = 5, backoff_base: float = 1.0) -> None:
        self._http = http  # base_url set to the API root; timeouts set by the caller
        self._username = username
        self._password = password
        self._token: str | None = None
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._rng = random.Random()

    def login(self) -> None:
        response = self._send("POST", "/api/v1/login",
                              json={"username": self._username, "password": self._password},
                              authenticated=False)
        if response.status_code in (401, 403):
            raise AuthenticationFailed("TeleMessage rejected the username or password "
                                       f"(HTTP {response.status_code})")
        _raise_for(response, "login")
        self._token = str(response.json()["access_token"])

    def list_exports(self, created_after: datetime, created_before: datetime) -> list[ExportInfo]:
        params = {"created_after": _iso(created_after), "created_before": _iso(created_before)}
        response = self._send("GET", "/api/v1/exports", params=params)
        _raise_for(response, "list exports")
        exports = []
        for entry in response.json().get("exports", []):
            exports.append(ExportInfo(
                name=str(entry["name"]), size=int(entry["size"]),
                sha256=entry.get("sha256"),
                created_at=datetime.fromisoformat(str(entry["created_at"]).replace("Z",
                                                                                   "+00:00"))))
        return sorted(exports, key=lambda e: (e.created_at, e.name))

    def download(self, export: ExportInfo, chunk_bytes: int = 1024 * 1024) -> Iterator[bytes]:
        """Yields the ZIP's bytes; a broken connection resumes with Range where it stopped."""
        received = 0
        attempt = 0
        while received < export.size:
            headers = {"Range": f"bytes={received}-"} if received else {}
            try:
                with self._stream(f"/api/v1/exports/{quote(export.name)}", headers) as response:
                    if response.status_code == 401:
                        self.login()
                        continue
                    if received and response.status_code != 206:
                        raise TeleMessageError(f"download of {export.name}: resume answered "
                                               f"HTTP {response.status_code}, not 206")
                    _raise_for(response, f"download {export.name}")
                    for chunk in response.iter_bytes(chunk_bytes):
                        received += len(chunk)
                        if received > export.size:
                            raise TeleMessageError(f"{export.name}: more bytes than the "
                                                   f"listed size {export.size}")
                        yield chunk
                        attempt = 0
            except (httpx.TransportError, _Retryable) as exc:
                attempt += 1
                if attempt >= self._max_attempts:
                    raise TeleMessageError(f"download of {export.name} failed after "
                                           f"{attempt} attempts: {exc}") from exc
                time.sleep(backoff_seconds(attempt, self._backoff_base, 30.0, self._rng))

    def _stream(self, path: str,
                headers: dict[str, str]) -> AbstractContextManager[httpx.Response]:
        return self._http.stream("GET", path, headers={**headers, **self._auth()})

    def _auth(self) -> dict[str, str]:
        if self._token is None:
            self.login()
        return {"Authorization": f"Bearer {self._token}"}

    def _send(self, method: str, path: str, *, authenticated: bool = True,
              **kwargs: object) -> httpx.Response:
        """Retries 5xx, 429 and transport errors with capped exponential back-off + jitter;
        logs in again once on 401."""
        relogged = False
        for attempt in range(1, self._max_attempts + 1):
            headers = self._auth() if authenticated else {}
            try:
                response = self._http.request(method, path, headers=headers,
                                              **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError as exc:
                if attempt == self._max_attempts:
                    raise TeleMessageError(f"TeleMessage unreachable: {type(exc).__name__}: "
                                           f"{exc}") from exc
            else:
                if response.status_code == 401 and authenticated and not relogged:
                    relogged = True
                    self.login()
                    continue
                if response.status_code < 500 and response.status_code != 429:
                    return response
                if attempt == self._max_attempts:
                    return response
            time.sleep(backoff_seconds(attempt, self._backoff_base, 30.0, self._rng))
        raise TeleMessageError("unreachable")


def _raise_for(response: httpx.Response, action: str) -> None:
    if response.status_code >= 500 or response.status_code == 429:
        raise _Retryable(f"{action}: HTTP {response.status_code}")
    if response.status_code >= 400:
        # The body is the vendor's to write (it may echo what we sent, or name users): it goes
        # into logs and the state table, so only redacted, and redacted before it is cut.
        raise TeleMessageError(f"{action}: HTTP {response.status_code} "
                               f"{redact(response.text[:4000])[:200]}")


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
