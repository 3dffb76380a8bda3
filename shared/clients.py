"""Builds every client from Settings, once per process. The only place clients are made.

The functions call `runtime()`; tests and the local host may build a Runtime themselves.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpx
import requests
from azure.core.credentials import TokenCredential
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory
from requests.adapters import HTTPAdapter

from shared.fetch import Fetcher
from shared.graph import GraphApi, GraphMailboxes
from shared.importer import Importer
from shared.ledger import Ledger
from shared.mailbox_slots import BlobSlots
from shared.mailbox_writer import FolderCache, MailboxWriter
from shared.mapping import Directory, Mapper
from shared.mapping_store import MappingStore
from shared.outcomes import OutcomeStore
from shared.policies import DamagedPolicy, OversizePolicy, Policies
from shared.settings import Settings
from shared.split import Splitter
from shared.state import StateStore
from shared.telemessage import TeleMessageClient
from shared.throttle import MailboxGate

T = TypeVar("T")
GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]

class StaticTokenProvider(AccessTokenProvider):
    """A fixed bearer token, only for a loopback Graph (the simulator); see Settings."""

    def __init__(self, token: str, host: str) -> None:
        self._token = token
        self._hosts = AllowedHostsValidator([host])

    async def get_authorization_token(self, uri: str,
                                      additional_authentication_context: dict[str, Any]
                                      | None = None) -> str:
        return self._token if self._hosts.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._hosts


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.io_pool = ThreadPoolExecutor(32, thread_name_prefix="storage")
        self._transport = _storage_transport()
        self.blob_service = _blob_service(settings, self._transport)
        self.table_service = _table_service(settings, self._transport)
        self.items_queue = _queue(settings, settings.items_queue, self._transport)
        self.state = StateStore(self.table(settings.state_table))
        self.outcomes = OutcomeStore(self.table(settings.outcomes_table))
        self.ledger = Ledger(self.table(settings.ledger_table))
        self._importer: Importer | None = None
        self._importer_loop: asyncio.AbstractEventLoop | None = None

    def table(self, name: str) -> TableClient:
        return self.table_service.get_table_client(name)

    def queue(self, name: str) -> QueueClient:
        return _queue(self.settings, name, self._transport)

    def queue_depths(self) -> dict[str, int]:
        """Approximate message counts of the items queue and its poison queue."""
        names = {"items": self.settings.items_queue,
                 "poison": f"{self.settings.items_queue}-poison"}
        return {key: int(self.queue(name).get_queue_properties().approximate_message_count or 0)
                for key, name in names.items()}

    async def run_io(self, func: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.io_pool, functools.partial(func, *args))

    def splitter(self) -> Splitter:
        s = self.settings
        return Splitter(self.blob_service.get_container_client(s.items_container),
                        self.items_queue, self.outcomes, self.state)

    def fetcher(self) -> Fetcher:
        s = self.settings.require_telemessage()
        http = httpx.Client(base_url=s.telemessage_base_url,
                            timeout=httpx.Timeout(60.0, connect=15.0))
        client = TeleMessageClient(http, s.telemessage_username, s.telemessage_password)
        return Fetcher(client, self.blob_service.get_container_client(s.exports_container),
                       self.state, timedelta(hours=s.fetch_initial_lookback_hours))

    def importer(self) -> Importer:
        """One per event loop: the Graph client and the mailbox gate belong to the loop."""
        loop = asyncio.get_running_loop()
        if self._importer is None or self._importer_loop is not loop:
            self._importer = self._build_importer()
            self._importer_loop = loop
        return self._importer

    def _build_importer(self) -> Importer:
        s = self.settings
        per_mailbox = s.graph_max_concurrency_per_mailbox
        slots = BlobSlots(self.blob_service.get_container_client(s.gate_container), per_mailbox,
                          self.run_io)
        graph = graph_mailboxes(s, MailboxGate(per_mailbox, slots))
        mappings = MappingStore(self.blob_service, s.mapping_blob, s.mapping_refresh_seconds)
        mapper = Mapper(mappings.current, Directory(graph.get_user, s.directory_cache_seconds),
                        s.auto_mapping)
        folders = FolderCache(graph, s.archive_folder_name, s.directory_cache_seconds)
        writer = MailboxWriter(graph, folders, self.ledger, self.run_io)
        policies = Policies(OversizePolicy(s.oversize_policy), DamagedPolicy(s.damaged_policy),
                            s.max_item_bytes, s.mailbox_max_message_bytes)
        return Importer(self.blob_service.get_container_client(s.items_container),
                        self.blob_service.get_container_client(s.quarantine_container),
                        self.outcomes, mapper, writer, s.max_item_bytes, self.run_io, policies,
                        self.blob_service.get_container_client(s.preserved_container),
                        s.exports_container)


def graph_mailboxes(settings: Settings, gate: MailboxGate, backoff_base: float = 0.5
                    ) -> GraphMailboxes:
    """msgraph-sdk for look-ups, plain JSON on the same token provider for the writes, and an
    upload client without credentials (upload URLs are pre-authenticated)."""
    host = urlparse(settings.graph_base_url).hostname or "graph.microsoft.com"
    auth = _graph_auth(settings.require_graph(), host)
    api = GraphApi(settings.graph_base_url, auth.access_token_provider)
    return GraphMailboxes(graph_client(settings, auth), api, httpx.AsyncClient(timeout=120.0),
                          gate, backoff_base=backoff_base)


def graph_client(settings: Settings, auth: BaseBearerTokenAuthenticationProvider | None = None
                 ) -> GraphServiceClient:
    """msgraph-sdk pointed at GRAPH_BASE_URL; the SDK's own retries are off because a blind
    retry of a create after a 504 can duplicate an item (ours ask Graph first)."""
    if auth is None:
        auth = _graph_auth(settings.require_graph(), urlparse(settings.graph_base_url).hostname
                           or "graph.microsoft.com")
    options = {RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0,
                                                                should_retry=False)}
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(base_url=settings.graph_base_url,
                                 timeout=httpx.Timeout(100.0, connect=15.0),
                                 # httpcore scans every pooled connection per request: keep
                                 # the pool near what one process really has in flight.
                                 limits=httpx.Limits(max_connections=100,
                                                     max_keepalive_connections=32)),
        options=options)
    adapter = GraphRequestAdapter(auth, http)
    adapter.base_url = settings.graph_base_url
    return GraphServiceClient(request_adapter=adapter)


def _graph_auth(settings: Settings, host: str) -> BaseBearerTokenAuthenticationProvider:
    if settings.graph_credential_kind == "static_token":
        return BaseBearerTokenAuthenticationProvider(
            StaticTokenProvider(settings.graph_static_token, host))
    return AzureIdentityAuthenticationProvider(_graph_credential(settings), scopes=GRAPH_SCOPES,
                                               allowed_hosts=[host])


def _graph_credential(settings: Settings) -> TokenCredential:
    from azure.identity import (
        CertificateCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
    )

    if settings.graph_credential_kind == "client_secret":
        return ClientSecretCredential(settings.graph_tenant_id, settings.graph_client_id,
                                      settings.graph_client_secret)
    if settings.graph_credential_kind == "certificate":
        return CertificateCredential(settings.graph_tenant_id, settings.graph_client_id,
                                     certificate_path=settings.graph_certificate_path)
    return ManagedIdentityCredential(client_id=settings.graph_client_id or None)


def _storage_credential(settings: Settings) -> TokenCredential:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if settings.storage.credential == "managedidentity":
        return ManagedIdentityCredential(client_id=settings.storage.client_id)
    return DefaultAzureCredential()  # an operator's Azure CLI login, for the CLI tools


def _endpoint(settings: Settings, service: str, explicit: str | None) -> str:
    return explicit or f"https://{settings.storage.account_name}.{service}.core.windows.net"


def _storage_transport() -> RequestsTransport:
    """Connection pools sized for the storage thread pool and the split's workers (requests'
    default is 10): a full pool discards connections, and each new one costs both sides."""
    session = requests.Session()
    session.trust_env = False  # no ~/.netrc and proxy look-ups on every request (~14% of split)
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=128)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=False)


def _blob_service(settings: Settings, transport: RequestsTransport) -> BlobServiceClient:
    if settings.storage.connection_string:
        return BlobServiceClient.from_connection_string(settings.storage.connection_string,
                                                        transport=transport)
    return BlobServiceClient(_endpoint(settings, "blob", settings.storage.blob_endpoint),
                             credential=_storage_credential(settings), transport=transport)


def _table_service(settings: Settings, transport: RequestsTransport) -> TableServiceClient:
    if settings.storage.connection_string:
        return TableServiceClient.from_connection_string(settings.storage.connection_string,
                                                         transport=transport)
    return TableServiceClient(_endpoint(settings, "table", settings.storage.table_endpoint),
                              credential=_storage_credential(settings), transport=transport)


def _queue(settings: Settings, name: str, transport: RequestsTransport) -> QueueClient:
    """Base64, as host.json's messageEncoding declares: the two must agree."""
    encode, decode = TextBase64EncodePolicy(), TextBase64DecodePolicy()
    if settings.storage.connection_string:
        return QueueClient.from_connection_string(
            settings.storage.connection_string, name, message_encode_policy=encode,
            message_decode_policy=decode, transport=transport)
    return QueueClient(_endpoint(settings, "queue", settings.storage.queue_endpoint), name,
                       credential=_storage_credential(settings), message_encode_policy=encode,
                       message_decode_policy=decode, transport=transport)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The process's Runtime, built from the environment on first use."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(Settings.from_env())
    return _runtime


def set_runtime(value: Runtime | None) -> None:
    global _runtime
    _runtime = value
