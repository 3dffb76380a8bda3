"""End to end with 3 worker processes draining the same items queue, as Azure instances do:
nothing lost, nothing duplicated, every report reconciled, and Graph's 4 requests per mailbox
kept across the processes (no 429 from the simulator, which enforces the limit)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import function_app
from devhost.host import HostStats, LocalFunctionsHost
from devhost.stack import GRAPH_TOKEN, LocalStack
from devhost.workers import QueueWorkers
from shared.clients import Runtime, set_runtime
from shared.reports import all_reports
from shared.settings import Settings
from tests.e2e.graph_reader import GraphReader
from tests.e2e.test_pipeline import DAY, FOLDER, expected_keys

pytestmark = pytest.mark.e2e


@dataclass
class Run:
    stack: LocalStack
    runtime: Runtime
    host: LocalFunctionsHost
    workers: list[HostStats]
    reader: GraphReader


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    # Few mailboxes and a Graph latency: each mailbox has work in every process at once.
    stack = LocalStack(tmp_path_factory.mktemp("workers"), days=[DAY], items_per_day=240,
                       employees=8, seed=11, graph_latency=0.05,
                       telemessage_options={"oversize": 0, "large_attachments": 1,
                                            "encrypted": 0, "max_items_per_zip": 100})
    with stack:
        assert stack.azurite and stack.graph
        runtime = Runtime(Settings.from_env())
        set_runtime(runtime)
        host = LocalFunctionsHost(function_app.app, stack.azurite.connection_string)
        workers = QueueWorkers(2).start()
        workers.go()
        try:
            host.run_timer()
            asyncio.run(host.run_until_idle(timeout=600, settle=2.0))
        finally:
            stats = workers.stop()
        yield Run(stack, runtime, host, stats, GraphReader(stack.graph.base_url, GRAPH_TOKEN))
        host.close()
        set_runtime(None)


def test_all_three_processes_imported_items(run: Run) -> None:
    invocations = [run.host.stats.queue_invocations, *(s.queue_invocations for s in run.workers)]
    assert len(invocations) == 3
    assert all(n > 10 for n in invocations), invocations


def test_every_item_is_in_exactly_the_right_mailboxes_once(run: Run) -> None:
    expected = expected_keys(run.stack, DAY)
    usable = {u.user_principal_name for u in run.stack.graph_users if u.mailbox_enabled}
    assert sum(len(keys) for keys in expected.values()) > 200
    for upn in sorted(usable):
        folder = run.reader.folder_id(upn, FOLDER)
        keys = [] if folder is None else [m.archive_key for m in run.reader.messages(upn, folder)]
        assert len(keys) == len(set(keys)), f"duplicates in {upn}"
        assert set(keys) == expected.get(upn, set()), f"wrong items in {upn}"


def test_every_report_reconciles(run: Run) -> None:
    reports = all_reports(run.runtime.state, run.runtime.outcomes)
    assert len(reports) == 3
    for report in reports:
        assert report.reconciled, report.discrepancy()
        assert report.manifest_count == report.total


def test_graph_never_saw_more_than_four_requests_on_a_mailbox(run: Run) -> None:
    assert run.stack.graph
    assert run.stack.graph.stats()["throttled"] == 0
    usable = [u for u in run.stack.graph_users if u.mailbox_enabled]
    peaks = [run.stack.graph.max_concurrency(u.user_principal_name) for u in usable]
    assert max(peaks) == 4  # the limit was reached, never passed
