from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableClient

from shared.outcomes import ItemOutcome, MailboxOutcome, Outcome, OutcomeStore

IMP, D, N, R = (MailboxOutcome.IMPORTED, MailboxOutcome.DUPLICATE, MailboxOutcome.NO_MAILBOX,
              MailboxOutcome.REJECTED)


@pytest.mark.parametrize(("per_mailbox", "expected"), [
    ({"a": IMP, "b": D}, Outcome.IMPORTED),
    ({"a": D, "b": D}, Outcome.DUPLICATE),
    ({"a": D, "b": N}, Outcome.DUPLICATE),
    ({"a": N}, Outcome.UNMAPPED),
    ({"a": IMP, "b": R}, Outcome.QUARANTINED),  # a refusal needs an admin even if others got it
])
def test_item_outcome_from_its_mailboxes(per_mailbox: dict[str, MailboxOutcome],
                                         expected: Outcome) -> None:
    assert ItemOutcome.combine(per_mailbox) is expected


class RefusesConnections(RequestsTransport):
    """The first `count` requests never connect (a reset while Azurite is overloaded)."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.left = count

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if self.left > 0:
            self.left -= 1
            raise ServiceRequestError("Connection reset by peer")
        return super().send(request, **kwargs)


@pytest.mark.azurite
def test_recording_an_outcome_outlasts_more_resets_than_the_sdk_retries(
        storage_env: dict[str, str]) -> None:
    transport = RefusesConnections(6)  # the SDK gives up after its 3 connection retries
    table = TableClient.from_connection_string(storage_env["AzureWebJobsStorage"],
                                               storage_env["OUTCOMES_TABLE"],
                                               transport=transport, retry_backoff_factor=0.01)
    store = OutcomeStore(table)
    store.record(ItemOutcome("e.zip", "m.eml", Outcome.IMPORTED, archive_key="k"))
    assert transport.left == 0
    [row] = store.for_export("e.zip")
    assert row.outcome is Outcome.IMPORTED and row.archive_key == "k"
