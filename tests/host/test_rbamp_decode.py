"""CPython property test: rbamp.mw_at against exact rational arithmetic."""
import math
import struct
from fractions import Fraction

from hypothesis import given, settings, strategies as st

from rbamp import BAD, LIMIT_MW, mw_at


def fraction_ref(bits):
    x = struct.unpack("<f", struct.pack("<I", bits))[0]
    if math.isnan(x) or math.isinf(x):
        return BAD
    v = round(Fraction(x) * 1000)          # Python's round() on a Fraction is half-even
    return BAD if abs(v) > LIMIT_MW else v


@settings(max_examples=700, deadline=None)
@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_any_bit_pattern(bits):
    assert mw_at(struct.pack("<I", bits), 0) == fraction_ref(bits)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 1), st.integers(110, 146), st.integers(0, (1 << 23) - 1))
def test_relevant_exponents(sign, exp, frac):
    bits = sign << 31 | exp << 23 | frac
    assert mw_at(struct.pack("<I", bits), 0) == fraction_ref(bits)


@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=-60000, max_value=60000, width=32))
def test_float_values(x):
    b = struct.pack("<f", x)
    got = mw_at(b, 0)
    assert got == fraction_ref(struct.unpack("<I", b)[0])
    if got != BAD:
        assert abs(got - x * 1000) <= 0.5 + 1e-9
