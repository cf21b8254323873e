"""Self-test of the dual-runtime harness: proves the allocation checker and
the 31-bit bound really detect what they claim on each runtime."""
import mptest


def _add(a, b):
    return a + b


def test_raises_and_small():
    mptest.raises(AssertionError, mptest.small, 1 << 30)
    mptest.raises(AssertionError, mptest.small, -(1 << 30) - 1)
    assert mptest.small(-(1 << 30)) == -(1 << 30)


def test_no_alloc_passes_for_small_int_math():
    assert mptest.assert_no_alloc(_add, 1 << 28, 1 << 28) == 1 << 29


def test_no_alloc_detects_float():
    if not mptest.MICROPYTHON:
        mptest.skip("heap_lock is MicroPython-only")
    mptest.raises(AssertionError, mptest.assert_no_alloc, _add, 1.5, 2.0)


def test_no_alloc_detects_bigint_on_32bit():
    if mptest.RUNTIME != "wasm32":
        mptest.skip("only the 32-bit port has 31-bit small ints")
    mptest.raises(AssertionError, mptest.assert_no_alloc, _add, 1 << 29, 1 << 29)


def test_rng_is_identical_everywhere():
    r = mptest.Rng(42)
    seq = [r.u32() for _ in range(3)]
    assert seq == [_X[0], _X[1], _X[2]], seq


_X = None


def _ref():
    # xorshift32 reference computed independently of Rng
    s = (42 * 2654435761 + 1) & 0xFFFFFFFF
    out = []
    for _ in range(3):
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        out.append(s)
    return out


_X = _ref()
