"""devhost.azurite: the pinned emulator, as one process or as one process per service."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from devhost.azurite import Azurite

pytestmark = pytest.mark.azurite


def test_services_apart_are_three_processes_behind_one_connection_string(tmp_path: Path) -> None:
    with Azurite(tmp_path, services_apart=True) as azurite:
        assert set(azurite.pids) == {"azurite blob", "azurite queue", "azurite table"}
        assert len(set(azurite.pids.values())) == 3
        connection = azurite.connection_string
        BlobServiceClient.from_connection_string(connection).create_container("items") \
            .upload_blob("b", b"x")
        queue = QueueServiceClient.from_connection_string(connection).create_queue("items")
        queue.send_message("m")
        table = TableServiceClient.from_connection_string(connection).create_table("ledger")
        table.create_entity({"PartitionKey": "p", "RowKey": "r"})
        assert [m.content for m in queue.receive_messages()] == ["m"]
        assert table.get_entity("p", "r")["RowKey"] == "r"
        pids = list(azurite.pids.values())
    assert azurite.pids == {}
    for pid in pids:  # every process ended with the context
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"


def test_one_process_by_default(tmp_path: Path) -> None:
    with Azurite(tmp_path) as azurite:
        assert list(azurite.pids) == ["azurite"]
