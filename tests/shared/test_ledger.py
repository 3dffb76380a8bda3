import pytest

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
