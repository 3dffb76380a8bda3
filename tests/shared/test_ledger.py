from typing import Any

import pytest
from azure.core.exceptions import ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient

from shared.clients import Runtime
from shared.ledger import ClaimConflict, Ledger, LedgerState
from shared.settings import Settings

pytestmark = pytest.mark.azurite


@pytest.fixture
def ledger(storage_env: dict[str, str]) -> Ledger:
    rt = Runtime(Settings.from_env(storage_env))
    return Ledger(rt.table(rt.settings.ledger_table), lease_seconds=60)


def test_claim_then_record_imported(ledger: Ledger) -> None:
    assert ledger.get("mb", "key/with#odd?chars") is None
    held = ledger.claim("mb", "key/with#odd?chars", None)
    assert held.state is LedgerState.WRITING and held.attempts == 1
    held = ledger.record("mb", "key/with#odd?chars", LedgerState.CREATED, "msg-1", held)
    ledger.record("mb", "key/with#odd?chars", LedgerState.IMPORTED, "msg-1", held)
    entry = ledger.get("mb", "key/with#odd?chars")
    assert entry is not None and entry.state is LedgerState.IMPORTED
    assert entry.message_id == "msg-1"


def test_two_workers_cannot_both_claim_a_new_item(ledger: Ledger) -> None:
    ledger.claim("mb", "k", None)
    with pytest.raises(ClaimConflict):
        ledger.claim("mb", "k", None)


def test_a_fresh_claim_blocks_others_until_it_expires(storage_env: dict[str, str]) -> None:
    rt = Runtime(Settings.from_env(storage_env))
    short = Ledger(rt.table(rt.settings.ledger_table), lease_seconds=-1)  # expires at once
    long = Ledger(rt.table(rt.settings.ledger_table), lease_seconds=60)
    long.claim("mb", "fresh", None)
    with pytest.raises(ClaimConflict, match="claimed for"):
        long.claim("mb", "fresh", long.get("mb", "fresh"))
    short.claim("mb", "stale", None)
    retaken = long.claim("mb", "stale", long.get("mb", "stale"))
    assert retaken.attempts == 2  # the second attempt knows the first may have written


def test_a_stale_etag_loses_the_race(ledger: Ledger) -> None:
    held = ledger.claim("mb", "k", None)
    ledger.record("mb", "k", LedgerState.CREATED, "m", held)
    with pytest.raises(ClaimConflict):
        ledger.record("mb", "k", LedgerState.IMPORTED, "m", held)  # held's etag is old


class LosesAnswers(RequestsTransport):
    """Sends each request, then loses the answer of the first `count` that match: the write
    happened, the client saw a reset (what Azurite did under load)."""

    def __init__(self, method: str, count: int) -> None:
        super().__init__()
        self._method = method
        self.left = count

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        response = super().send(request, **kwargs)
        if request.method == self._method and "ledger" in request.url and self.left > 0:
            self.left -= 1
            raise ServiceResponseError("Connection reset by peer")
        return response


def flaky_ledger(storage_env: dict[str, str], method: str, count: int) -> tuple[Ledger,
                                                                               LosesAnswers]:
    transport = LosesAnswers(method, count)
    table = TableClient.from_connection_string(storage_env["AzureWebJobsStorage"],
                                               storage_env["LEDGER_TABLE"], transport=transport)
    return Ledger(table, lease_seconds=60), transport


def test_an_insert_whose_answer_was_lost_is_retried_and_recognized(
        storage_env: dict[str, str]) -> None:
    ledger, transport = flaky_ledger(storage_env, "POST", 1)
    held = ledger.claim("mb", "k", None, "owner-a", 1)  # the retry meets its own row: 409
    assert transport.left == 0 and held.attempts == 1 and held.owner == "owner-a"
    ledger.record("mb", "k", LedgerState.IMPORTED, "m", held)
    entry = ledger.get("mb", "k")
    assert entry is not None and entry.state is LedgerState.IMPORTED


def test_an_update_whose_answer_was_lost_is_recognized(storage_env: dict[str, str]) -> None:
    ledger, transport = flaky_ledger(storage_env, "PUT", 1)
    held = ledger.claim("mb", "k", None, "owner-a", 1)
    ledger.record("mb", "k", LedgerState.IMPORTED, "m", held)  # the repeat PUT gets 412
    assert transport.left == 0
    entry = ledger.get("mb", "k")
    assert entry is not None and entry.state is LedgerState.IMPORTED


def test_someone_elses_row_is_still_a_conflict_after_a_reset(
        storage_env: dict[str, str]) -> None:
    plain = Ledger(Runtime(Settings.from_env(storage_env)).table(storage_env["LEDGER_TABLE"]))
    plain.claim("mb", "k", None, "owner-b", 1)
    ledger, _ = flaky_ledger(storage_env, "POST", 1)
    with pytest.raises(ClaimConflict):
        ledger.claim("mb", "k", None, "owner-a", 1)


def test_release_and_takeover(ledger: Ledger) -> None:
    held = ledger.claim("mb", "k", None, "owner-a", 1)
    with pytest.raises(ClaimConflict):
        ledger.claim("mb", "k", ledger.get("mb", "k"), "owner-b", 1)
    retaken = ledger.claim("mb", "k", ledger.get("mb", "k"), "owner-a", 2)
    assert retaken.attempts == 2  # so the writer asks Graph first
    ledger.release("mb", "k", retaken)
    ledger.release("mb", "k", held)  # a stale hold releases nothing
    entry = ledger.get("mb", "k")
    assert entry is not None and entry.claimed_until == 0 and entry.delivery == 2
    assert ledger.claim("mb", "k", entry, "owner-b", 1).attempts == 3


def test_restore_and_coverage(ledger: Ledger) -> None:
    assert not ledger.covered("mb")
    assert ledger.restore("mb", "k1", "m1")
    assert not ledger.restore("mb", "k1", "m1")
    ledger.claim("mb", "k2", None, "owner-a", 1)
    assert not ledger.restore("mb", "k2", "m2")  # a worker's row is left alone
    entry = ledger.get("mb", "k2")
    assert entry is not None and entry.state is LedgerState.WRITING
    ledger.mark_covered("mb", "rebuild")
    assert ledger.covered("mb") and not ledger.covered("other")
