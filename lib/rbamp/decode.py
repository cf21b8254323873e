"""Decoding register bytes. `mw_at` turns a little-endian IEEE-754 binary32
watt value into correctly rounded integer milliwatts without creating a float
object and with every intermediate below 2**26, so it is allocation-free on
31-bit small-int ports (ESP32, RP2040)."""
import struct

try:
    from micropython import const
except ImportError:  # CPython
    def const(__x):
        return __x

BAD = const(-(1 << 30))          # invalid value sentinel (NaN, Inf, implausible)
LIMIT_MW = const(50_000_000)     # plausibility bound |p| <= 50 kW

_LIMIT = const(50_000_000)
_BAD = const(-(1 << 30))
# exponent field bounds: below 2**-11 W the value is < 0.49 mW (rounds to 0);
# at 2**16 W and above (incl. Inf/NaN, field 255) it is beyond the bound.
_E_ZERO = const(116)
_E_BIG = const(142)


def mw_at(b, o):
    """round_half_even(float32(b[o:o+4] LE) * 1000) as int mW, or BAD."""
    hi = b[o + 3] << 8 | b[o + 2]
    e = (hi >> 7) & 0xFF
    if e < _E_ZERO:
        return 0                                   # +-0, denormals, tiny values
    if e > _E_BIG:
        return _BAD
    m = ((hi & 0x7F) | 0x80) << 16 | b[o + 1] << 8 | b[o]   # 24-bit significand
    # x * 1000 = m * 1000 / 2**s; m*1000 needs 34 bits, so split m at bit 12:
    # m*1000 = a * 2**12 + c with a, c < 2**22.
    a = (m >> 12) * 1000
    c = (m & 0xFFF) * 1000
    s = 150 - e                                    # 8 <= s <= 34
    if s < 12:
        q = (a << (12 - s)) + (c >> s)
        r = c & ((1 << s) - 1)
        h = 1 << (s - 1)
        if r > h or (r == h and q & 1):
            q += 1
    else:
        a += c >> 12                               # now x*1000 = (a*2**12 + c)/2**s
        c &= 0xFFF
        k = s - 12
        q = a >> k
        if k == 0:
            if c > 0x800 or (c == 0x800 and q & 1):
                q += 1
        else:
            # remainder (r*2**12 + c) against half (h*2**12), compared piecewise
            r = a & ((1 << k) - 1)
            h = 1 << (k - 1)
            if r > h or (r == h and (c or q & 1)):
                q += 1
    if q > _LIMIT:
        return _BAD
    if hi & 0x8000:
        return -q
    return q


def decode_into(b, off, n, out):
    """Decode n consecutive float32 W values at b[off] into out[0..n-1] (mW)."""
    i = 0
    while i < n:
        out[i] = mw_at(b, off + 4 * i)
        i += 1


def f32_at(b, o):
    return struct.unpack_from("<f", b, o)[0]


def u16_at(b, o):
    return b[o] | b[o + 1] << 8


def u32_at(b, o):
    # may exceed a small int on 31-bit ports: human/diagnostic use only
    return b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24


def is_finite_f(x):
    return x == x and x - x == 0.0
