"""Replay and reports, end to end: poison queue, mapping fix, repeated export replays."""

from __future__ import annotations

import asyncio
import copy
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import function_app
from devhost.host import ROOT, LocalFunctionsHost
from devhost.stack import GRAPH_TOKEN, LocalStack
from shared.clients import Runtime, set_runtime
from shared.mapping_store import MappingStore
from shared.outcomes import Outcome
from shared.replay import Replayer
from shared.reports import all_reports
from shared.settings import Settings
from simulators.graph import FaultPlan
from tests.e2e.graph_reader import GraphReader

pytestmark = pytest.mark.e2e
DAY = datetime.now(UTC).date() - timedelta(days=1)


class Env:
    def __init__(self, stack: LocalStack) -> None:
        assert stack.azurite and stack.graph
        self.stack = stack
        self.runtime = Runtime(Settings.from_env())
        set_runtime(self.runtime)
        fast = copy.deepcopy(json.loads((ROOT / "host.json").read_text()))
        fast["extensions"]["queues"].update({"visibilityTimeout": "00:00:00",
                                             "maxDequeueCount": 2})
        self.host = LocalFunctionsHost(function_app.app, stack.azurite.connection_string,
                                       host_json=fast)
        self.reader = GraphReader(stack.graph.base_url, GRAPH_TOKEN)

    def drain(self) -> None:
        asyncio.run(self.host.run_until_idle(timeout=300))

    def outcomes(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for report in all_reports(self.runtime.state, self.runtime.outcomes):
            counts.update(report.outcomes)
        return counts

    def keys(self, upn: str) -> list[str]:
        folder = self.reader.folder_id(upn, "Telegram Archiver")
        return [] if folder is None else sorted(m.archive_key for m in
                                                self.reader.messages(upn, folder))

    def all_keys(self) -> dict[str, list[str]]:
        return {u.user_principal_name: self.keys(u.user_principal_name)
                for u in self.stack.graph_users if u.mailbox_enabled}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    stack = LocalStack(tmp_path_factory.mktemp("replay"), days=[DAY], items_per_day=60,
                       employees=12, seed=9,
                       extra_env={"MAX_DEQUEUE_COUNT": "2", "MAPPING_REFRESH_SECONDS": "0"},
                       telemessage_options={"oversize": 0, "large_attachments": 0,
                                            "encrypted": 0})
    with stack:
        yield Env(stack)
        set_runtime(None)


def test_failed_items_land_in_poison_then_replay_lands_them_once(env: Env) -> None:
    assert env.stack.graph
    env.stack.graph.set_faults(FaultPlan(unavailable_ratio=1.0))  # Graph refuses every write
    env.host.run_timer()
    env.drain()
    counts = env.outcomes()
    assert counts[Outcome.FAILED.value] > 0 and counts[Outcome.IMPORTED.value] == 0
    dry = Replayer(env.runtime).poison(dry_run=True)
    assert dry.items == counts[Outcome.FAILED.value]  # in the poison queue, none lost

    env.stack.graph.set_faults(FaultPlan())
    replayed = Replayer(env.runtime).poison()
    assert replayed.items == dry.items
    env.drain()
    after = env.outcomes()
    assert after[Outcome.FAILED.value] == 0 and after[Outcome.QUEUED.value] == 0
    for upn, keys in env.all_keys().items():
        assert len(keys) == len(set(keys)), upn
    assert Replayer(env.runtime).poison(dry_run=True).items == 0


def test_replaying_an_export_again_and_again_changes_nothing(env: Env) -> None:
    before = env.all_keys()
    rows_before = sum(len(env.runtime.outcomes.for_export(r.name))
                      for r in env.runtime.state.exports())
    exports = [r.name for r in env.runtime.state.exports()]
    for _ in range(2):
        Replayer(env.runtime).exports(exports)
        env.drain()
    assert env.all_keys() == before
    rows_after = sum(len(env.runtime.outcomes.for_export(name)) for name in exports)
    assert rows_after == rows_before  # no duplicate report entries
    assert env.outcomes()[Outcome.IMPORTED.value] == 0  # all duplicates now


def test_fixing_the_mapping_and_replaying_unmapped_imports_them(env: Env) -> None:
    unmapped_rows = [o for r in env.runtime.state.exports()
                     for o in env.runtime.outcomes.for_export(r.name)
                     if o.outcome is Outcome.UNMAPPED]
    assert unmapped_rows, "the simulated day should have items nobody maps to"
    target = next(u for u in env.stack.graph_users if u.mailbox_enabled)
    # Items whose participants have numbers the CSV can map (others only name users without
    # a mailbox, which the report lists as "(no mailbox)").
    fixable = [o for o in unmapped_rows if any(n.startswith("+") for n in o.unmapped)]
    numbers = sorted({n for o in fixable for n in o.unmapped if n.startswith("+")})
    csv = "External User ID,Microsoft 365 User Mailbox\n" + "".join(
        f"{n.lstrip('+')},{target.user_principal_name}\n" for n in numbers)
    MappingStore(env.runtime.blob_service, env.runtime.settings.mapping_blob).upload(csv)
    before = env.keys(target.user_principal_name)

    result = Replayer(env.runtime).outcomes({Outcome.UNMAPPED})
    assert result.items == len(unmapped_rows)
    assert fixable
    env.drain()
    after = env.keys(target.user_principal_name)
    assert set(before) < set(after)
    assert set(after) - set(before) == {o.archive_key for o in fixable}
    assert env.outcomes()[Outcome.UNMAPPED.value] == len(unmapped_rows) - len(fixable)


def test_http_replay_runs_as_a_job_of_the_replay_queue(env: Env) -> None:
    response = env.host.call_http("replay", body=json.dumps(
        {"kind": "days", "from": DAY.isoformat(), "to": DAY.isoformat(),
         "dry_run": True}).encode())
    assert response.status_code == 202
    job = json.loads(response.get_body())["job"]
    env.drain()  # the host's `replay_job` queue trigger runs it
    state = env.host.call_http("replay", body=json.dumps({"kind": "job", "job": job}).encode())
    answer = json.loads(state.get_body())
    assert state.status_code == 200 and answer["status"] == "done"
    result = answer["result"]
    assert result["dry_run"] is True and result["items"] == 60 and len(result["exports"]) == 1
    bad = env.host.call_http("replay", body=b'{"kind": "everything"}')
    assert bad.status_code == 400 and "unknown kind" in bad.get_body().decode()
    imported = env.host.call_http("replay", body=b'{"kind": "outcomes", "outcomes": '
                                                 b'["imported"]}')
    assert imported.status_code == 400


def test_published_reports_reconcile_and_land_in_the_reports_container(env: Env) -> None:
    from shared.pipeline import publish_reports_now

    documents = publish_reports_now(env.runtime)
    assert documents and all(d["status"] == "complete" for d in documents)
    assert all(d["timings"]["last_outcome_at"] >= d["timings"]["first_outcome_at"]
               for d in documents)
    container = env.runtime.blob_service.get_container_client(
        env.runtime.settings.reports_container)
    names = {b.name for b in container.list_blobs()}
    assert f"days/{DAY.isoformat()}.json" in names
    day = json.loads(container.download_blob(f"days/{DAY.isoformat()}.json").readall())
    assert day["reconciled"] is True and day["total"] == day["manifest_count"] == 60
    page = container.download_blob(f"days/{DAY.isoformat()}.html").readall().decode()
    assert '<b data-figure="total">60</b>' in page and 'data-value="true"' in page
    # Import recorded each item's capture time, so the page has the lag from capture to mailbox.
    imported = day["outcomes"].get("imported", 0)
    assert imported and f"over {imported} imported item(s)" in page
