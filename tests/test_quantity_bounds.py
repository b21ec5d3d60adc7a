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


@pytest.mark.parametrize("text", ["1e", "e", "1e3Ki", "1..5", "1.5.5", "--1", "1 Gi", "1gi", "", "   ",
                                  "1e9999999999999999999", "1e9223372036854775808", "1e-9223372036854775809",
                                  "0x10", "∞"])     # an exponent beyond int64: ErrSuffix; "" ErrFormatWrong
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
    with pytest.raises(QuantityError) as error:
        parse_quantity("z" * 41)
    assert str(error.value) == "invalid quantity '" + "z" * 37 + "...'"


def test_milli_and_units_round_up_from_the_exact_value():
    assert milli("1n") == 1 and milli("1001u") == 2 and milli("0.0005") == 1
    assert units("1.0000000001") == 2 and units("1023") == 1023 and units("1Ki") == 1024


# Worked from ParseQuantity: the value is exact, then a non-zero one is rounded UP (away from zero)
# to a whole nano-unit by amount.Round(amount, Nano, inf.RoundUp); only what is below 1n changes.
@pytest.mark.parametrize("text,value", [
    ("1.0000000001", Fraction(1_000_000_001, 10**9)),       # 1 + 1e-10 -> 1.000000001
    ("-1.0000000001", -Fraction(1_000_000_001, 10**9)),     # the magnitude rounds up, then the sign
    ("0.0000000015", Fraction(2, 10**9)),                   # 1.5n -> 2n
    ("1.5n", Fraction(2, 10**9)), ("0.1n", Fraction(1, 10**9)), ("5e-10", Fraction(1, 10**9)),
    ("2.000000001", Fraction(2_000_000_001, 10**9)),        # already whole nano-units: unchanged
    ("0.0000000001Ki", Fraction(103, 10**9)),               # 1e-10 x 1024 = 1.024e-7 -> 103n
    # 9e-28 x 2^60 = 1.0376...e-9 -> 2n: tiny digits times a big binary suffix are above 1n
    ("0.0000000000000000000000000009Ei", Fraction(2, 10**9)),
    ("0.0000000000000000000000000008Ei", Fraction(1, 10**9)),   # 8e-28 x 2^60 = 9.22e-10 -> 1n
])
def test_a_non_zero_value_rounds_up_to_a_whole_nano_unit(text, value):
    assert parse_quantity(text) == value


def test_digits_far_below_a_nano_unit_still_round_up_exactly():
    # 7 x 10^-9 / 2^60 has 52 significant digits; one unit less at the 70th decimal place is just
    # below it, so x Ei is just below 7n and rounds up to exactly 7n, not 8n.
    boundary = Fraction(7, 10**9) / 2**60
    just_below = boundary - Fraction(1, 10**70)
    digits = str(just_below.numerator * 10**70 // just_below.denominator).rjust(70, "0")
    text = "0." + digits + "Ei"
    assert Fraction(text[:-2]) == just_below
    assert parse_quantity(text) == Fraction(7, 10**9)
    assert parse_quantity("0." + digits + "1Ei") == Fraction(7, 10**9)       # still below 7n


# ParseQuantity reads the exponent as an int64 and converts it to the int32 scale of the amount:
# int32(4294967296) == 0, so "1e4294967296" is 1. Taking the fraction's digits off the scale is
# int32 arithmetic too ("1.5e-2147483648": -2147483648 - 1 wraps to 2147483647).
@pytest.mark.parametrize("text,value", [
    ("1e4294967296", 1),                         # 2^32 -> 0
    ("1e4294967297", 10),                        # 2^32 + 1 -> 1
    ("1e4294967295", Fraction(1, 10)),           # 2^32 - 1 -> -1
    ("1e-4294967295", 10),                       # -(2^32 - 1) -> 1
    ("2.5e4294967297", 25),                      # scale 1 - 1 digit after the point: 25 x 10^0
    ("1e9223372036854775807", Fraction(1, 10)),  # int64 max -> -1
    ("1e-9223372036854775808", 1),               # int64 min -> 0
    ("1e-1000000000000000000", 2**63 - 1),       # -10^18 -> int32 1486618624: 10^1486618624, capped
    ("1.5e-2147483648", 2**63 - 1),              # 15 x 10^2147483647: over any bound, capped
    ("1e-2147483649", 2**63 - 1),                # int32: 2147483647
    ("1e2147483647", 2**63 - 1),                 # no wrap, just huge
    ("1e-2147483647", Fraction(1, 10**9)),       # no wrap, just tiny: 1n (the API server's own inf.Dec
                                                 # rounding of it takes minutes)
])
def test_the_exponent_wraps_like_an_int32_scale(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["+", "-", ".", "m", "n", "Ki", "Ti", "-.Ki", "e3", "e-9", "e4294967287", "E", ".m",
                                  "+.e-5", "0Ei", "0.e-20"])
def test_a_quantity_without_digits_is_zero_as_parse_quantity_reads_it(text):
    # parseQuantityString: no digits before the point is the numerator "0", none after it an empty
    # denominator, and a known suffix after nothing is a valid zero on the int64 path (ParseInt("0")).
    assert parse_quantity(text) == 0


@pytest.mark.parametrize("text", ["Pi", "+Ei", ".Pi", "e-10", "-e-20", ".e-2147483648", "e2147483648"])
def test_a_quantity_without_digits_off_the_int64_path_is_refused(text):
    # The inf.Dec path parses the text before the suffix, which has no digit: ErrNumeric. It is taken
    # for a scale below nano (e-10; int32(2147483648) is -2147483648), and for Pi and Ei, whose precision
    # 15 - 1 - exponent*3/10 - 1 is negative (Ti: 15 - 1 - 12 - 1 = 1, still the int64 path).
    with pytest.raises(QuantityError):
        parse_quantity(text)


@pytest.mark.parametrize("text,value", [
    ("1e18", 10**18), ("999999999999999999", 10**18 - 1), ("9.223372036854775807e18", 2**63 - 1),
    ("9.223372036854775808e18", 2**63 - 1), ("1e19", 2**63 - 1), ("1E", 10**18), ("7.99Ei", Fraction(799 * 2**60, 100)),
    ("1e-9", Fraction(1, 10**9)), ("1e-10", Fraction(1, 10**9)), ("1.1e-9", Fraction(2, 10**9)),
])
def test_values_next_to_the_shortcut_bounds_are_exact(text, value):
    assert parse_quantity(text) == value
