"""Replay requests from the HTTP function: checked, capped, and run as jobs from the replay
queue (against Azurite)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from shared.clients import Runtime
from shared.outcomes import ItemOutcome, Outcome
from shared.pipeline import replay_request, run_replay_job
from shared.replay import MAX_BODY_BYTES, MAX_DAYS, MAX_NAMES
from shared.settings import Settings

pytestmark = pytest.mark.azurite
DAY = date(2026, 11, 25)


def post(rt: Runtime, body: object) -> tuple[int, dict[str, object]]:
    status, answer = replay_request(rt, json.dumps(body).encode())
    return status, json.loads(answer)


@pytest.fixture
def rt(storage_env: dict[str, str]) -> Runtime:
    return Runtime(Settings.from_env(storage_env))


@pytest.mark.parametrize("body, says", [
    ({"kind": "days", "from": DAY.isoformat(),
      "to": (DAY + timedelta(days=MAX_DAYS)).isoformat()}, "1 to 31 days"),
    ({"kind": "days", "from": "2026-11-25", "to": "2026-11-20"}, "1 to 31 days"),
    ({"kind": "days", "from": "0001-01-01", "to": "9999-12-31"}, "1 to 31 days"),
    ({"kind": "outcomes", "outcomes": ["imported"]}, "imported items are not replayed"),
    ({"kind": "outcomes", "outcomes": ["duplicate", "unmapped"]}, "duplicate items are not"),
    ({"kind": "outcomes", "outcomes": []}, "non-empty list"),
    ({"kind": "outcomes", "outcomes": ["unmapped"] * 50}, "non-empty list"),
    ({"kind": "export", "exports": [f"e{n}.zip" for n in range(MAX_NAMES + 1)]},
     "1 to 100 names"),
    ({"kind": "export", "exports": "e.zip"}, "1 to 100 names"),
    ({"kind": "export", "exports": ["x" * 1025]}, "1 to 1024 characters"),
    ({"kind": "item", "export": "e.zip", "member": 7}, "1 to 1024 characters"),
    ({"kind": "export", "exports": ["../app-package/x.zip"]}, "unsafe blob name"),
    ({"kind": "item", "export": "e.zip", "member": "../../x.eml"}, "unsafe blob name"),
    ({"kind": "outcomes", "outcomes": ["failed"], "exports": ["a//b.zip"]}, "unsafe blob"),
    ({"kind": "poison", "dry_run": "yes"}, "dry_run must be true or false"),
    ({"kind": "poison", "everything": True}, "unknown field(s) for poison: everything"),
    ({"kind": "job", "job": "../x"}, "bad replay request"),
    (["kind", "days"], "must be a JSON object"),
])
def test_requests_beyond_the_caps_are_refused_with_the_reason(
        rt: Runtime, body: object, says: str) -> None:
    status, answer = post(rt, body)
    assert status == 400 and says in str(answer["error"])
    assert "usage" in answer
    assert rt.queue(rt.settings.replay_queue).get_queue_properties().approximate_message_count \
        == 0


def test_an_oversized_body_is_refused_before_it_is_parsed(rt: Runtime) -> None:
    status, answer = replay_request(rt, b" " * (MAX_BODY_BYTES + 1))
    assert status == 400 and "over" in json.loads(answer)["error"]


def test_a_replay_is_a_job_on_the_replay_queue_whose_counts_can_be_read(rt: Runtime) -> None:
    export = "202611250000-TeleMessage_1_20261126003000.zip"
    for member in ("a.eml", "b.eml"):
        name = f"{export.removesuffix('.zip')}/{member}"
        rt.blob_service.get_container_client(rt.settings.items_container).upload_blob(name, b"x")
    rt.outcomes.record(ItemOutcome(export, "a.eml", Outcome.UNMAPPED))
    rt.outcomes.record(ItemOutcome(export, "b.eml", Outcome.IMPORTED))
    status, accepted = post(rt, {"kind": "outcomes", "outcomes": ["unmapped"],
                                 "exports": [export], "dry_run": True})
    assert status == 202 and accepted["status"] == "queued"
    job = str(accepted["job"])
    assert post(rt, {"kind": "job", "job": job}) == (200, accepted)

    [message] = rt.queue(rt.settings.replay_queue).receive_messages()
    result = run_replay_job(rt, message.content, dequeue_count=1)
    assert result.items == 1  # only the unmapped one
    status, done = post(rt, {"kind": "job", "job": job})
    assert status == 200 and done["status"] == "done"
    assert done["result"] == {"kind": "outcomes", "dry_run": True, "exports": [export],
                              "items": 1, "missing": []}


def test_a_job_that_keeps_failing_says_so_on_its_last_attempt(rt: Runtime) -> None:
    """E.g. a job queued by an older version whose request this one no longer accepts."""
    job = "00000000-0000-4000-8000-000000000001"
    body = json.dumps({"job": job, "request": {"kind": "days", "from": "2026-11-01",
                                               "to": "2026-12-31"}})
    with pytest.raises(ValueError):
        run_replay_job(rt, body, dequeue_count=1)
    assert post(rt, {"kind": "job", "job": job})[0] == 404  # retried: nothing recorded yet
    with pytest.raises(ValueError):
        run_replay_job(rt, body, dequeue_count=rt.settings.max_dequeue_count)
    status, state = post(rt, {"kind": "job", "job": job})
    assert status == 200 and state["status"] == "failed" and "31 days" in str(state["error"])


def test_one_item_is_replayed_at_once(rt: Runtime) -> None:
    status, answer = post(rt, {"kind": "item", "export": "e.zip", "member": "a.eml"})
    assert status == 200 and answer["missing"] == ["e.zip/a.eml"]


def test_an_unknown_job_is_404(rt: Runtime) -> None:
    assert post(rt, {"kind": "job", "job": "00000000-0000-4000-8000-00000000dead"})[0] == 404

