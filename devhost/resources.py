"""Creates the containers, queues and tables the connector uses (infra/ does it in Azure)."""

from __future__ import annotations

import contextlib

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.settings import Settings


def ensure_resources(settings: Settings, connection_string: str) -> None:
    """What infra/ creates in Azure; the app itself never needs the right to create them."""
    blobs = BlobServiceClient.from_connection_string(connection_string)
    mapping_container = settings.mapping_blob.split("/", 1)[0]
    for name in (settings.exports_container, settings.items_container,
                 settings.reports_container, settings.quarantine_container,
                 settings.preserved_container, mapping_container, settings.gate_container):
        with contextlib.suppress(ResourceExistsError):
            blobs.create_container(name)
    queues = QueueServiceClient.from_connection_string(connection_string)
    for name in (settings.items_queue, f"{settings.items_queue}-poison", settings.replay_queue,
                 f"{settings.replay_queue}-poison"):
        with contextlib.suppress(ResourceExistsError):
            queues.create_queue(name)
    tables = TableServiceClient.from_connection_string(connection_string)
    for name in (settings.state_table, settings.ledger_table, settings.outcomes_table):
        tables.create_table_if_not_exists(name)
