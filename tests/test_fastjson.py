"""webhook.fastjson: orjson where it agrees with the standard library, the standard library elsewhere."""

import json

import pytest

from webhook import fastjson
from tests import synthetic as s


@pytest.mark.parametrize("text", [
    json.dumps(s.two_t3_medium_cluster()),
    '{"a": "caf\\u00e9 \\u2603", "b": [1, 2.5, -3, true, null], "c": {}}',
    '{"big": 123456789012, "neg": -9223372036854775808}',
    '{"surrogate": "\\ud800"}',          # orjson refuses lone surrogates: json.loads parses it
    '{"inf": 1e400}',                    # orjson refuses: json.loads gives inf
    'NaN',
])
def test_loads_gives_what_json_loads_gives(text):
    expected = json.loads(text)
    raw = text.encode("utf-8", "surrogatepass")
    for data in (text, raw, memoryview(raw)):        # memoryview: the fallback must take it too
        got = fastjson.loads(data)
        assert got == expected or (got != got and expected != expected)   # NaN != NaN


@pytest.mark.parametrize("text", ['{"a": 1', '[1, 2,]', '{"a" 1}', '\n\n  {"x": tru}'])
def test_broken_json_raises_the_standard_error_with_its_position(text):
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        fastjson.loads(text)
    assert (got.value.msg, got.value.lineno, got.value.colno) == \
        (expected.value.msg, expected.value.lineno, expected.value.colno)


def test_invalid_utf8_bytes_raise_unicode_decode_error_as_json_does():
    with pytest.raises(UnicodeDecodeError):
        json.loads(b'{"a": "\xff"}')
    with pytest.raises(UnicodeDecodeError):
        fastjson.loads(b'{"a": "\xff"}')


@pytest.mark.parametrize("obj", [
    {"uid": "1", "allowed": True, "warnings": ["caf\u00e9", "x\ny"], "n": [1, 2.5, None]},
    {1: "int key"},                      # orjson refuses non-string keys: json writes "1"
    {"s": "\ud800"},                     # orjson refuses lone surrogates: json escapes it
    {"big": 2**70},
])
def test_dumps_compact_round_trips_like_json(obj):
    data = fastjson.dumps_compact(obj)
    data.decode("utf-8")                 # always valid UTF-8
    assert json.loads(data) == json.loads(json.dumps(obj))


def test_dumps_compact_uses_default_for_other_types():
    class Odd:
        def __str__(self):
            return "odd"
    assert json.loads(fastjson.dumps_compact({"x": Odd()}, default=str)) == {"x": "odd"}
