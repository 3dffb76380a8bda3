"""Outages heal themselves and a lost ledger is rebuilt, end to end: the app's functions on the
local host, Azurite, and the simulators. Clocks are shortened by settings (retry delays of
seconds, not minutes)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import function_app
from devhost.host import ROOT, LocalFunctionsHost
from devhost.stack import GRAPH_TOKEN, LocalStack
from shared.__main__ import main as cli
from shared.clients import Runtime, set_runtime
from shared.outcomes import Outcome
from shared.pipeline import publish_reports_now
from shared.replay import Replayer
from shared.reports import all_reports
from shared.settings import Settings
from simulators.graph import FaultPlan
from tests.e2e.graph_reader import GraphReader
from tests.e2e.test_pipeline import ITEM_LIMITS, expected_keys

pytestmark = pytest.mark.e2e
DAY = datetime.now(UTC).date() - timedelta(days=1)
FAST_RETRIES = {"RETRY_BASE_SECONDS": "1", "RETRY_MAX_DELAY_SECONDS": "4",
                "RETRY_HORIZON_SECONDS": "900", "MAX_DEQUEUE_COUNT": "2"}


class Env:
    def __init__(self, stack: LocalStack) -> None:
        assert stack.azurite and stack.graph
        self.stack = stack
        self.graph = stack.graph
        self.runtime = Runtime(Settings.from_env())
        set_runtime(self.runtime)
        # The queue's own retries are quick and few: only the item's re-queueing can outlast
        # an outage.
        fast = copy.deepcopy(json.loads((ROOT / "host.json").read_text()))
        fast["extensions"]["queues"].update({"visibilityTimeout": "00:00:00",
                                             "maxDequeueCount": 2})
        # Stopping the host between phases abandons the messages in flight, as a crash would;
        # a short lease brings them back in a minute rather than ten.
        self.host = LocalFunctionsHost(function_app.app, stack.azurite.connection_string,
                                       host_json=fast, lease_seconds=60)
        self.reader = GraphReader(stack.graph.base_url, GRAPH_TOKEN)

    def run_until(self, done: Callable[[], bool], timeout: float) -> None:
        """Runs the host until `done()` (asked every second) or fails after `timeout`."""
        asked = [0.0]

        def check() -> bool:
            if time.monotonic() - asked[0] < 1.0:
                return False
            asked[0] = time.monotonic()
            return done()

        asyncio.run(self.host.run(until=check, timeout=timeout, timers=False))

    def attempts(self) -> list[int]:
        """The attempt counts of the items retrying now, from their outcome rows."""
        return [int(i.detail.split("(attempt ")[1].split(",")[0])
                for r in all_reports(self.runtime.state, self.runtime.outcomes)
                for i in r.items if i.reason == "retrying"]

    def drain(self, timeout: float = 600) -> None:
        asyncio.run(self.host.run_until_idle(timeout=timeout))

    def outcomes(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for report in all_reports(self.runtime.state, self.runtime.outcomes):
            counts.update(report.outcomes)
        return counts

    def keys(self) -> dict[str, list[str]]:
        found = {}
        for user in self.stack.graph_users:
            if not user.mailbox_enabled:
                continue
            upn = user.user_principal_name
            folder = self.reader.folder_id(upn, "Telegram Archiver")
            found[upn] = [] if folder is None else [
                m.archive_key for m in self.reader.messages(upn, folder, attachments=False)]
        return found

    def assert_each_item_once_where_it_belongs(self) -> None:
        expected = expected_keys(self.stack, DAY)
        for upn, keys in self.keys().items():
            assert len(keys) == len(set(keys)), f"duplicates in {upn}"
            assert set(keys) == expected.get(upn, set()), upn
        for report in all_reports(self.runtime.state, self.runtime.outcomes):
            assert report.reconciled, report.discrepancy()
        counts = self.outcomes()
        assert counts[Outcome.FAILED.value] == 0 and counts[Outcome.QUEUED.value] == 0
        assert self.runtime.queue_depths() == {"items": 0, "poison": 0}

    def placements(self) -> int:
        """Mailboxes reported `imported`, over every item."""
        return sum(1 for r in all_reports(self.runtime.state, self.runtime.outcomes)
                   for i in r.items for result in i.mailboxes.values() if result == "imported")


def stack_for(workdir: Path, items: int, seed: int, **env: str) -> LocalStack:
    return LocalStack(workdir, days=[DAY], items_per_day=items, employees=12, seed=seed,
                      telemessage_options=ITEM_LIMITS, extra_env=FAST_RETRIES | env)


@pytest.fixture
def outage_env(tmp_path: Path) -> Iterator[Env]:
    with stack_for(tmp_path, 60, 31) as stack:
        yield Env(stack)
        set_runtime(None)


def test_a_graph_outage_heals_itself_and_every_item_lands_once(outage_env: Env) -> None:
    env = outage_env
    env.graph.set_faults(FaultPlan(unavailable_ratio=1.0, retry_after_seconds=0,
                                   only_methods=("POST", "PUT")))  # every write refused
    env.host.run_timer()
    # The outage lasts until items have been retried three times: "30 minutes" at this clock.
    env.run_until(lambda: max(env.attempts(), default=0) >= 3, timeout=300)

    counts = env.outcomes()
    assert counts[Outcome.FAILED.value] == 0 and counts[Outcome.IMPORTED.value] == 0
    assert env.runtime.queue_depths()["poison"] == 0
    documents = publish_reports_now(env.runtime)
    assert documents and {d["status"] for d in documents} == {"in_progress"}
    assert all(d["status_detail"].startswith("retrying until ") for d in documents)
    retrying = [i for d in documents for i in d["items"] if i["reason"] == "retrying"]
    assert retrying and all(i["outcome"] == "queued" and i["retrying_until"]
                            and i["detail"].startswith("retrying until ") for i in retrying)
    # Backing off: attempts counted in the message, delays grown to the 4 s cap.
    attempts = [int(i["detail"].split("(attempt ")[1].split(",")[0]) for i in retrying]
    assert max(attempts) >= 3
    assert any("next in 4s" in i["detail"] for i in retrying)

    env.graph.set_faults(FaultPlan())  # Graph is back; nobody does anything
    env.drain()
    env.assert_each_item_once_where_it_belongs()
    assert env.host.stats.poisoned == 0
    assert env.placements() == sum(len(k) for k in env.keys().values())


def test_a_day_under_a_sixty_percent_503_storm_ends_none_failed_lost_or_duplicated(
        tmp_path: Path) -> None:
    with stack_for(tmp_path, 200, 37) as stack:
        env = Env(stack)
        try:
            env.graph.set_faults(FaultPlan(unavailable_ratio=0.6, retry_after_seconds=0,
                                           only_methods=("POST", "PUT")))
            env.host.run_timer()
            env.drain(timeout=1200)
            assert env.graph.stats()["faults"].get("503", 0) > 200
            env.assert_each_item_once_where_it_belongs()
            # Exact reports: every message in a mailbox is one `imported` placement.
            assert env.placements() == sum(len(k) for k in env.keys().values())
            ledger = env.runtime.table(env.runtime.settings.ledger_table)
            assert not [e for e in ledger.list_entities() if e.get("state") == "writing"]
        finally:
            set_runtime(None)


def test_a_lost_ledger_is_rebuilt_from_the_mailboxes_and_a_replay_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with stack_for(tmp_path, 60, 41) as stack:
        env = Env(stack)
        try:
            env.host.run_timer()
            env.drain()
            before = env.keys()
            written = sum(len(k) for k in before.values())
            assert written > 0

            # The storage account's ledger is gone (re-created, restored from nothing).
            name = env.runtime.settings.ledger_table
            env.runtime.table_service.delete_table(name)
            deadline = time.monotonic() + 30
            while True:
                try:
                    env.runtime.table_service.create_table(name)
                    break
                except Exception:  # noqa: BLE001 - Azurite may still be deleting it
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)

            assert cli(["ledger", "rebuild"]) == 0
            err = capsys.readouterr().err
            assert f"restored {written} ledger row(s)" in err
            rows = [e for e in env.runtime.table(name).list_entities()
                    if e["RowKey"] != "mailbox-covered"]
            assert len(rows) == written

            posts_before = sum(1 for r in env.graph.request_log if r.method == "POST")
            Replayer(env.runtime).days(DAY, DAY)
            env.drain()
            assert env.keys() == before  # 0 new messages in any mailbox
            assert sum(1 for r in env.graph.request_log if r.method == "POST") == posts_before
            counts = env.outcomes()
            assert counts[Outcome.IMPORTED.value] == 0 and counts[Outcome.DUPLICATE.value] > 0
        finally:
            set_runtime(None)
