"""Quantity parsing at the bounds apimachinery sets (k8s.io/apimachinery@v0.33.13
pkg/api/resource/quantity.go ``ParseQuantity``): binary-suffixed values are capped at
2^63-1 (``maxAllowed``), non-zero values below one nano-unit round up to 1n, exponents must
parse as integers. Values are exact Fractions in between."""

from fractions import Fraction

import pytest

from webhook.engine.quantity import QuantityError, milli, parse_quantity, units


@pytest.mark.parametrize("text,value", [
    ("7Ei", 7 * 2**60),
    ("8Ei", 2**63 - 1),                         # 2^63: over maxAllowed, capped
    ("9223372036854775807", 2**63 - 1),
    ("0.000000000001", Fraction(1, 10**9)),     # 1e-12: rounded up to 1n
    ("1e-9", Fraction(1, 10**9)),
    ("-1e-12", -Fraction(1, 10**9)),
    ("0Ki", 0), ("0.000", 0), ("-0", 0), ("000.000m", 0),
    ("1.5Ki", 1536), ("0.5Mi", 2**19), ("1e3", 1000), ("1E3", 1000), ("1e+3", 1000), ("5e-1", Fraction(1, 2)),
    (" 100m ", Fraction(1, 10)),
])
def test_parse_quantity_at_the_bounds(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["1e", "e3", "1e3Ki", "Ki", ".", "1..5", "1.5.5", "--1", "1 Gi", "1gi",
                                  "1e9999999999999999999", "0x10", "∞"])     # an exponent beyond int64: ErrSuffix
def test_strings_the_api_server_refuses(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_an_error_shows_at_most_40_characters_of_the_value():
    with pytest.raises(QuantityError) as error:
        parse_quantity("x" * 100)
    assert str(error.value) == "invalid quantity '" + "x" * 37 + "...'"
    with pytest.raises(QuantityError) as error:
        parse_quantity("y" * 40)
    assert str(error.value) == "invalid quantity '" + "y" * 40 + "'"


def test_milli_and_units_round_up_from_the_exact_value():
    assert milli("1n") == 1 and milli("1001u") == 2 and milli("0.0005") == 1
    assert units("1.0000000001") == 2 and units("1023") == 1023 and units("1Ki") == 1024
