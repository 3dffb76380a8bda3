"""Everything the connector talks to, on loopback: Azurite, the TeleMessage and Graph
simulators; plus the app settings that point the connector at them, exactly as it would be
pointed at the real services."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from devhost.azurite import Azurite
from devhost.resources import ensure_resources
from shared.settings import Settings
from simulators.graph import GraphSimulator, SimUser
from simulators.telemessage import TeleMessageSimulator

GRAPH_TOKEN = "local-simulator-token"  # noqa: S105 - accepted by the loopback simulator only
TM_USER, TM_PASSWORD = "archiver", "local-simulator-password"


def graph_users_for(sim: TeleMessageSimulator, without_mailbox: int = 2,
                    not_in_directory: int = 2) -> list[SimUser]:
    """The tenant: the simulated org's employees, except a few who left (not in the directory)
    and a few whose mailbox is not enabled, so the demo shows unmapped outcomes too."""
    users = []
    employees = sim.org.employees
    for index, person in enumerate(employees):
        if index >= len(employees) - not_in_directory:
            continue
        users.append(SimUser(id=f"00000000-0000-4000-8000-{index:012d}",
                             user_principal_name=str(person.email), mail=person.email,
                             display_name=f"{person.first} {person.last}",
                             mailbox_enabled=index >= without_mailbox))
    return users


def _utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass
class LocalStack:
    workdir: Path
    days: list[date] = field(default_factory=lambda: [_utc_today() - timedelta(days=1)])
    items_per_day: int = 2000
    employees: int = 60
    seed: int = 7
    graph_latency: float = 0.0
    extra_env: dict[str, str] = field(default_factory=dict)
    telemessage_options: dict[str, Any] = field(default_factory=dict)
    azurite: Azurite | None = None
    telemessage: TeleMessageSimulator | None = None
    graph: GraphSimulator | None = None
    graph_users: list[SimUser] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> LocalStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.azurite = Azurite().start()
        self.telemessage = TeleMessageSimulator(
            self.workdir / "telemessage", username=TM_USER, password=TM_PASSWORD, seed=self.seed,
            employees=self.employees, days=self.days, items_per_day=self.items_per_day,
            created_delay=timedelta(0), **self.telemessage_options)
        self.telemessage.start()
        self.graph_users = graph_users_for(self.telemessage)
        self.graph = GraphSimulator(users=self.graph_users, token=GRAPH_TOKEN,
                                    latency=self.graph_latency, seed=self.seed)
        self.graph.start()
        lookback_hours = int((_utc_today() - min(self.days)).days * 24 + 48)
        self.env = {
            "AzureWebJobsStorage": self.azurite.connection_string,
            "TELEMESSAGE_BASE_URL": self.telemessage.url,
            "TELEMESSAGE_USERNAME": TM_USER,
            "TELEMESSAGE_PASSWORD": TM_PASSWORD,
            "GRAPH_BASE_URL": self.graph.base_url,
            "GRAPH_CREDENTIAL_KIND": "static_token",
            "GRAPH_STATIC_TOKEN": GRAPH_TOKEN,
            "FETCH_SCHEDULE": "0 */5 * * * *",
            "REPORT_SCHEDULE": "*/30 * * * * *",
            "FETCH_INITIAL_LOOKBACK_HOURS": str(lookback_hours),
            "EXPORTS_CONTAINER": "exports",
            "ITEMS_QUEUE": "items",
            "REPLAY_QUEUE": "replay",
            **self.extra_env,
        }
        os.environ.update(self.env)
        ensure_resources(Settings.from_env(self.env), self.azurite.connection_string)
        return self

    def stop(self) -> None:
        for part in (self.graph, self.telemessage, self.azurite):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

