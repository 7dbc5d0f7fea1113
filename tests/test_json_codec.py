"""The JSON codec keeps values exactly as received, and one record per line."""

from __future__ import annotations

import json

import pytest

from cc_collect_async import json_codec


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b'{"n":123456789012345678901234567890}', {"n": 123456789012345678901234567890}),
        (b'{"n":[1, -98765432109876543210]}', {"n": [1, -98765432109876543210]}),
        (b'{"t":"title \\ud83d"}', {"t": "title \ud83d"}),
        (b'{"t":"\\u4e2d\\u6587","n":1}', {"t": "中文", "n": 1}),
        # a long digit run inside a string takes the slow path and stays a string
        (b'{"id":"a:12345678901234567890"}', {"id": "a:12345678901234567890"}),
    ],
)
def test_loads_keeps_values(wire: bytes, expected: object) -> None:
    assert json_codec.loads(wire) == expected


@pytest.mark.parametrize("broken", [b'{"a":', b"", b"<html>", b'{"a":"\xff"}'])
def test_loads_raises_value_error_on_what_is_not_json(broken: bytes) -> None:
    with pytest.raises(ValueError):
        json_codec.loads(broken)


@pytest.mark.parametrize(
    "value",
    [
        {"n": 123456789012345678901234567890},
        {"t": "title \ud83d", "u": "\udc00 tail"},
        {"t": "a\u2028b\u2029c\x85d"},
        {"t": "中文 😀", "n": -1, "f": 1.5, "z": None, "l": [True, False]},
    ],
)
def test_dumps_line_round_trips_as_one_utf8_line(value: object) -> None:
    line = json_codec.dumps_line(value)
    assert line.endswith(b"\n")
    text = line.decode("utf-8")  # valid UTF-8 even for lone surrogates
    assert len(text.splitlines()) == 1
    assert json.loads(text) == value
    assert json_codec.loads(line) == value


def test_separators_are_escaped_not_raw() -> None:
    line = json_codec.dumps_line({"t": "a\u2028b\x85"})
    assert b"\\u2028" in line and b"\\u0085" in line
    assert "\u2028".encode() not in line


def test_float_spelling_is_normalised_but_the_value_kept() -> None:
    # Documented in json_codec and the README: the number survives, not its spelling.
    value = json_codec.loads(b'{"a":1.10,"b":1E2}')
    assert value == {"a": 1.1, "b": 100.0}
    assert json_codec.dumps(value) == b'{"a":1.1,"b":100.0}'


def test_dumps_indent_is_pretty_json() -> None:
    assert json_codec.dumps({"a": [1]}, indent=True) == b'{\n  "a": [\n    1\n  ]\n}'
