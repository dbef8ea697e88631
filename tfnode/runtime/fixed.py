"""``Fixed``: a fixed-point decimal with integer internals, for contracts (no floats anywhere).

A value is ``units / 10**scale`` with ``units`` an int and ``scale`` in 0..MAX_SCALE. Sums and
differences take the larger scale exactly. Products and quotients keep the left operand's
scale and round half-to-even, the banker's rounding used in settlement; ``div`` is a method
because contracts may not use ``/``.

    >>> Fixed("12.50") * Fixed("0.1")
    Fixed('1.25')
"""

from __future__ import annotations

from tfnode.runtime.cost import L

MAX_SCALE = 36
# Bound the integer part so a contract cannot build a 10**(10**6)-sized value by repeated
# multiplication: every result is checked against this many bits.
MAX_UNITS_BITS = 512


def _round_div(n: int, d: int) -> int:
    """n / d rounded half to even (d > 0)."""
    q, r = divmod(n, d)
    twice = 2 * r
    if twice > d or (twice == d and q & 1):
        q += 1
    return q


class Fixed:
    __slots__ = ("_scale", "_units")
    _scale: int
    _units: int

    def __init__(self, value="0", scale: int | None = None):
        if type(value) is Fixed:
            units, sc = value._units, value._scale
        elif type(value) is int:
            units, sc = value, 0
        elif type(value) is str:
            units, sc = _parse(value)
        else:
            raise TypeError("Fixed() takes an int, a decimal string or a Fixed")
        if scale is not None:
            units, sc = _rescale(units, sc, scale), scale
        _check(units, sc)
        self._units = units
        self._scale = sc

    @classmethod
    def from_units(cls, units: int, scale: int) -> Fixed:
        if type(units) is not int or type(scale) is not int:
            raise TypeError("units and scale must be int")
        _check(units, scale)
        f = object.__new__(cls)
        f._units = units
        f._scale = scale
        return f

    @property
    def units(self) -> int:
        return self._units

    @property
    def scale(self) -> int:
        return self._scale

    def rescale(self, scale: int) -> Fixed:
        return Fixed.from_units(_rescale(self._units, self._scale, scale), scale)

    def to_int(self) -> int:
        """Truncate toward zero."""
        d = 10**self._scale
        q = abs(self._units) // d
        return q if self._units >= 0 else -q

    def _align(self, other):
        if type(other) is int:
            other = Fixed.from_units(other * 10**self._scale, self._scale)
        elif type(other) is not Fixed:
            return None
        sc = max(self._scale, other._scale)
        return (self._units * 10 ** (sc - self._scale), other._units * 10 ** (sc - other._scale), sc)

    def __add__(self, other):
        a = self._align(other)
        if a is None:
            return NotImplemented
        return Fixed.from_units(a[0] + a[1], a[2])

    __radd__ = __add__

    def __sub__(self, other):
        a = self._align(other)
        if a is None:
            return NotImplemented
        return Fixed.from_units(a[0] - a[1], a[2])

    def __rsub__(self, other):
        a = self._align(other)
        if a is None:
            return NotImplemented
        return Fixed.from_units(a[1] - a[0], a[2])

    def __mul__(self, other):
        if type(other) is int:
            return Fixed.from_units(self._units * other, self._scale)
        if type(other) is not Fixed:
            return NotImplemented
        return Fixed.from_units(_round_div(self._units * other._units, 10**other._scale), self._scale)

    __rmul__ = __mul__

    def div(self, other, scale: int | None = None) -> Fixed:
        """self / other at ``scale`` (default: self's scale), rounded half to even."""
        sc = self._scale if scale is None else scale
        if type(other) is int:
            other = Fixed.from_units(other, 0)
        if type(other) is not Fixed:
            raise TypeError("Fixed.div takes a Fixed or an int")
        if other._units == 0:
            raise ZeroDivisionError("Fixed division by zero")
        num = self._units * 10 ** (sc + other._scale)
        den = other._units * 10**self._scale
        if den < 0:
            num, den = -num, -den
        return Fixed.from_units(_round_div(num, den), sc)

    def __neg__(self):
        return Fixed.from_units(-self._units, self._scale)

    def __abs__(self):
        return Fixed.from_units(abs(self._units), self._scale)

    def _cmp(self, other):
        a = self._align(other)
        if a is None:
            return None
        return (a[0] > a[1]) - (a[0] < a[1])

    def __eq__(self, other):
        c = self._cmp(other)
        return NotImplemented if c is None else c == 0

    def __lt__(self, other):
        c = self._cmp(other)
        return NotImplemented if c is None else c < 0

    def __le__(self, other):
        c = self._cmp(other)
        return NotImplemented if c is None else c <= 0

    def __gt__(self, other):
        c = self._cmp(other)
        return NotImplemented if c is None else c > 0

    def __ge__(self, other):
        c = self._cmp(other)
        return NotImplemented if c is None else c >= 0

    def __hash__(self):
        # Equal values at different scales must hash alike: normalise trailing zeros.
        u, s = self._units, self._scale
        while s and u % 10 == 0:
            u //= 10
            s -= 1
        return hash((u, s))

    def __bool__(self):
        return self._units != 0

    def __str__(self):
        u, s = self._units, self._scale
        sign = "-" if u < 0 else ""
        u = abs(u)
        if s == 0:
            return f"{sign}{u}"
        digits = str(u).rjust(s + 1, "0")
        return f"{sign}{digits[:-s]}.{digits[-s:]}"

    def __repr__(self):
        return f"Fixed('{self}')"


# Characters of the text Fixed() parses, checked before the text is looked at, so a megabyte
# of spaces costs nothing to refuse.
MAX_TEXT = L["fixed_text"]


def _parse(text: str):
    if len(text) > MAX_TEXT:
        raise ValueError(f"not a decimal: more than {MAX_TEXT} characters")
    t = text.strip()
    neg = t.startswith("-")
    if t[:1] in "+-":
        t = t[1:]
    whole, dot, frac = t.partition(".")
    if not whole.isdigit() and not (whole == "" and frac):
        raise ValueError(f"not a decimal: {text!r}")
    if dot and not frac.isdigit():
        raise ValueError(f"not a decimal: {text!r}")
    if not (whole + frac).isascii() or len(whole) + len(frac) > 160:
        raise ValueError(f"not a decimal: {text!r}")
    units = int((whole or "0") + frac)
    return (-units if neg else units), len(frac)


def _rescale(units: int, sc: int, new: int) -> int:
    if type(new) is not int or not 0 <= new <= MAX_SCALE:
        raise ValueError(f"scale must be in 0..{MAX_SCALE}")
    if new >= sc:
        return units * 10 ** (new - sc)
    return _round_div(units, 10 ** (sc - new))


def _check(units: int, scale: int) -> None:
    if not 0 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be in 0..{MAX_SCALE}")
    if units.bit_length() > MAX_UNITS_BITS:
        raise OverflowError(f"Fixed value exceeds {MAX_UNITS_BITS} bits")
