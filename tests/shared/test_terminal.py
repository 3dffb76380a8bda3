"""Escaping text from exports for the admin's terminal."""

from __future__ import annotations

import json

from shared.terminal import printable, printable_json, printable_lines

CONTROLS = "\x1b[2J\x1b]0;title\x07\x9b1A\x7f\u202e\u2066\u2028\x00"


def test_a_field_keeps_no_control_character_not_even_a_newline() -> None:
    shown = printable(f"a{CONTROLS}\nb")
    assert shown.isprintable()
    assert shown.startswith("a\\x1b[2J\\x1b]0;title\\x07\\x9b1A\\x7f\\u202e") and "\\x0a" in shown


def test_lines_keep_their_newlines_only() -> None:
    assert printable_lines(f"one\ntwo{CONTROLS}").split("\n")[0] == "one"
    assert all(line.isprintable() for line in printable_lines(f"one\ntwo{CONTROLS}").split("\n"))


def test_json_stays_valid_and_equal_and_printable() -> None:
    value = {"name": f"Dana {CONTROLS}", "text": "שלום 👋\u200d", "n": [1, CONTROLS]}
    shown = printable_json(value)
    assert json.loads(shown) == value
    assert not any(c in shown for c in CONTROLS if not c.isprintable())
    assert "שלום 👋\u200d" in shown  # ordinary text, right-to-left and emoji, is left as it is
