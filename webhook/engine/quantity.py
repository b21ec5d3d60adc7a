"""Kubernetes resource quantities as exact integers.

The engine compares requests against allocatable capacity, so rounding must match the
scheduler's: CPU is counted in millicores and everything else in whole units (bytes,
pods), both rounded *up* as ``resource.Quantity.MilliValue()`` / ``Value()`` do.
Fractions are kept exact with ``Fraction`` until the final rounding.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_PATTERN = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")


class QuantityError(ValueError):
    """A quantity string that the Kubernetes API would reject."""


def parse_quantity(value: object) -> Fraction:
    """Return the exact value of a Kubernetes quantity (``"100m"``, ``"1.5Gi"``, ``2``)."""
    if isinstance(value, bool):
        raise QuantityError(f"invalid quantity {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    if not isinstance(value, str):
        raise QuantityError(f"invalid quantity {value!r}")
    match = _PATTERN.match(value.strip())
    if not match:
        raise QuantityError(f"invalid quantity {value!r}")
    number, exponent, suffix = match.groups()
    amount = Fraction(number)
    if exponent:
        amount *= Fraction(10) ** int(exponent[1:])
    elif suffix in _BINARY:
        amount *= _BINARY[suffix]
    elif suffix is not None:
        amount *= _DECIMAL[suffix]
    return amount


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
