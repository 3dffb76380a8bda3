"""Shared fixtures: one Azurite per test session (from node_modules), isolated resource names
per test, and settings pointing the connector at whatever a test starts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.azurite import Azurite
from devhost.resources import ensure_resources
from shared.settings import Settings

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "eml"


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as emulator:
        yield emulator


def isolated_env(azurite: Azurite, **overrides: str) -> dict[str, str]:
    """Settings with resource names unique to one test, so tests share one Azurite safely."""
    tag = uuid.uuid4().hex[:8]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TELEMESSAGE_BASE_URL": "http://127.0.0.1:9",
        "TELEMESSAGE_USERNAME": "archiver",
        "TELEMESSAGE_PASSWORD": "unused",
        "GRAPH_BASE_URL": "http://127.0.0.1:9/v1.0",
        "GRAPH_CREDENTIAL_KIND": "static_token",
        "GRAPH_STATIC_TOKEN": "test-token",
        "EXPORTS_CONTAINER": f"exports-{tag}",
        "ITEMS_CONTAINER": f"items-{tag}",
        "REPORTS_CONTAINER": f"reports-{tag}",
        "QUARANTINE_CONTAINER": f"quarantine-{tag}",
        "GATE_CONTAINER": f"gate-{tag}",
        "MAPPING_BLOB": f"config-{tag}/mapping.csv",
        "ITEMS_QUEUE": f"items-{tag}",
        "REPLAY_QUEUE": f"replay-{tag}",
        "STATE_TABLE": f"state{tag}",
        "LEDGER_TABLE": f"ledger{tag}",
        "OUTCOMES_TABLE": f"outcomes{tag}",
    }
    env.update(overrides)
    ensure_resources(Settings.from_env(env), azurite.connection_string)
    return env


@pytest.fixture
def storage_env(azurite: Azurite) -> dict[str, str]:
    return isolated_env(azurite)
