"""The simulated service: routing, the request pipeline and the endpoint handlers.

Framework-independent: it takes a `SimRequest` and returns a `SimResponse` (app.py adapts
aiohttp to it, and `$batch` feeds its inner requests back through the same pipeline).

Pipeline for the Graph listener: bearer token (401), request size (413), route, then for mail
endpoints: user and mailbox checks (404), mailbox admission (429), latency, injected faults, the
handler. The upload listener serves the pre-authenticated upload URLs of upload sessions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import mimetypes
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import quote, unquote, urlencode

from multidict import CIMultiDict, MultiDict
from yarl import URL

from .errors import GraphError, bad_request, item_not_found
from .faults import Fault, FaultInjector, FaultPlan
from .messages import (
    COMPUTED_KEYS,
    FILE_ATTACHMENT,
    attachment_json,
    build_attachment,
    create_message,
    extended_value,
    message_json,
    update_message,
)
from .odata import (
    ExtendedPropertyMatch,
    Logical,
    Node,
    QueryOptions,
    matches,
    order,
    parse_query,
)
from .schema import Validator
from .state import (
    Attachment,
    Directory,
    Folder,
    IdFactory,
    Mailbox,
    Message,
    SimUser,
    UploadSession,
)
from .throttle import MailboxThrottle

MAX_BODY = 4 * 1024 * 1024
MAX_CHUNK = 4 * 1024 * 1024  # an upload chunk must be smaller than this
MIN_UPLOAD = 3 * 1024 * 1024
MAX_UPLOAD = 150 * 1024 * 1024
MAX_BATCH = 20
DEFAULT_PAGE = 10
SESSION_LIFETIME = timedelta(hours=1)
JSON_TYPE = ("application/json;odata.metadata=minimal;odata.streaming=true;"
             "IEEE754Compatible=false;charset=utf-8")
MESSAGE = "microsoft.graph.message"
MAIL_FOLDER = "microsoft.graph.mailFolder"
ATTACHMENT = "microsoft.graph.attachment"
USER = "microsoft.graph.user"
_WRITE_METHODS = ("POST", "PATCH", "PUT")
_CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_UPLOAD_PATH_RE = re.compile(
    r"^/api/v2\.0/Users\('(?P<user>[^'@]+)@[^']*'\)/Messages\('(?P<message>[^']+)'\)"
    r"/AttachmentSessions\('(?P<session>[^']+)'\)$")


@dataclass
class SimRequest:
    """One HTTP request as the service sees it. `path` is the raw (percent-encoded) path;
    `target` is the request target as received (path and query)."""

    method: str
    path: str
    target: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    origin: str
    host_port: str


@dataclass
class SimResponse:
    status: int
    json: Any = None
    raw: bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestRecord:
    """One request as received: `path` includes the query string; `host_port` is the address of
    the listener that received it; `mailbox` is the user id the request counted against."""

    method: str
    path: str
    host_port: str
    authorization: str | None
    status: int
    mailbox: str | None
    started: float
    ended: float


@dataclass
class _Context:
    request_id: str
    client_request_id: str
    mailbox: str | None = None


Handler = Callable[..., SimResponse]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: str
    scope: str  # "mail", "user", "batch" or "me"


def _routes() -> list[_Route]:
    """The route table; mail patterns are relative to `/users/{user}`."""
    user = r"/users/(?P<user>[^/]+)"
    folder = r"/mailFolders/(?P<folder>[^/]+)(?:/childFolders/(?P<child>[^/]+))*"
    message = rf"(?:{folder})?/messages/(?P<message>[^/]+)"
    attachments = rf"{message}/attachments"
    attachment = rf"{attachments}/(?P<attachment>[^/]+)"
    mail = [
        ("GET", "/mailFolders", "list_folders"),
        ("POST", "/mailFolders", "create_folder"),
        ("GET", folder, "get_folder"),
        ("DELETE", folder, "delete_folder"),
        ("GET", rf"{folder}/childFolders", "list_folders"),
        ("POST", rf"{folder}/childFolders", "create_folder"),
        ("GET", rf"{folder}/messages", "list_messages"),
        ("POST", rf"{folder}/messages", "post_message"),
        ("GET", "/messages", "list_messages"),
        ("POST", "/messages", "post_message"),
        ("GET", message, "get_message"),
        ("PATCH", message, "patch_message"),
        ("DELETE", message, "delete_message"),
        ("POST", rf"{attachments}/(?:microsoft\.graph\.)?createUploadSession",
         "create_upload_session"),
        ("GET", attachments, "list_attachments"),
        ("POST", attachments, "post_attachment"),
        ("GET", rf"{attachment}/(?:\$|%24)value", "get_attachment_value"),
        ("GET", attachment, "get_attachment"),
        ("DELETE", attachment, "delete_attachment"),
    ]
    routes = [_Route(method, re.compile(f"^{user}{pattern}$"), handler, "mail")
              for method, pattern, handler in mail]
    routes += [
        _Route("GET", re.compile(f"^{user}$"), "get_user", "user"),
        _Route("POST", re.compile(r"^/(?:\$|%24)batch$"), "batch", "batch"),
        _Route("*", re.compile(r"^/me(?:/.*)?$"), "", "me"),
    ]
    return routes


_ROUTES = _routes()


def _now() -> datetime:
    return datetime.now(UTC)


def _iso7(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _too_large() -> GraphError:
    return GraphError(413, "BadRequest", "The maximum request length supported is 4MB.")


def _indexed_match(node: Node | None) -> ExtendedPropertyMatch | None:
    """A stored-property condition every match of the filter must meet, if there is one."""
    if isinstance(node, ExtendedPropertyMatch) and node.key not in COMPUTED_KEYS:
        return node
    if isinstance(node, Logical) and node.op == "and":
        return _indexed_match(node.left) or _indexed_match(node.right)
    return None


def _select(entity: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    """The entity limited to `$select` (Graph always keeps the id and annotations)."""
    if select is None:
        return entity
    return {k: v for k, v in entity.items() if k == "id" or k in select or k.startswith("@")}


class GraphService:
    """State, limits and handlers of one simulated tenant."""

    def __init__(self, users: list[SimUser], token: str, latency: float, faults: FaultPlan,
                 seed: int, upload_origin: str) -> None:
        self.ids = IdFactory(seed)
        self.directory = Directory(self.ids, self.ids.guid())
        for user in users:
            self.directory.add(user)
        self.token = token
        self.latency = latency
        self.faults = FaultInjector(faults, seed)
        self.throttle = MailboxThrottle()
        self.validator = Validator()
        self.upload_origin = upload_origin
        self.log: list[RequestRecord] = []
        self.counters: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self._seq = 0

    # ---- pipeline -------------------------------------------------------------------------

    async def handle(self, req: SimRequest, inner: bool = False) -> SimResponse:
        """Serve one request to the Graph listener (or one request inside a `$batch`)."""
        started = time.time()
        ctx = self._context(req)
        try:
            if not inner:
                self._authenticate(req)
                if len(req.body) > MAX_BODY:
                    raise _too_large()
            response = await self._route(req, ctx, inner)
        except GraphError as error:
            response = self._error(error, ctx, inner_error=True)
        return self._finish(req, response, ctx, started)

    async def handle_upload(self, req: SimRequest) -> SimResponse:
        """Serve one request to the upload listener (the pre-authenticated upload URLs)."""
        started = time.time()
        ctx = self._context(req)
        try:
            response = await self._upload(req, ctx)
        except GraphError as error:
            response = self._error(error, ctx, inner_error=False)
        return self._finish(req, response, ctx, started)

    @staticmethod
    def _context(req: SimRequest) -> _Context:
        request_id = str(uuid.uuid4())
        return _Context(request_id, req.headers.get("client-request-id") or request_id)

    def _finish(self, req: SimRequest, response: SimResponse, ctx: _Context,
                started: float) -> SimResponse:
        response.headers.setdefault("request-id", ctx.request_id)
        response.headers.setdefault("client-request-id", ctx.client_request_id)
        self.log.append(RequestRecord(
            req.method, req.target, req.host_port,
            req.headers.get("Authorization"), response.status, ctx.mailbox, started, time.time()))
        self.by_status[response.status] += 1
        return response

    @staticmethod
    def _error(error: GraphError, ctx: _Context, inner_error: bool) -> SimResponse:
        detail: dict[str, Any] = {"code": error.code, "message": error.message}
        if inner_error:
            detail["innerError"] = {"date": _now().strftime("%Y-%m-%dT%H:%M:%S"),
                                    "request-id": ctx.request_id,
                                    "client-request-id": ctx.client_request_id}
        return SimResponse(error.status, json={"error": detail, **error.extra},
                           headers=dict(error.headers))

    def _authenticate(self, req: SimRequest) -> None:
        header = req.headers.get("Authorization")
        scheme, _, token = (header or "").partition(" ")
        if not header or scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.",
                             headers={"WWW-Authenticate": 'Bearer realm=""'})
        if token.strip() != self.token:
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token validation failure. Invalid audience.",
                             headers={"WWW-Authenticate": 'Bearer realm=""'})

    async def _route(self, req: SimRequest, ctx: _Context, inner: bool) -> SimResponse:
        version, _, rest = req.path.lstrip("/").partition("/")
        if version != "v1.0":
            raise bad_request("BadRequest", f"Invalid version: {unquote(version)}")
        path = "/" + rest
        path_matched = False
        for route in _ROUTES:
            match = route.pattern.match(path)
            if match is None:
                continue
            path_matched = True
            if route.method not in ("*", req.method):
                continue
            groups = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            return await self._run(route, req, groups, ctx, inner)
        if path_matched:
            raise GraphError(405, "BadRequest",
                             f"The HTTP method '{req.method}' is not allowed on this resource.")
        segment = unquote(path.rstrip("/").rsplit("/", 1)[-1])
        raise bad_request("BadRequest", f"Resource not found for the segment '{segment}'.")

    async def _run(self, route: _Route, req: SimRequest, groups: dict[str, str], ctx: _Context,
                   inner: bool) -> SimResponse:
        if route.scope == "me":
            raise bad_request("BadRequest",
                              "/me request is only valid with delegated authentication flow.")
        if route.scope == "batch":
            if inner:
                raise bad_request("BadRequest", "A $batch request cannot contain $batch.")
            return await self.batch(req)
        handler: Handler = getattr(self, route.handler)
        if route.scope == "user":
            await self._delay()
            return handler(req, groups)
        user = self._mail_user(groups["user"])
        ctx.mailbox = user.id
        mailbox = self.directory.mailboxes[user.id]
        return await self._admitted(user.id, req, partial(handler, req, groups, mailbox))

    async def _delay(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)

    async def _admitted(self, mailbox_id: str, req: SimRequest,
                        work: Callable[[], SimResponse]) -> SimResponse:
        """Run `work` as one request counted against the mailbox's limits."""
        upload = len(req.body) if req.method in _WRITE_METHODS else 0
        try:
            self.throttle.enter(mailbox_id, upload, self.faults.plan.retry_after_seconds)
        except GraphError:
            self.counters["throttled"] += 1
            raise
        try:
            await self._delay()
            fault = self.faults.draw(req.method)
            if fault in (Fault.THROTTLE, Fault.UNAVAILABLE):
                self.counters[f"fault_{fault.value}"] += 1
                raise self.faults.error(fault)
            response = work()
            if fault is Fault.TIMEOUT_AFTER_WRITE and response.status < 400:
                self.counters[f"fault_{fault.value}"] += 1
                raise self.faults.error(fault)
            return response
        finally:
            self.throttle.leave(mailbox_id)

    def _mail_user(self, ref: str) -> SimUser:
        user = self.directory.find(ref)
        if user is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{ref}' is invalid.")
        if not user.mailbox_enabled:
            raise GraphError(404, "MailboxNotEnabledForRESTAPI",
                             "The mailbox is either inactive, soft-deleted, or is hosted "
                             "on-premise.")
        return user

    @staticmethod
    def _json_body(req: SimRequest) -> Any:
        if not req.body.strip():
            raise bad_request("BadRequest", "Empty Payload. JSON content expected.")
        content_type = req.headers.get("Content-Type", "")
        if "json" not in content_type.lower():
            raise GraphError(415, "UnsupportedMediaType",
                             f"Content-Type '{content_type}' is not supported here; the simulator "
                             "reads only application/json bodies (MIME content is not "
                             "simulated).")
        try:
            return json.loads(req.body)
        except (ValueError, UnicodeDecodeError):
            raise bad_request("BadRequest",
                              "Unable to read JSON request payload. Please ensure Content-Type "
                              "header is set and payload is of valid JSON format.") from None

    @staticmethod
    def _base(req: SimRequest) -> str:
        return f"{req.origin}/v1.0"

    def _context_url(self, req: SimRequest, mailbox: Mailbox, suffix: str) -> str:
        """An `@odata.context` under the user, e.g. suffix `messages/$entity`."""
        return f"{self._base(req)}/$metadata#users('{quote(mailbox.user.id)}')/{suffix}"

    def _page(self, req: SimRequest, items: list[Any], options: QueryOptions, context: str,
              render: Callable[[Any], dict[str, Any]]) -> SimResponse:
        top = DEFAULT_PAGE if options.top is None else options.top
        window = items[options.skip:options.skip + top]
        body: dict[str, Any] = {"@odata.context": context}
        if options.count:
            body["@odata.count"] = len(items)
        body["value"] = [render(item) for item in window]
        if top and options.skip + top < len(items):
            query = dict(req.query)
            query["$skip"] = str(options.skip + top)
            body["@odata.nextLink"] = (f"{req.origin}{req.path}?"
                                       f"{urlencode(query, quote_via=quote)}")
        return SimResponse(200, json=body)

    # ---- users ----------------------------------------------------------------------------

    def get_user(self, req: SimRequest, groups: dict[str, str]) -> SimResponse:
        ref = groups["user"]
        user = self.directory.find(ref)
        if user is None:
            raise GraphError(404, "Request_ResourceNotFound",
                             f"Resource '{ref}' does not exist or one of its queried "
                             "reference-property objects are not present.")
        entity: dict[str, Any] = {
            "businessPhones": [], "displayName": user.display_name or None, "givenName": None,
            "jobTitle": None, "mail": user.mail, "mobilePhone": None, "officeLocation": None,
            "preferredLanguage": None, "surname": None,
            "userPrincipalName": user.user_principal_name, "id": user.id,
        }
        context = f"{self._base(req)}/$metadata#users/$entity"
        select_text = next((v for k, v in req.query.items() if k.lower() == "$select"), None)
        if select_text is not None:
            names = []
            for name in (n.strip() for n in select_text.split(",") if n.strip()):
                prop = self.validator.model.lookup(USER, name)
                if prop is None:
                    raise bad_request("BadRequest",
                                      "Parsing OData Select and Expand failed: Could not find a "
                                      f"property named '{name}' on type '{USER}'.")
                names.append(prop.name)
            entity = {name: entity.get(name) for name in names}
            context = f"{self._base(req)}/$metadata#users({','.join(names)})/$entity"
        return SimResponse(200, json={"@odata.context": context, **entity})

    # ---- folders --------------------------------------------------------------------------

    @staticmethod
    def _folder(groups: dict[str, str], mailbox: Mailbox) -> Folder:
        return mailbox.folder(groups.get("child") or groups.get("folder") or "msgfolderroot")

    @staticmethod
    def folder_json(folder: Folder, mailbox: Mailbox) -> dict[str, Any]:
        messages = mailbox.in_folder(folder.id)
        return {
            "id": folder.id,
            "displayName": folder.display_name,
            "parentFolderId": folder.parent_id,
            "childFolderCount": len(mailbox.children(folder.id)),
            "unreadItemCount": sum(1 for m in messages if not m.is_read),
            "totalItemCount": len(messages),
            "isHidden": folder.is_hidden,
        }

    def list_folders(self, req: SimRequest, groups: dict[str, str],
                     mailbox: Mailbox) -> SimResponse:
        parent = self._folder(groups, mailbox)
        options = parse_query(req.query, self.validator.model, MAIL_FOLDER)
        hidden = req.query.get("includeHiddenFolders", "").lower() == "true"
        items = [self.folder_json(f, mailbox) for f in mailbox.children(parent.id)
                 if hidden or not f.is_hidden]
        if options.filter is not None:
            node = options.filter
            items = [f for f in items if matches(node, f, lambda key: None)]
        items = order(items, options.orderby, lambda f: f)
        context = self._context_url(req, mailbox, "mailFolders" + (
            f"('{parent.id}')/childFolders" if "folder" in groups else ""))
        return self._page(req, items, options, context,
                          lambda f: _select(f, options.select))

    def get_folder(self, req: SimRequest, groups: dict[str, str],
                   mailbox: Mailbox) -> SimResponse:
        folder = self._folder(groups, mailbox)
        options = parse_query(req.query, self.validator.model, MAIL_FOLDER)
        context = self._context_url(req, mailbox, "mailFolders/$entity")
        return SimResponse(200, json={"@odata.context": context,
                                      **_select(self.folder_json(folder, mailbox), options.select)})

    def delete_folder(self, req: SimRequest, groups: dict[str, str],
                      mailbox: Mailbox) -> SimResponse:
        """Moves the folder under Deleted Items; from there it leaves the mailbox."""
        folder = self._folder(groups, mailbox)
        if folder.well_known:
            raise bad_request("ErrorDeleteDistinguishedFolder",
                              "Distinguished folders cannot be deleted.")
        deleted = mailbox.folder("deleteditems")
        if mailbox.within(folder.id, deleted.id):
            mailbox.remove_folder(folder)
        else:
            folder.parent_id = deleted.id
        return SimResponse(204)

    def create_folder(self, req: SimRequest, groups: dict[str, str],
                      mailbox: Mailbox) -> SimResponse:
        parent = self._folder(groups, mailbox)
        data = self.validator.instance(self._json_body(req), MAIL_FOLDER)
        name = data.get("displayName")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("ErrorInvalidParameter", "The folder display name is missing.")
        folder = mailbox.create_folder(parent, name, bool(data.get("isHidden")))
        self.counters["folders_created"] += 1
        context = self._context_url(req, mailbox, "mailFolders/$entity")
        return SimResponse(201, json={"@odata.context": context,
                                      **self.folder_json(folder, mailbox)})

    # ---- messages -------------------------------------------------------------------------

    def _message_options(self, req: SimRequest) -> QueryOptions:
        return parse_query(req.query, self.validator.model, MESSAGE,
                           expandable=("attachments", "singleValueExtendedProperties"))

    def _render_message(self, message: Message, options: QueryOptions, req: SimRequest,
                        mailbox: Mailbox) -> dict[str, Any]:
        out = message_json(message, options.select)
        prefix = self._context_url(req, mailbox, f"messages('{quote(message.id, safe='')}')")
        if "attachments" in options.expand:
            out["attachments@odata.context"] = f"{prefix}/attachments"
            out["attachments"] = [attachment_json(a) for a in message.attachments]
        if "singleValueExtendedProperties" in options.expand:
            keys = options.expand["singleValueExtendedProperties"]
            if keys is None:
                props = [{"id": p.id, "value": extended_value(message, key)}
                         for key, p in message.extended.items()]
            else:
                props = []
                for text, key in keys:
                    value = extended_value(message, key)
                    if value is not None:
                        stored = message.extended.get(key)
                        props.append({"id": stored.id if stored else text, "value": value})
            if props:
                out["singleValueExtendedProperties@odata.context"] = (
                    f"{prefix}/singleValueExtendedProperties")
                out["singleValueExtendedProperties"] = props
        return out

    def list_messages(self, req: SimRequest, groups: dict[str, str],
                      mailbox: Mailbox) -> SimResponse:
        options = self._message_options(req)
        folder = self._folder(groups, mailbox) if "folder" in groups else None
        indexed = _indexed_match(options.filter)
        if indexed is not None:
            messages = mailbox.with_extended(indexed.key, indexed.value)
        else:
            messages = list(mailbox.messages.values())
        if folder is not None:
            messages = [m for m in messages if m.folder_id == folder.id]
            context = self._context_url(req, mailbox, f"mailFolders('{folder.id}')/messages")
        else:
            context = self._context_url(req, mailbox, "messages")
        node = options.filter
        if node is not None:
            messages = [m for m in messages
                        if matches(node, message_json(m), partial(extended_value, m))]
        if options.orderby:
            messages = order(messages, options.orderby, message_json)
        else:
            messages.sort(key=lambda m: (m.received, m.seq), reverse=True)
        return self._page(req, messages, options, context,
                          lambda m: self._render_message(m, options, req, mailbox))

    def post_message(self, req: SimRequest, groups: dict[str, str],
                     mailbox: Mailbox) -> SimResponse:
        folder = self._folder(groups, mailbox) if "folder" in groups else mailbox.folder("drafts")
        body = self.validator.instance(self._json_body(req), MESSAGE)
        self._seq += 1
        message = create_message(folder.id, self._seq, body, self.ids, _now())
        total = sum(a.size for a in message.attachments)
        if total > mailbox.user.max_message_bytes:
            raise bad_request("ErrorMessageSizeExceeded",
                              "The message exceeds the maximum supported size.")
        mailbox.store(message)
        self.counters["messages_created"] += 1
        self.counters["attachments_created"] += len(message.attachments)
        context = self._context_url(req, mailbox, "messages/$entity")
        return SimResponse(201, json={"@odata.context": context, **message_json(message)})

    def get_message(self, req: SimRequest, groups: dict[str, str],
                    mailbox: Mailbox) -> SimResponse:
        message = mailbox.message(groups["message"])
        options = self._message_options(req)
        context = self._context_url(req, mailbox, "messages/$entity")
        return SimResponse(200, json={"@odata.context": context,
                                      **self._render_message(message, options, req, mailbox)})

    def patch_message(self, req: SimRequest, groups: dict[str, str],
                      mailbox: Mailbox) -> SimResponse:
        message = mailbox.message(groups["message"])
        body = self.validator.instance(self._json_body(req), MESSAGE)
        mailbox.forget(message.id)
        try:
            update_message(message, body, _now())
        finally:
            mailbox.store(message)
        context = self._context_url(req, mailbox, "messages/$entity")
        return SimResponse(200, json={"@odata.context": context, **message_json(message)})

    def delete_message(self, req: SimRequest, groups: dict[str, str],
                       mailbox: Mailbox) -> SimResponse:
        """Moves the message to Deleted Items; from there it leaves the mailbox's views."""
        message = mailbox.message(groups["message"])
        deleted = mailbox.folder("deleteditems")
        if mailbox.within(message.folder_id, deleted.id):
            mailbox.forget(message.id)
        else:
            message.folder_id = deleted.id
        return SimResponse(204)

    # ---- attachments ----------------------------------------------------------------------

    @staticmethod
    def _attachment(message: Message, ref: str) -> Attachment:
        for attachment in message.attachments:
            if attachment.id == ref:
                return attachment
        raise item_not_found()

    def _attachments_context(self, req: SimRequest, mailbox: Mailbox, message: Message) -> str:
        return self._context_url(req, mailbox,
                                 f"messages('{quote(message.id, safe='')}')/attachments")

    def list_attachments(self, req: SimRequest, groups: dict[str, str],
                         mailbox: Mailbox) -> SimResponse:
        message = mailbox.message(groups["message"])
        options = parse_query(req.query, self.validator.model, ATTACHMENT)
        return self._page(req, list(message.attachments), options,
                          self._attachments_context(req, mailbox, message),
                          lambda a: _select(attachment_json(a), options.select))

    def get_attachment(self, req: SimRequest, groups: dict[str, str],
                       mailbox: Mailbox) -> SimResponse:
        message = mailbox.message(groups["message"])
        attachment = self._attachment(message, groups["attachment"])
        options = parse_query(req.query, self.validator.model, ATTACHMENT)
        context = f"{self._attachments_context(req, mailbox, message)}/$entity"
        return SimResponse(200, json={"@odata.context": context,
                                      **_select(attachment_json(attachment), options.select)})

    def get_attachment_value(self, req: SimRequest, groups: dict[str, str],
                             mailbox: Mailbox) -> SimResponse:
        message = mailbox.message(groups["message"])
        attachment = self._attachment(message, groups["attachment"])
        return SimResponse(200, raw=attachment.content,
                           content_type=attachment.content_type or "application/octet-stream")

    def post_attachment(self, req: SimRequest, groups: dict[str, str],
                        mailbox: Mailbox) -> SimResponse:
        message = mailbox.message(groups["message"])
        data = self.validator.instance(self._json_body(req), ATTACHMENT)
        attachment = build_attachment(data, self.ids, _now())
        if sum(a.size for a in message.attachments) + attachment.size > \
                mailbox.user.max_message_bytes:
            raise bad_request("ErrorMessageSizeExceeded",
                              "The message exceeds the maximum supported size.")
        message.attachments.append(attachment)
        self.counters["attachments_created"] += 1
        context = f"{self._attachments_context(req, mailbox, message)}/$entity"
        return SimResponse(201, json={"@odata.context": context, **attachment_json(attachment)})

    def delete_attachment(self, req: SimRequest, groups: dict[str, str],
                          mailbox: Mailbox) -> SimResponse:
        message = mailbox.message(groups["message"])
        message.attachments.remove(self._attachment(message, groups["attachment"]))
        return SimResponse(204)

    # ---- upload sessions ------------------------------------------------------------------

    def create_upload_session(self, req: SimRequest, groups: dict[str, str],
                              mailbox: Mailbox) -> SimResponse:
        message = mailbox.message(groups["message"])
        params = self.validator.parameters("createUploadSession", f"Collection({ATTACHMENT})",
                                           self._json_body(req))
        item = params["AttachmentItem"]
        if item.get("attachmentType") not in (None, "file"):
            raise bad_request("ErrorInvalidRequest",
                              "Upload sessions only accept attachmentType 'file'.")
        name, size = item.get("name"), item.get("size")
        if not name or size is None:
            raise bad_request("ErrorInvalidRequest",
                              "AttachmentItem needs a name and a size.")
        if size < MIN_UPLOAD:
            raise bad_request("ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                              "Attachment size must be greater than the minimum size.")
        existing = sum(a.size for a in message.attachments)
        if size > MAX_UPLOAD or existing + size > mailbox.user.max_message_bytes:
            raise bad_request("ErrorMessageSizeExceeded",
                              "The message exceeds the maximum supported size.")
        session = UploadSession(
            id=self.ids.item(43), token=self.ids.token(), user_id=mailbox.user.id,
            message_id=message.id, name=name, content_type=item.get("contentType"), size=size,
            is_inline=bool(item.get("isInline")), content_id=item.get("contentId"),
            expires=_now() + SESSION_LIFETIME)
        mailbox.sessions[session.id] = session
        self.counters["upload_sessions_created"] += 1
        upload_url = (f"{self._session_path(session)}/AttachmentSessions('{session.id}')"
                      f"?authtoken={session.token}")
        return SimResponse(201, json={
            "@odata.context": f"{self._base(req)}/$metadata#microsoft.graph.uploadSession",
            "uploadUrl": upload_url,
            "expirationDateTime": _iso7(session.expires),
            "nextExpectedRanges": ["0-"],
        })

    def _session_path(self, session: UploadSession) -> str:
        return (f"{self.upload_origin}/api/v2.0/Users('{session.user_id}@"
                f"{self.directory.tenant_id}')/Messages('{session.message_id}')")

    async def _upload(self, req: SimRequest, ctx: _Context) -> SimResponse:
        match = _UPLOAD_PATH_RE.match(unquote(req.path))
        if match is None:
            raise GraphError(404, "ResourceNotFound", "The resource could not be found.")
        if req.method not in ("PUT", "DELETE"):
            raise GraphError(405, "MethodNotAllowed",
                             f"The HTTP method '{req.method}' is not allowed here.")
        if "Authorization" in req.headers:
            raise GraphError(
                401, "InvalidAudienceForResource",
                "The audience claim value is invalid for current resource. The upload URL is "
                "pre-authenticated by its authtoken; send no Authorization header.")
        mailbox = self.directory.mailboxes.get(match["user"])
        session = mailbox.sessions.get(match["session"]) if mailbox else None
        if (mailbox is None or session is None or session.message_id != match["message"]
                or req.query.get("authtoken") != session.token or _now() > session.expires):
            raise item_not_found()
        ctx.mailbox = session.user_id
        if req.method == "DELETE":
            del mailbox.sessions[session.id]
            return SimResponse(204)
        if len(req.body) >= MAX_CHUNK:
            raise GraphError(413, "RequestEntityTooLarge",
                             "The uploaded range must be smaller than 4 MB.")
        return await self._admitted(session.user_id, req,
                                    partial(self._put_range, req, mailbox, session))

    def _put_range(self, req: SimRequest, mailbox: Mailbox,
                   session: UploadSession) -> SimResponse:
        match = _CONTENT_RANGE_RE.match(req.headers.get("Content-Range", "").strip())
        if match is None:
            raise bad_request("InvalidContentRange",
                              "The Content-Range header is missing or not 'bytes a-b/total'.")
        start, end, total = (int(g) for g in match.groups())
        if total != session.size or end < start or end >= total:
            raise bad_request("InvalidContentRange",
                              f"The range {start}-{end}/{total} does not fit the session size "
                              f"{session.size}.")
        if end - start + 1 != len(req.body):
            raise bad_request("InvalidContentRange",
                              f"The range {start}-{end} does not match the {len(req.body)} bytes "
                              "sent.")
        expected = len(session.data)
        if start != expected:
            raise GraphError(416, "InvalidRange",
                             f"The range must start at the next expected byte {expected}.",
                             extra={"nextExpectedRanges": [str(expected)]})
        if session.message_id not in mailbox.messages:
            raise item_not_found()
        session.data += req.body
        self.counters["uploaded_bytes"] += len(req.body)
        if len(session.data) < session.size:
            context = (f"{self.upload_origin}/api/v2.0/$metadata#Users('"
                       f"{quote(session.user_id + '@' + self.directory.tenant_id, safe='')}')/"
                       f"Messages('{quote(session.message_id, safe='')}')/"
                       "AttachmentSessions/$entity")
            return SimResponse(200, json={"@odata.context": context,
                                          "ExpirationDateTime": _iso7(session.expires),
                                          "nextExpectedRanges": [str(len(session.data))]})
        attachment = Attachment(
            self.ids.item(100), FILE_ATTACHMENT, session.name,
            session.content_type or mimetypes.guess_type(session.name)[0]
            or "application/octet-stream",
            session.is_inline, _now(), content=bytes(session.data), content_id=session.content_id)
        mailbox.messages[session.message_id].attachments.append(attachment)
        del mailbox.sessions[session.id]
        self.counters["attachments_created"] += 1
        return SimResponse(201, raw=b"", headers={
            "Location": f"{self._session_path(session)}/Attachments('{attachment.id}')"})

    # ---- $batch ---------------------------------------------------------------------------

    async def batch(self, req: SimRequest) -> SimResponse:
        """JSON batching: at most 20 requests, run concurrently unless ordered by `dependsOn`,
        each through the full pipeline (so each counts against its mailbox's limits)."""
        payload = self._json_body(req)
        items = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            raise bad_request("BadRequest", "Invalid batch payload format.")
        if len(items) > MAX_BATCH:
            raise bad_request("BadRequest",
                              f"Too many requests in batch. The maximum is {MAX_BATCH}.")
        seen: list[str] = []
        for item in items:
            self._check_batch_item(item, seen)
            seen.append(str(item["id"]))
        tasks: dict[str, asyncio.Task[SimResponse]] = {}
        for item in items:
            tasks[str(item["id"])] = asyncio.ensure_future(self._batch_item(req, item, tasks))
        responses = []
        for item_id, task in tasks.items():
            response = await task
            entry: dict[str, Any] = {"id": item_id, "status": response.status,
                                     "headers": dict(response.headers)}
            if response.json is not None:
                entry["headers"]["Content-Type"] = JSON_TYPE
                entry["body"] = response.json
            elif response.raw:
                entry["headers"]["Content-Type"] = response.content_type or ""
                entry["body"] = base64.b64encode(response.raw).decode()
            responses.append(entry)
        return SimResponse(200, json={"responses": responses})

    @staticmethod
    def _check_batch_item(item: object, seen: list[str]) -> None:
        if not isinstance(item, dict) or not item.get("id") or not item.get("method") \
                or not isinstance(item.get("url"), str):
            raise bad_request("BadRequest", "Each batch request needs an id, a method and a url.")
        item_id = str(item["id"])
        if item_id in seen:
            raise bad_request("BadRequest", f"Batch request id '{item_id}' is not unique.")
        if re.match(r"^[a-z]+://", item["url"], re.IGNORECASE):
            raise bad_request("BadRequest", "Batch request urls must be relative.")
        for dependency in item.get("dependsOn") or []:
            if str(dependency) not in seen:
                raise bad_request("BadRequest",
                                  f"Request '{item_id}' depends on '{dependency}', which is not "
                                  "an earlier request of the batch.")
        headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
        if str(item["method"]).upper() in _WRITE_METHODS and "body" in item \
                and "content-type" not in headers:
            raise bad_request("BadRequest",
                              f"Write request id : {item_id} does not contain Content-Type "
                              "header or body.")

    async def _batch_item(self, outer: SimRequest, item: dict[str, Any],
                          tasks: Mapping[str, Awaitable[SimResponse]]) -> SimResponse:
        for dependency in item.get("dependsOn") or []:
            if (await tasks[str(dependency)]).status >= 400:
                return SimResponse(424, json={"error": {
                    "code": "FailedDependency",
                    "message": f"The request depends on request '{dependency}', which failed."}})
        url = URL("/" + item["url"].lstrip("/"), encoded=True)
        headers: CIMultiDict[str] = CIMultiDict(
            {str(k): str(v) for k, v in (item.get("headers") or {}).items()})
        authorization = outer.headers.get("Authorization")
        if authorization:
            headers["Authorization"] = authorization
        body = b""
        if "body" in item:
            if "json" in headers.get("Content-Type", "").lower():
                body = json.dumps(item["body"]).encode()
            else:
                try:
                    body = base64.b64decode(str(item["body"]), validate=True)
                except binascii.Error:
                    body = str(item["body"]).encode()
        inner = SimRequest(str(item["method"]).upper(), "/v1.0" + url.raw_path,
                           "/v1.0" + str(url), MultiDict(url.query), headers, body, outer.origin,
                           outer.host_port)
        return await self.handle(inner, inner=True)

    # ---- inspection -----------------------------------------------------------------------

    def _mailbox_of(self, user: str) -> Mailbox:
        found = self.directory.find(user)
        if found is None:
            raise KeyError(f"unknown user {user!r}")
        return self.directory.mailboxes[found.id]

    def messages_of(self, user: str) -> list[dict[str, Any]]:
        """Every stored message of the user, in creation order, in Graph's shape plus the
        create-only data (headers, attachments with content, extended properties)."""
        out = []
        for message in self._mailbox_of(user).messages.values():
            entity = message_json(message)
            entity["internetMessageHeaders"] = list(message.headers or [])
            entity["attachments"] = [attachment_json(a) for a in message.attachments]
            entity["singleValueExtendedProperties"] = [
                {"id": p.id, "value": p.value} for p in message.extended.values()]
            out.append(entity)
        return out

    def folders_of(self, user: str) -> list[dict[str, Any]]:
        mailbox = self._mailbox_of(user)
        return [{**self.folder_json(f, mailbox), "wellKnownName": f.well_known}
                for f in mailbox.folders.values()]

    def stats(self) -> dict[str, Any]:
        return {"requests": sum(self.by_status.values()), "by_status": dict(self.by_status),
                "throttled": self.counters["throttled"],
                "faults": {k.removeprefix("fault_"): v for k, v in self.counters.items()
                           if k.startswith("fault_")},
                **{k: v for k, v in self.counters.items()
                   if k != "throttled" and not k.startswith("fault_")}}
