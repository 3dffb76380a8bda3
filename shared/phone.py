"""Mobile numbers to E.164, the one form numbers are compared and shown in."""

from __future__ import annotations

import re

import phonenumbers

_SEPARATORS = re.compile(r"[\s\-().]")


def to_e164(raw: str) -> str | None:
    """`+44 7700 900123`, `447700900123` and `0044-7700-900123` all give `+447700900123`.

    TeleMessage writes numbers with the country code and no plus sign, so a bare number is read
    as international. Returns None when the text is not a valid number.
    """
    text = _SEPARATORS.sub("", raw.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    elif not text.startswith("+"):
        text = "+" + text
    if not re.fullmatch(r"\+\d{6,15}", text):
        return None
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    # "Possible" (right length for a known country), not "valid": validity depends on which
    # ranges the library's metadata knows as allocated, and a real employee's number in a
    # newly opened range must not be refused.
    if not phonenumbers.is_possible_number(number) or \
            phonenumbers.region_code_for_country_code(number.country_code or 0) == "ZZ":
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

