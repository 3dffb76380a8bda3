"""Fault injection: Graph fails a share of requests with 429, 503, and 504 after actually
writing, over 2,000 items. Every mailbox must end with every item exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

import function_app
from devhost.host import LocalFunctionsHost
from devhost.stack import GRAPH_TOKEN, LocalStack
from shared.clients import Runtime, set_runtime
from shared.outcomes import Outcome
from shared.replay import Replayer
from shared.reports import all_reports
from shared.settings import Settings
from simulators.graph import FaultPlan
from tests.e2e.graph_reader import GraphReader
from tests.e2e.test_pipeline import ITEM_LIMITS, expected_keys

pytestmark = pytest.mark.e2e
DAY = datetime.now(UTC).date() - timedelta(days=1)
FAULTS = FaultPlan(throttle_ratio=0.08, unavailable_ratio=0.04,
                   gateway_timeout_after_write_ratio=0.06, retry_after_seconds=1,
                   only_methods=("POST", "PUT"))


def test_two_thousand_items_under_faults_none_lost_none_duplicated(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    stack = LocalStack(tmp_path_factory.mktemp("faults"), days=[DAY], items_per_day=2000,
                       employees=40, seed=21, telemessage_options=ITEM_LIMITS,
                       extra_env={"RETRY_BASE_SECONDS": "1", "RETRY_MAX_DELAY_SECONDS": "5"})
    with stack:
        assert stack.azurite and stack.graph and stack.telemessage
        stack.graph.set_faults(FAULTS)
        started = time.monotonic()
        runtime = Runtime(Settings.from_env())
        set_runtime(runtime)
        try:
            host = LocalFunctionsHost(function_app.app, stack.azurite.connection_string)
            host.run_timer()
            asyncio.run(host.run_until_idle(timeout=900))
            if Replayer(runtime).poison(dry_run=True).items:  # what an operator would do
                Replayer(runtime).poison()
                asyncio.run(host.run_until_idle(timeout=300))
        finally:
            set_runtime(None)
        print(f"2,000 items under faults processed in {time.monotonic() - started:.0f}s")
        faults = stack.graph.stats()["faults"]
        assert faults.get("429", 0) > 50 and faults.get("503", 0) > 20
        assert faults.get("504", 0) > 20  # writes that happened although Graph said 504

        outcomes: Counter[str] = Counter()
        for report in all_reports(runtime.state, runtime.outcomes):
            assert report.reconciled, report.discrepancy()
            outcomes.update(report.outcomes)
        assert sum(outcomes.values()) == 2000
        assert outcomes[Outcome.FAILED.value] == 0 and outcomes[Outcome.QUEUED.value] == 0

        reader = GraphReader(stack.graph.base_url, GRAPH_TOKEN)
        expected = expected_keys(stack, DAY)
        for user in stack.graph_users:
            if not user.mailbox_enabled:
                continue
            folder = reader.folder_id(user.user_principal_name, "Telegram Archiver")
            keys = [] if folder is None else [
                m.archive_key for m in reader.messages(user.user_principal_name, folder,
                                                       attachments=False)]
            assert len(keys) == len(set(keys)), f"duplicates in {user.user_principal_name}"
            assert set(keys) == expected.get(user.user_principal_name, set())
