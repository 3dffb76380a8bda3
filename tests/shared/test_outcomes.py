import pytest

from shared.outcomes import ItemOutcome, MailboxOutcome, Outcome

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
