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
# scale; binary quantities are capped at maxAllowed = 2^63-1; a non-zero value is rounded *up*
# to a whole nano-unit. The scheduler then reads int64 MilliValue()/Value(). So no quantity
# the cluster can act on is larger than 2^63-1 units: everything beyond is the same "more than
# any node has", and computing 10^9999999 exactly (what "1e9999999" would need) only burns CPU.
MAX_VALUE = 2**63 - 1
MAX_EXPONENT = 2**31 - 1              # the int32 scale of inf.Dec
_MAX_DIGITS = 21                      # beyond 10^21 units (> 2^63-1 milli-units): capped
_NANO = Fraction(1, 10**9)
_KEPT_DIGITS = 60                     # significant digits kept exactly (the rest round up)


class QuantityError(ValueError):
    """A quantity string that the Kubernetes API would reject."""


def parse_quantity(value: object) -> Fraction:
    """Return the value of a Kubernetes quantity (``"100m"``, ``"1.5Gi"``, ``2``), bounded as the API's.

    Exact for every quantity up to 2^63-1 units; larger magnitudes are capped at 2^63-1 and
    non-zero magnitudes below one nano-unit become one nano-unit, so the cost of a quantity
    does not grow with its exponent or its number of digits.
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
    match = _PATTERN.match(value.strip())
    if not match or not (match.group(2) or match.group(3)):
        raise QuantityError(f"invalid quantity {_show(value)}")
    sign, whole, fraction, exponent, suffix = match.groups()
    fraction = fraction or ""
    if exponent is not None:
        digits = exponent.lstrip("+-").lstrip("0")
        if len(digits) > 10 or abs(int(exponent)) > MAX_EXPONENT:
            raise QuantityError(f"invalid quantity {_show(value)}: exponent out of range")
        power10, power2 = int(exponent), 0
    elif suffix in _BINARY:
        power10, power2 = 0, _BINARY[suffix]
    else:
        power10, power2 = _DECIMAL[suffix or ""], 0
    significant = (whole + fraction).lstrip("0")
    if not significant:
        return Fraction(0)
    # the position of the first significant digit, as a power of ten of the final value
    leading = len(whole.lstrip("0")) - 1 if whole.lstrip("0") else -(len(fraction) - len(fraction.lstrip("0"))) - 1
    magnitude = leading + power10 + (power2 * 3) // 10
    negative = sign == "-"
    if magnitude > _MAX_DIGITS:
        amount = Fraction(MAX_VALUE)
    elif magnitude < -12:
        amount = _NANO
    else:
        kept, dropped = significant[:_KEPT_DIGITS], significant[_KEPT_DIGITS:]
        mantissa = int(kept) + (1 if dropped.strip("0") else 0)      # rounding the dropped digits up
        shift = leading + 1 - len(kept) + power10                      # value = mantissa * 10^shift * 2^power2
        amount = Fraction(mantissa * 2**power2) * (Fraction(10) ** shift)
        amount = min(amount, Fraction(MAX_VALUE))
        amount = max(amount, _NANO)
    return -amount if negative else amount


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
