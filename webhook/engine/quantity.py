"""Kubernetes resource quantities as exact integers, bounded as the API server bounds them.

The engine compares requests against allocatable capacity, so rounding must match the
scheduler's: CPU is counted in millicores and everything else in whole units (bytes,
pods), both rounded *up* as ``resource.Quantity.MilliValue()`` / ``Value()`` do.
Fractions are kept exact with ``Fraction`` until the final rounding.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}          # powers of two
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_PATTERN = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")

# apimachinery's resource.ParseQuantity (k8s.io/apimachinery@v0.33.13 pkg/api/resource/quantity.go):
# the exponent of "1e<N>" must parse as an int64 (else ErrSuffix) and is then used as an int32
# scale, wrapping around ("1e4294967296" is 1); binary quantities are capped at maxAllowed =
# 2^63-1; a non-zero value is rounded *up* to a whole nano-unit. The scheduler then reads int64
# MilliValue()/Value(). So no quantity the cluster can act on is larger than 2^63-1 units:
# everything beyond is the same "more than any node has", and computing 10^9999999 exactly (what
# "1e9999999" would need) only burns CPU.
MAX_VALUE = 2**63 - 1
_INT64_DIGITS = 19                    # an exponent of more digits cannot parse as an int64
_NANO_DIGITS = 9                      # values are rounded up to a multiple of 10^-9
_NANO = Fraction(1, 10**_NANO_DIGITS)


class QuantityError(ValueError):
    """A quantity string that the Kubernetes API would reject."""


def _int32(number: int) -> int:
    """``number`` as Go's int32 conversion (and int32 arithmetic) leaves it: wrapped modulo 2^32."""
    wrapped = number % 2**32
    return wrapped - 2**32 if wrapped >= 2**31 else wrapped


def _decimal_power(exponent: str, fraction: str, value: str) -> int:
    """The power of ten of ``<digits>e<exponent>`` as ParseQuantity computes it.

    The exponent is an int64 converted to the int32 scale of the amount, and the digits after the
    point are taken off that scale in int32 arithmetic too: ``10**(len(fraction) - exponent)``
    wraps exactly as ``int32(len(fraction) - int32(exponent))`` does.
    """
    digits = exponent.lstrip("+-").lstrip("0")
    if len(digits) > _INT64_DIGITS or not -2**63 <= int(exponent) <= 2**63 - 1:
        raise QuantityError(f"invalid quantity {_show(value)}: exponent out of range")
    return len(fraction) - _int32(len(fraction) - int(exponent))


def parse_quantity(value: object) -> Fraction:
    """Return the value of a Kubernetes quantity (``"100m"``, ``"1.5Gi"``, ``2``), as the API reads it.

    Exact, then rounded up to a whole nano-unit, for every quantity up to 2^63-1 units; larger
    magnitudes are capped at 2^63-1, so the cost of a quantity does not grow with its exponent or
    its number of digits. As ParseQuantity, a quantity without digits ("m", ".", "+") is mostly zero.
    """
    if isinstance(value, bool):
        raise QuantityError(f"invalid quantity {value!r}")
    if isinstance(value, int):
        return Fraction(max(-MAX_VALUE, min(MAX_VALUE, value)))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"invalid quantity {value!r}")
        value = repr(value)
    if not isinstance(value, str):
        raise QuantityError(f"invalid quantity of type {type(value).__name__}")
    text = value.strip()                       # Quantity.UnmarshalJSON trims spaces
    match = _PATTERN.match(text)
    if not match or not text:
        raise QuantityError(f"invalid quantity {_show(value)}")
    sign, whole, fraction, exponent, suffix = match.groups()
    fraction = fraction or ""
    if exponent is not None:
        power10, power2 = _decimal_power(exponent, fraction, value), 0
    elif suffix in _BINARY:
        power10, power2 = 0, _BINARY[suffix]
    else:
        power10, power2 = _DECIMAL[suffix or ""], 0
    if not (whole or fraction):
        # No digit at all: ParseQuantity's int64 path reads the number as 0, but its inf.Dec path (a
        # scale below nano, or a Pi/Ei multiplier that leaves no int64 precision) cannot parse it.
        if power2 >= 50 or (exponent is not None and _int32(int(exponent)) < -_NANO_DIGITS):
            raise QuantityError(f"invalid quantity {_show(value)}: no digits")
        return Fraction(0)
    significant = (whole + fraction).lstrip("0")
    if not significant:
        return Fraction(0)
    # the position of the first significant digit, as a power of ten of the final value
    leading = len(whole.lstrip("0")) - 1 if whole.lstrip("0") else -(len(fraction) - len(fraction.lstrip("0"))) - 1
    magnitude = leading + power10 + (power2 * 3) // 10     # 2^p >= 10^(3p//10), and < 10^(3p//10 + 0.07) for p <= 60
    if magnitude > 18:                         # at least 10^19: over 2^63-1
        amount = Fraction(MAX_VALUE)
    elif magnitude < -10:                      # below 1.2 x 10^-10: under one nano-unit
        amount = _NANO
    else:
        # A nano-unit of the result is 5^power2 x 10^-(9 + power2) of the digits' value, so digits
        # below 10^-(9 + power2) only decide whether to round up: keep the others, round the rest up.
        # (keep >= 0: magnitude >= -10 makes leading + power10 >= -10 - 3 * power2 // 10.)
        keep = leading + power10 + _NANO_DIGITS + power2 + 1
        kept, dropped = significant[:keep], significant[keep:]
        mantissa = int(kept or "0") + (1 if dropped.strip("0") else 0)
        shift = leading + 1 - len(kept) + power10                      # value = mantissa * 10^shift * 2^power2
        amount = Fraction(mantissa * 2**power2) * (Fraction(10) ** shift)
        amount = Fraction(math.ceil(amount * 10**_NANO_DIGITS), 10**_NANO_DIGITS)
        amount = min(amount, Fraction(MAX_VALUE))
    return -amount if sign == "-" else amount


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def milli(value: object) -> int:
    """Millicores of a CPU quantity, rounded up like ``Quantity.MilliValue()``."""
    return math.ceil(parse_quantity(value) * 1000)


def units(value: object) -> int:
    """Whole units (bytes, pods) of a quantity, rounded up like ``Quantity.Value()``."""
    return math.ceil(parse_quantity(value))


def format_cpu(millicores: int) -> str:
    """``1500`` -> ``"1500m"``, ``2000`` -> ``"2"``: how kubectl would show it."""
    return f"{millicores // 1000}" if millicores % 1000 == 0 else f"{millicores}m"


def format_bytes(amount: int) -> str:
    """Bytes in the largest binary unit that keeps one decimal, e.g. ``"1.5Gi"``."""
    for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if abs(amount) >= size:
            value = amount / size
            return f"{value:.0f}{suffix}" if value == int(value) else f"{value:.1f}{suffix}"
    return str(amount)
