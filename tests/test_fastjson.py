"""webhook.fastjson: orjson where it agrees with the standard library, the standard library elsewhere."""

import json
import re

import orjson
import pytest

from webhook import fastjson
from tests import synthetic as s


@pytest.mark.parametrize("text", [
    json.dumps(s.two_t3_medium_cluster()),
    '{"a": "caf\\u00e9 \\u2603", "b": [1, 2.5, -3, true, null], "c": {}}',
    '{"big": 123456789012, "neg": -9223372036854775808}',
    '{"surrogate": "\\ud800"}',          # orjson refuses lone surrogates: json.loads parses it
    '{"tiny": 1e-400, "max": 1.7976931348623157e308}',    # underflow is 0.0; the largest double is finite
    '{"huge": %d}' % 10 ** 399,          # orjson refuses (beyond a double): json.loads keeps the integer exact
])
def test_loads_gives_what_json_loads_gives(text):
    expected = json.loads(text)
    raw = text.encode("utf-8", "surrogatepass")
    for data in (text, raw, memoryview(raw)):        # memoryview: the fallback must take it too
        assert fastjson.loads(data) == expected


@pytest.mark.parametrize("text,why", [
    ('{"inf": 1e400}', "number 1e400 is out of range"),     # > 1.7976931348623157e308: float() gives inf
    ('[-1E+400]', "number -1E+400 is out of range"),
    ('{"replicas": 2.5e999}', "number 2.5e999 is out of range"),
    ('NaN', "NaN is not a JSON value"),
    ('[Infinity]', "Infinity is not a JSON value"),
    ('[-Infinity]', "-Infinity is not a JSON value"),
])
@pytest.mark.parametrize("with_orjson", [True, False])
def test_non_finite_numbers_are_refused_as_orjson_and_go_refuse_them(monkeypatch, text, why, with_orjson):
    # RFC 8259 has no NaN/Infinity; Go's encoding/json (strconv.ParseFloat) and orjson refuse a number
    # that overflows a double ("number is infinity when parsed as double"). Without orjson the standard
    # library path must refuse them too, never hand an inf or a nan to the engine.
    if not with_orjson:
        monkeypatch.setattr(fastjson, "orjson", None)
    else:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)
    for data in (text, text.encode(), memoryview(text.encode())):
        with pytest.raises(ValueError, match=re.escape(why)):
            fastjson.loads(data)


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
