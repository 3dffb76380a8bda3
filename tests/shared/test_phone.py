import pytest

from shared.phone import to_e164


@pytest.mark.parametrize("raw", ["+44 7700 900123", "447700900123", "0044-7700-900123",
                                 "(+44) 7700-900-123"])
def test_spellings_of_one_uk_mobile_normalize_alike(raw: str) -> None:
    assert to_e164(raw) == "+447700900123"


def test_israeli_mobile_in_telemessage_form() -> None:
    assert to_e164("972541234567") == "+972541234567"


@pytest.mark.parametrize("raw", ["", "abc", "12", "+999 123", "4477009001234567890"])
def test_invalid_numbers_give_none(raw: str) -> None:
    assert to_e164(raw) is None

