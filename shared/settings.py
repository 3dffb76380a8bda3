"""Settings read from the environment (app settings in Azure, local.settings.json locally).

Every name here is also set by infra/ and listed in local.settings.sample.json; a contract test
keeps the three in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it."""


@dataclass(frozen=True)
class StorageSettings:
    connection_string: str | None
    account_name: str | None
    credential: str | None
    client_id: str | None
    blob_endpoint: str | None = None
    queue_endpoint: str | None = None
    table_endpoint: str | None = None


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    telemessage_base_url: str
    telemessage_username: str
    telemessage_password: str = field(repr=False)
    graph_base_url: str = "https://graph.microsoft.com/v1.0"
    graph_tenant_id: str = ""
    graph_client_id: str = ""
    graph_credential_kind: str = "managed_identity"
    graph_client_secret: str = field(default="", repr=False)
    graph_certificate_path: str = ""
    graph_static_token: str = field(default="", repr=False)
    archive_folder_name: str = "Telegram Archiver"
    max_item_bytes: int = 10 * 1024 * 1024
    fetch_schedule: str = "0 30 1 * * *"
    fetch_initial_lookback_hours: int = 48
    auto_mapping: bool = True
    mapping_blob: str = "config/mapping.csv"
    exports_container: str = "exports"
    items_container: str = "items"
    reports_container: str = "reports"
    items_queue: str = "items"
    replay_queue: str = "replay"  # replay jobs asked for over HTTP
    state_table: str = "connectorstate"
    ledger_table: str = "ledger"
    outcomes_table: str = "outcomes"
    directory_cache_seconds: int = 3600
    graph_max_concurrency_per_mailbox: int = 4
    max_dequeue_count: int = 5  # must equal host.json extensions.queues.maxDequeueCount
    report_schedule: str = "0 */10 * * * *"
    report_grace_minutes: int = 60
    quarantine_container: str = "quarantine"
    gate_container: str = "graph-gate"  # Graph's per-mailbox slots, leased by every process
    mapping_refresh_seconds: int = 60
    retry_base_seconds: int = 30  # first re-queue delay after a failed delivery; then doubled
    retry_max_delay_seconds: int = 3600
    retry_horizon_seconds: int = 24 * 3600  # after the first failure; then failed + poison
    oversize_policy: str = "skip"  # skip | stub | import (shared/policies.py)
    damaged_policy: str = "quarantine"  # quarantine | best_effort
    # The archived mailboxes' maximum message size (Exchange Online: 35 MB unless an admin
    # raised MaxReceiveSize, up to 150 MB); OVERSIZE_POLICY=import stays within it.
    mailbox_max_message_bytes: int = 35 * 1024 * 1024
    preserved_container: str = "preserved"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            storage=_storage(env),
            # Checked when the fetch needs them (`require_telemessage`), so admin commands that
            # only touch storage run without TeleMessage credentials.
            telemessage_base_url=env.get("TELEMESSAGE_BASE_URL", "").rstrip("/"),
            telemessage_username=env.get("TELEMESSAGE_USERNAME", ""),
            telemessage_password=env.get("TELEMESSAGE_PASSWORD", ""),
            graph_base_url=env.get("GRAPH_BASE_URL", cls.graph_base_url).rstrip("/"),
            graph_tenant_id=env.get("GRAPH_TENANT_ID", ""),
            graph_client_id=env.get("GRAPH_CLIENT_ID", ""),
            graph_credential_kind=_choice(env, "GRAPH_CREDENTIAL_KIND", cls.graph_credential_kind,
                                          ("managed_identity", "client_secret", "certificate",
                                           "static_token")),
            graph_client_secret=env.get("GRAPH_CLIENT_SECRET", ""),
            graph_certificate_path=env.get("GRAPH_CERTIFICATE_PATH", ""),
            graph_static_token=env.get("GRAPH_STATIC_TOKEN", ""),
            archive_folder_name=env.get("ARCHIVE_FOLDER_NAME", cls.archive_folder_name),
            max_item_bytes=_int(env, "MAX_ITEM_BYTES", cls.max_item_bytes),
            fetch_schedule=env.get("FETCH_SCHEDULE", cls.fetch_schedule),
            fetch_initial_lookback_hours=_int(env, "FETCH_INITIAL_LOOKBACK_HOURS",
                                              cls.fetch_initial_lookback_hours),
            auto_mapping=_bool(env, "AUTO_MAPPING", cls.auto_mapping),
            mapping_blob=env.get("MAPPING_BLOB", cls.mapping_blob),
            exports_container=env.get("EXPORTS_CONTAINER", cls.exports_container),
            items_container=env.get("ITEMS_CONTAINER", cls.items_container),
            reports_container=env.get("REPORTS_CONTAINER", cls.reports_container),
            items_queue=env.get("ITEMS_QUEUE", cls.items_queue),
            replay_queue=env.get("REPLAY_QUEUE", cls.replay_queue),
            state_table=env.get("STATE_TABLE", cls.state_table),
            ledger_table=env.get("LEDGER_TABLE", cls.ledger_table),
            outcomes_table=env.get("OUTCOMES_TABLE", cls.outcomes_table),
            directory_cache_seconds=_int(env, "DIRECTORY_CACHE_SECONDS",
                                         cls.directory_cache_seconds),
            graph_max_concurrency_per_mailbox=_int(env, "GRAPH_MAX_CONCURRENCY_PER_MAILBOX",
                                                   cls.graph_max_concurrency_per_mailbox),
            max_dequeue_count=_int(env, "MAX_DEQUEUE_COUNT", cls.max_dequeue_count),
            report_schedule=env.get("REPORT_SCHEDULE", cls.report_schedule),
            report_grace_minutes=_int(env, "REPORT_GRACE_MINUTES", cls.report_grace_minutes),
            quarantine_container=env.get("QUARANTINE_CONTAINER", cls.quarantine_container),
            gate_container=env.get("GATE_CONTAINER", cls.gate_container),
            mapping_refresh_seconds=_int(env, "MAPPING_REFRESH_SECONDS",
                                         cls.mapping_refresh_seconds),
            retry_base_seconds=_int(env, "RETRY_BASE_SECONDS", cls.retry_base_seconds),
            retry_max_delay_seconds=_int(env, "RETRY_MAX_DELAY_SECONDS",
                                         cls.retry_max_delay_seconds),
            retry_horizon_seconds=_int(env, "RETRY_HORIZON_SECONDS", cls.retry_horizon_seconds),
            oversize_policy=_choice(env, "OVERSIZE_POLICY", cls.oversize_policy,
                                    ("skip", "stub", "import")),
            damaged_policy=_choice(env, "DAMAGED_POLICY", cls.damaged_policy,
                                   ("quarantine", "best_effort")),
            mailbox_max_message_bytes=_int(env, "MAILBOX_MAX_MESSAGE_BYTES",
                                           cls.mailbox_max_message_bytes),
            preserved_container=env.get("PRESERVED_CONTAINER", cls.preserved_container),
        ).validated()

    def require_telemessage(self) -> Settings:
        for name, value in (("TELEMESSAGE_BASE_URL", self.telemessage_base_url),
                            ("TELEMESSAGE_USERNAME", self.telemessage_username),
                            ("TELEMESSAGE_PASSWORD", self.telemessage_password)):
            if not value:
                raise SettingsError(f"setting {name} is required to fetch exports")
        return self

    def require_graph(self) -> Settings:
        """The app registration kinds need their tenant, client id and credential; the default,
        managed_identity, needs nothing (GRAPH_CLIENT_ID names a user-assigned identity)."""
        needed = {"client_secret": (("GRAPH_CLIENT_SECRET", self.graph_client_secret),),
                  "certificate": (("GRAPH_CERTIFICATE_PATH", self.graph_certificate_path),)}
        if self.graph_credential_kind in needed:
            for name, value in (("GRAPH_TENANT_ID", self.graph_tenant_id),
                                ("GRAPH_CLIENT_ID", self.graph_client_id),
                                *needed[self.graph_credential_kind]):
                if not value:
                    raise SettingsError(f"setting {name} is required with "
                                        f"GRAPH_CREDENTIAL_KIND={self.graph_credential_kind}")
        return self

    def validated(self) -> Settings:
        if self.graph_credential_kind == "static_token":
            host = self.graph_base_url.split("://", 1)[-1].split("/", 1)[0].split(":")[0]
            if host not in ("localhost", "127.0.0.1", "[::1]", "::1"):
                raise SettingsError("GRAPH_CREDENTIAL_KIND=static_token is only allowed for a "
                                    "loopback GRAPH_BASE_URL (the Graph simulator)")
            if not self.graph_static_token:
                raise SettingsError("GRAPH_STATIC_TOKEN is required with static_token")
        if self.max_item_bytes <= 0:
            raise SettingsError("MAX_ITEM_BYTES must be positive")
        if not 1 <= self.retry_base_seconds <= self.retry_max_delay_seconds <= 7 * 24 * 3600:
            raise SettingsError("need 1 <= RETRY_BASE_SECONDS <= RETRY_MAX_DELAY_SECONDS <= "
                                "604800 (a queue message's longest delay)")
        if self.retry_horizon_seconds < 0:
            raise SettingsError("RETRY_HORIZON_SECONDS must not be negative")
        if not self.max_item_bytes <= self.mailbox_max_message_bytes <= 150 * 1024 * 1024:
            raise SettingsError("MAILBOX_MAX_MESSAGE_BYTES must be at least MAX_ITEM_BYTES and "
                                "at most 150 MB (Exchange Online's largest message size)")
        if not 1 <= self.graph_max_concurrency_per_mailbox <= 4:
            raise SettingsError("GRAPH_MAX_CONCURRENCY_PER_MAILBOX must be 1..4 (Graph's limit)")
        return self


# The Functions host reads the storage connection under this prefix; our own clients read the
# same settings so there is one storage configuration, connection string or identity-based.
STORAGE_PREFIX = "AzureWebJobsStorage"


def _storage(env: Mapping[str, str]) -> StorageSettings:
    conn = env.get(STORAGE_PREFIX)
    account = env.get(f"{STORAGE_PREFIX}__accountName")
    if not conn and not account:
        raise SettingsError(f"set {STORAGE_PREFIX} (connection string) or "
                            f"{STORAGE_PREFIX}__accountName (identity-based)")
    return StorageSettings(
        connection_string=conn or None,
        account_name=account,
        credential=env.get(f"{STORAGE_PREFIX}__credential"),
        client_id=env.get(f"{STORAGE_PREFIX}__clientId"),
        blob_endpoint=env.get(f"{STORAGE_PREFIX}__blobServiceUri"),
        queue_endpoint=env.get(f"{STORAGE_PREFIX}__queueServiceUri"),
        table_endpoint=env.get(f"{STORAGE_PREFIX}__tableServiceUri"),
    )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"setting {name} must be an integer, got {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"setting {name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in allowed:
        raise SettingsError(f"setting {name} must be one of {', '.join(allowed)}, got {value!r}")
    return value
