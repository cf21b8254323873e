"""float32 -> int mW decode: exact against big-integer reference arithmetic
on every runtime, plus the allocation-free proof on 32-bit ports."""
import struct

import mptest
from rbamp import BAD, LIMIT_MW, mw_at
from rbamp.decode import decode_into, u16_at, u32_at


def ref_mw(bits):
    """Exact round_half_even(float32(bits) * 1000) in mW, or BAD."""
    e = (bits >> 23) & 0xFF
    f = bits & 0x7FFFFF
    if e == 0xFF:
        return BAD
    if e == 0:
        m, s = f, 149                      # denormal: f * 2**-149
    else:
        m, s = f | 0x800000, 150 - e       # normal: m * 2**(e-150)
    n = m * 1000
    if s <= 0:
        q = n << (-s)
    else:
        q = n >> s
        r = n - (q << s)
        half = 1 << (s - 1)
        if r > half or (r == half and q & 1):
            q += 1
    if q > LIMIT_MW:
        return BAD
    return -q if bits >> 31 else q


def pack(bits):
    return bytes((bits & 0xFF, (bits >> 8) & 0xFF, (bits >> 16) & 0xFF, (bits >> 24) & 0xFF))


def bits_of(x):
    b = struct.pack("<f", x)
    return b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24


def check(bits):
    got = mw_at(pack(bits), 0)
    want = ref_mw(bits)
    assert got == want, "bits 0x%08X: got %d want %d" % (bits, got, want)
    mptest.small(got)
    return got


def test_known_values():
    assert mw_at(struct.pack("<f", 1500.0), 0) == 1_500_000
    assert mw_at(struct.pack("<f", -800.0), 0) == -800_000
    assert mw_at(struct.pack("<f", 0.0625), 0) == 62          # 62.5 tie -> even
    assert mw_at(struct.pack("<f", 0.1875), 0) == 188         # 187.5 tie -> even
    assert mw_at(struct.pack("<f", -0.0625), 0) == -62
    assert mw_at(struct.pack("<f", 50000.0), 0) == 50_000_000
    assert mw_at(struct.pack("<f", -50000.0), 0) == -50_000_000
    assert mw_at(struct.pack("<f", 1.0), 0) == 1000
    assert mw_at(struct.pack("<f", 0.001), 0) == 1
    # 0.1 W as float32 is 0.100000001490116... -> 100 mW
    assert mw_at(struct.pack("<f", 0.1), 0) == 100


def test_edges():
    edge = [
        0x00000000, 0x80000000,                 # +-0
        0x00000001, 0x807FFFFF, 0x00400000,     # denormals
        0x00800000, 0x80800000,                 # smallest normals
        0x7F800000, 0xFF800000,                 # +-Inf
        0x7FC00000, 0xFFC00000, 0x7F800001,     # NaNs
        0x7F7FFFFF, 0xFF7FFFFF,                 # largest finite
        0x3F800000,
    ]
    for x in (0.0005, -0.0005, 0.0015, 0.0025, 0.5, 49999.996, 50000.0, -50000.0, 50000.004,
              32768.0, 65536.0, 4096.0, 2048.0, 1.0 / 2048, 1.0 / 1024):
        b = bits_of(x)
        for d in (-3, -2, -1, 0, 1, 2, 3):
            edge.append((b + d) & 0xFFFFFFFF)
    # every exponent around the decision bounds, extreme significands
    for e in range(100, 160):
        for f in (0, 1, 0x400000, 0x7FFFFF, 0x3FFFFF, 0x000FFF, 0x001000):
            edge.append(e << 23 | f)
            edge.append(0x80000000 | e << 23 | f)
    for b in edge:
        check(b)
    assert mw_at(pack(0x7FC00000), 0) == BAD
    assert mw_at(pack(0xFF800000), 0) == BAD
    assert mw_at(pack(0x80000000), 0) == 0
    assert mw_at(pack(bits_of(50000.004)), 0) == BAD


def test_half_milliwatt_boundary():
    # the largest float32 below 0.0005 W rounds to 0, the one above to 1 mW
    b = bits_of(0.0005)
    lo, hi = b - 1, b + 1
    assert check(lo) == 0
    assert check(hi) == 1
    assert check(0x80000000 | hi) == -1


def test_random_sweep():
    r = mptest.Rng(20261125)
    n = 12000 if mptest.RUNTIME == "wasm32" else 30000
    for _ in range(n):
        check(r.u32())
        # concentrate on the exponents that matter (2**-12 .. 2**17 W)
        check((r.u32() & 0x807FFFFF) | r.range(114, 144) << 23)


def test_ties_are_even():
    # k/16 W with k odd is exactly k*62.5 mW: a tie, which must go to the even neighbour
    r = mptest.Rng(3)
    for _ in range(300):
        k = 2 * r.below(400000) + 1
        b = bits_of(k / 16.0)
        got = check(b)
        assert got % 2 == 0, (k, got)
        assert got == (k * 125) // 2 + ((k * 125) // 2) % 2, (k, got)
    # rounding is symmetric in the sign
    for k in (1, 3, 5, 7, 9, 11, 13, 15):
        x = k / 16.0
        assert check(bits_of(x)) == check(bits_of(-x)) * -1


def test_decode_into_and_ints():
    buf = bytearray(struct.pack("<fff", 1.25, -2.5, 0.0))
    out = [7, 7, 7]
    decode_into(buf, 0, 3, out)
    assert out == [1250, -2500, 0]
    assert u16_at(b"\x34\x12", 0) == 0x1234
    assert u32_at(b"\x78\x56\x34\x12", 0) == 0x12345678


def _decode_all(buf, out):
    decode_into(buf, 0, 3, out)
    return out[0]


def test_decode_allocation_free():
    buf = bytearray(struct.pack("<fff", 49999.99, -0.0625, 1.0e-3))
    out = [0, 0, 0]
    assert mptest.assert_no_alloc(_decode_all, buf, out) == 49_999_988
    assert out == [49_999_988, -62, 1]
    # worst cases for intermediates: largest in-range significand and shift extremes
    buf2 = bytearray(pack(0x4743FFFF) + pack(0x3A000000) + pack(0x477FFFFF))
    mptest.assert_no_alloc(_decode_all, buf2, out)
    assert out[0] == ref_mw(0x4743FFFF) and out[1] == ref_mw(0x3A000000) and out[2] == BAD
