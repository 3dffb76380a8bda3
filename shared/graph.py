"""Microsoft Graph, as the connector uses it: msgraph-sdk for the directory, folders and
look-ups; plain JSON over aiohttp for the per-item writes (create message, add attachment,
upload session), with the same token provider; httpx for the upload ranges. msgraph's models
and kiota's middleware chain were ~35-40% of the import's CPU per item (docs/BENCHMARKS.md).

Every mailbox call passes through the MailboxGate (back-pressure) and comes back either with a
result or as a GraphError saying whether the failure is throttling, transient, unknown (the
write may have happened) or permanent. Callers never see SDK exception types.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import AccessTokenProvider
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from msgraph import GraphServiceClient
from msgraph.generated.models.mail_folder import MailFolder
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.mail_folders.item.child_folders.child_folders_request_builder import (  # noqa: E501
    ChildFoldersRequestBuilder,
)
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import (
    MessagesRequestBuilder,
)
from msgraph.generated.users.item.messages.item.attachments.attachments_request_builder import (
    AttachmentsRequestBuilder,
)
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

from shared.telemetry import digest, event, graph_latency, graph_throttle_wait, graph_throttled
from shared.throttle import MailboxGate, backoff_seconds

log = logging.getLogger(__name__)

T = TypeVar("T")

# The named property that tags every item we write with its archive key (idempotency).
ARCHIVE_PROPERTY_SET = "{541bbd6f-e9a4-4003-a777-0a9eeced438d}"
ARCHIVE_KEY_PROPERTY = f"String {ARCHIVE_PROPERTY_SET} Name ArchiveKey"

# Connections for the writes (4 requests per mailbox for ~32 mailboxes at once).
GRAPH_WRITE_CONNECTIONS = 128

UPLOAD_CHUNK_BYTES = 10 * 320 * 1024  # 3.125 MiB: a multiple of 320 KiB, under Outlook's 4 MB


class Failure(StrEnum):
    THROTTLED = "throttled"  # 429: not done; retry after Retry-After
    TRANSIENT = "transient"  # 5xx before any write, or a read that failed
    UNKNOWN = "unknown"  # a write whose result we did not see (timeout, reset, 5xx)
    NOT_FOUND = "not_found"
    NO_MAILBOX = "no_mailbox"
    REJECTED = "rejected"  # permanent 4xx: the request itself is wrong


class GraphError(Exception):
    def __init__(self, failure: Failure, status: int | None, code: str, message: str,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{failure.value}: {status} {code} {message}".strip())
        self.failure = failure
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def classify(exc: BaseException, *, write: bool) -> GraphError:
    if isinstance(exc, GraphError):
        return exc
    if isinstance(exc, APIError):
        status = exc.response_status_code
        code, message = "", str(exc.message or "")
        if isinstance(exc, ODataError) and exc.error is not None:
            code, message = exc.error.code or "", exc.error.message or message
        headers = {k.lower(): v for k, v in (exc.response_headers or {}).items()}
        retry_after = _retry_after(headers.get("retry-after"))
        if status == 429:
            return GraphError(Failure.THROTTLED, status, code, message, retry_after or 1.0)
        if code in ("MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI"):
            return GraphError(Failure.NO_MAILBOX, status, code, message)
        if status == 404:
            return GraphError(Failure.NOT_FOUND, status, code, message)
        if status is not None and (status >= 500 or status == 408):
            kind = Failure.UNKNOWN if write else Failure.TRANSIENT
            return GraphError(kind, status, code, message, retry_after)
        return GraphError(Failure.REJECTED, status, code, message)
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError | aiohttp.ClientError
                  | asyncio.TimeoutError):
        kind = Failure.UNKNOWN if write else Failure.TRANSIENT
        return GraphError(kind, None, type(exc).__name__, str(exc))
    raise exc


def _retry_after(value: Any) -> float | None:
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class DirectoryUser:
    id: str
    user_principal_name: str
    mail: str | None
    display_name: str | None


@dataclass(frozen=True)
class ExistingAttachment:
    name: str
    size: int


class GraphApi:
    """POSTs of JSON to Graph with a bearer token from the token provider, which gives a
    token only for Graph's own host. No tracing middleware: a span would carry the URL.

    Over aiohttp, not httpx: per request httpx cost ~0.7 ms of CPU (its connection pool scans
    every connection on every request and response) where aiohttp costs ~0.14 ms, and these
    writes are most of the connector's requests (docs/BENCHMARKS.md). The session belongs to
    the event loop it was made on, so one is made per loop, on first use."""

    def __init__(self, base_url: str, tokens: AccessTokenProvider,
                 connections: int = GRAPH_WRITE_CONNECTIONS, timeout: float = 100.0,
                 connect_timeout: float = 15.0) -> None:
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._tokens = tokens
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closer: AsyncIterator[None] | None = None

    async def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            # trust_env off: looking proxies up in the environment on every request cost ~10%
            # of the import rate (docs/BENCHMARKS.md); Functions apps reach Graph directly.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=self._timeout, trust_env=False)
            self._loop = loop
            # Closed with the loop: asyncio.run() finishes every started async generator (the
            # loop only holds it weakly; dropped, it would close the session at once).
            self._closer = _closed_at_shutdown(self._session)
            await anext(self._closer)
        return self._session

    async def post(self, path: str, body: bytes) -> dict[str, Any]:
        """POSTs a JSON body (serialized by the caller before it takes a mailbox slot, which
        is held only for the exchange); the answer's JSON, or a GraphError (5xx and timeouts
        as UNKNOWN)."""
        token = await self._tokens.get_authorization_token(self._base_url)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        http = await self._http()
        async with http.post(self._base_url + path, data=body, headers=headers) as response:
            payload = await response.read()
            status = response.status
            retry_after = response.headers.get("Retry-After")
        if status in (200, 201):
            try:
                answer = json.loads(payload)
            except ValueError:
                answer = None
            return answer if isinstance(answer, dict) else {}
        raise _http_error(status, retry_after, payload.decode("utf-8", "replace"))


async def _closed_at_shutdown(session: aiohttp.ClientSession) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await session.close()


class GraphMailboxes:
    """The Graph operations the connector needs, each scoped to a mailbox and gated."""

    def __init__(self, client: GraphServiceClient, api: GraphApi, upload_http: httpx.AsyncClient,
                 gate: MailboxGate, max_attempts: int = 6, backoff_base: float = 0.5) -> None:
        self._client = client
        self._api = api
        self._upload_http = upload_http  # no auth: upload URLs are pre-authenticated
        self._gate = gate
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base

    async def _call(self, mailbox: str | None, op: Callable[[], Awaitable[T]], *,
                    write: bool = False) -> T:
        """Runs `op` under the mailbox gate, retrying throttling and (for reads) transient
        failures. A write whose outcome is unknown is raised at once: the caller must look for
        it before writing again."""
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                if mailbox is None:
                    return await op()
                async with self._gate.slot(mailbox):
                    started = time.monotonic()
                    return await op()
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised if unknown
                error = classify(exc, write=write)
            finally:
                graph_latency.record((time.monotonic() - started) * 1000, {"write": write})
            attempt += 1
            if attempt >= self._max_attempts or error.failure not in (Failure.THROTTLED,
                                                                       Failure.TRANSIENT):
                raise error
            if error.failure is Failure.THROTTLED:
                wait = error.retry_after or backoff_seconds(attempt, self._backoff_base)
                graph_throttled.add(1)
                graph_throttle_wait.record(wait)
                event(log, "graph throttled", logging.WARNING, mailbox=digest(mailbox or ""),
                      retry_after=wait, code=error.code)
                if mailbox is not None:
                    self._gate.pause(mailbox, wait)
                else:
                    await asyncio.sleep(wait)
            else:
                await asyncio.sleep(error.retry_after or backoff_seconds(attempt,
                                                                         self._backoff_base))

    async def get_user(self, user: str) -> DirectoryUser | None:
        query = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
            select=["id", "userPrincipalName", "mail", "displayName"])
        config = RequestConfiguration(query_parameters=query)
        try:
            found = await self._call(None, lambda: self._client.users.by_user_id(user).get(
                request_configuration=config))
        except GraphError as error:
            if error.failure is Failure.NOT_FOUND:
                return None
            raise
        if found is None or not found.id:
            return None
        return DirectoryUser(found.id, found.user_principal_name or user, found.mail,
                             found.display_name)

    async def find_folder(self, mailbox: str, name: str) -> str | None:
        escaped = name.replace("'", "''")
        query = ChildFoldersRequestBuilder.ChildFoldersRequestBuilderGetQueryParameters(
            filter=f"displayName eq '{escaped}'", include_hidden_folders="true",
            select=["id", "displayName"])
        config = RequestConfiguration(query_parameters=query)
        page = await self._call(mailbox, lambda: self._folders(mailbox).get(
            request_configuration=config))
        for folder in (page.value if page and page.value else []):
            if folder.display_name and folder.display_name.lower() == name.lower():
                return folder.id
        return None

    async def create_folder(self, mailbox: str, name: str) -> str | None:
        """Creates the folder; None when it may already exist (a concurrent create won)."""
        body = MailFolder(display_name=name, is_hidden=False)
        try:
            created = await self._call(mailbox, lambda: self._folders(mailbox).post(body),
                                       write=True)
        except GraphError as error:
            # ErrorFolderExists comes as 400 or 409 depending on the path; an unknown outcome
            # may have created it. Either way the caller looks the folder up again.
            if error.code == "ErrorFolderExists" or error.failure is Failure.UNKNOWN:
                return None
            raise
        return created.id if created else None

    def _folders(self, mailbox: str) -> ChildFoldersRequestBuilder:
        return (self._client.users.by_user_id(mailbox).mail_folders
                .by_mail_folder_id("msgfolderroot").child_folders)

    async def find_message(self, mailbox: str, folder_id: str, archive_key: str) -> str | None:
        escaped = archive_key.replace("'", "''")
        query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
            filter=(f"singleValueExtendedProperties/Any(ep: ep/id eq '{ARCHIVE_KEY_PROPERTY}' "
                    f"and ep/value eq '{escaped}')"),
            select=["id"], top=2)
        config = RequestConfiguration(query_parameters=query)
        page = await self._call(mailbox, lambda: self._client.users.by_user_id(mailbox)
                                .mail_folders.by_mail_folder_id(folder_id).messages.get(
                                    request_configuration=config))
        found = [m.id for m in (page.value if page and page.value else []) if m.id]
        return found[0] if found else None

    async def archived_keys(self, mailbox: str, folder_id: str, page_size: int = 250
                            ) -> AsyncIterator[list[tuple[str, str]]]:
        """Every message of the folder as (archive key, message id), a page at a time: only
        the id and the one named property are asked for, and each page goes through the
        mailbox's gate (a message without the property is not ours and is skipped)."""
        query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
            select=["id"], top=page_size,
            expand=[f"singleValueExtendedProperties($filter=id eq '{ARCHIVE_KEY_PROPERTY}')"])
        builder = (self._client.users.by_user_id(mailbox).mail_folders
                   .by_mail_folder_id(folder_id).messages)
        request = builder.to_get_request_information(RequestConfiguration(
            query_parameters=query))
        while True:
            async def send(request: RequestInformation = request) -> bytes:
                raw: object = await self._client.request_adapter.send_primitive_async(  # type: ignore[func-returns-value]
                    request, "bytes", {"XXX": ODataError})
                return raw if isinstance(raw, bytes) else b""

            page = json.loads(await self._call(mailbox, send) or b"{}")
            found = []
            for message in page.get("value") or []:
                for prop in message.get("singleValueExtendedProperties") or []:
                    if str(prop.get("id", "")).lower() == ARCHIVE_KEY_PROPERTY.lower() \
                            and prop.get("value") and message.get("id"):
                        found.append((str(prop["value"]), str(message["id"])))
            yield found
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return
            request = builder.with_url(next_link).to_get_request_information()

    async def create_message(self, mailbox: str, folder_id: str,
                             message: dict[str, Any]) -> str:
        path = f"users/{quote(mailbox)}/mailFolders/{quote(folder_id)}/messages"
        body = json.dumps(message).encode()
        answer = await self._call(mailbox, lambda: self._api.post(path, body),
                                  write=True)
        message_id = answer.get("id")
        if not message_id:
            raise GraphError(Failure.UNKNOWN, None, "NoId", "create returned no message id")
        return str(message_id)

    async def list_attachments(self, mailbox: str, message_id: str) -> list[ExistingAttachment]:
        query = AttachmentsRequestBuilder.AttachmentsRequestBuilderGetQueryParameters(
            select=["name", "size"])
        config = RequestConfiguration(query_parameters=query)
        page = await self._call(mailbox, lambda: self._attachments(mailbox, message_id).get(
            request_configuration=config))
        return [ExistingAttachment(a.name or "", int(a.size or 0))
                for a in (page.value if page and page.value else [])]

    async def add_attachment(self, mailbox: str, message_id: str, name: str,
                             content_type: str, data: bytes) -> None:
        body = json.dumps(file_attachment(name, content_type, data)).encode()
        path = self._attachments_path(mailbox, message_id)
        await self._call(mailbox, lambda: self._api.post(path, body), write=True)

    async def upload_attachment(self, mailbox: str, message_id: str, name: str,
                                content_type: str, data: bytes) -> None:
        """An upload session for an attachment over 3 MB: PUT ranges to the returned URL,
        which is pre-authenticated and on another host, so it never gets our token."""
        body = json.dumps({"AttachmentItem": {"attachmentType": "file", "name": name,
                                               "size": len(data), "contentType": content_type}}
                          ).encode()
        path = f"{self._attachments_path(mailbox, message_id)}/createUploadSession"
        session = await self._call(mailbox, lambda: self._api.post(path, body), write=True)
        url = session.get("uploadUrl")
        if not url:
            raise GraphError(Failure.UNKNOWN, None, "NoUploadUrl", "no upload URL returned")
        offset = 0
        while offset < len(data):
            chunk = data[offset: offset + UPLOAD_CHUNK_BYTES]
            end = offset + len(chunk) - 1
            headers = {"Content-Range": f"bytes {offset}-{end}/{len(data)}",
                       "Content-Type": "application/octet-stream"}
            response = await self._call(mailbox, functools.partial(self._put, url, chunk,
                                                                   headers), write=True)
            if response.status_code == 201:
                return
            offset = _next_offset(response, default=end + 1)
        raise GraphError(Failure.UNKNOWN, None, "UploadIncomplete", "no 201 after last range")

    async def _put(self, url: str, chunk: bytes, headers: dict[str, str]) -> httpx.Response:
        response = await self._upload_http.put(url, content=chunk, headers=headers)
        if response.status_code in (200, 201, 202):
            return response
        raise _http_error(response.status_code, response.headers.get("retry-after"),
                          response.text)

    @staticmethod
    def _attachments_path(mailbox: str, message_id: str) -> str:
        return f"users/{quote(mailbox)}/messages/{quote(message_id)}/attachments"

    def _attachments(self, mailbox: str, message_id: str) -> AttachmentsRequestBuilder:
        return (self._client.users.by_user_id(mailbox).messages.by_message_id(message_id)
                .attachments)


def _next_offset(response: httpx.Response, default: int) -> int:
    try:
        ranges = response.json().get("nextExpectedRanges") or []
    except ValueError:
        return default
    if not ranges:
        return default
    return int(str(ranges[0]).split("-", 1)[0])


def file_attachment(name: str, content_type: str, data: bytes) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.fileAttachment", "name": name,
            "contentType": content_type, "contentBytes": base64.b64encode(data).decode("ascii")}


def _http_error(status: int, retry_after_header: str | None, text: str) -> GraphError:
    """A write's failure, classified as `classify` does msgraph's (writes only)."""
    code, message = "", text[:200]
    try:
        error = json.loads(text).get("error", {})
        code, message = error.get("code", ""), error.get("message", message)
    except (ValueError, AttributeError):
        pass
    retry_after = _retry_after(retry_after_header)
    if status == 429:
        return GraphError(Failure.THROTTLED, status, code, message, retry_after or 1.0)
    if code in ("MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI"):
        return GraphError(Failure.NO_MAILBOX, status, code, message)
    if status == 404:
        return GraphError(Failure.NOT_FOUND, status, code, message)
    if status >= 500 or status == 408:
        return GraphError(Failure.UNKNOWN, status, code, message, retry_after)
    return GraphError(Failure.REJECTED, status, code, message)

