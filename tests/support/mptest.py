"""Tiny test helpers that behave the same on CPython, the MicroPython unix
port and the 32-bit WebAssembly port (tests in tests/lib use only these)."""
import sys

_impl = sys.implementation.name
if _impl != "micropython":
    RUNTIME = "cpython"
elif sys.maxsize < (1 << 32):
    RUNTIME = "wasm32"          # 31-bit small ints, like ESP32/RP2040
else:
    RUNTIME = "unix"

MICROPYTHON = _impl == "micropython"
SMALL_MIN = -(1 << 30)
SMALL_MAX = (1 << 30) - 1


if MICROPYTHON:
    class SkipTest(Exception):
        pass
else:  # under pytest a skip is a real pytest skip
    try:
        import pytest
        SkipTest = pytest.skip.Exception
    except ImportError:
        class SkipTest(Exception):
            pass


def skip(reason):
    raise SkipTest(reason)  # type: ignore


def raises(exc, fn, *args, **kw):
    """Assert fn(*args) raises exc; return the exception."""
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("%s not raised by %r" % (exc.__name__, fn))


def small(v):
    """Assert v fits a 31-bit MicroPython small int (ESP32/RP2040)."""
    assert SMALL_MIN <= v <= SMALL_MAX, "not a 31-bit small int: %r" % (v,)
    return v


def assert_no_alloc(fn, *args):
    """Call fn(*args) with the MicroPython heap locked: any allocation
    (float object, bigint, list growth, bound method...) raises MemoryError.
    On the wasm32 port this proves the path allocation-free on ESP32/RP2040's
    object model. On CPython the call just runs. Returns fn's result."""
    if not MICROPYTHON:
        return fn(*args)
    import micropython
    n = len(args)
    micropython.heap_lock()
    try:
        # a star-args call allocates its argument array, so spell them out
        if n == 0:
            r = fn()
        elif n == 1:
            r = fn(args[0])
        elif n == 2:
            r = fn(args[0], args[1])
        elif n == 3:
            r = fn(args[0], args[1], args[2])
        else:
            r = fn(args[0], args[1], args[2], args[3])
    except MemoryError:
        micropython.heap_unlock()
        raise AssertionError("allocated on the heap (%s)" % RUNTIME)
    except BaseException:
        micropython.heap_unlock()
        raise
    micropython.heap_unlock()
    return r


class Rng:
    """Seeded xorshift32 generator with identical output on every runtime
    (MicroPython's random differs from CPython's)."""

    def __init__(self, seed=1):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def u32(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.u32() % n

    def range(self, lo, hi):
        """Integer in [lo, hi]."""
        return lo + self.u32() % (hi - lo + 1)

    def chance(self, p_per_mille):
        return self.u32() % 1000 < p_per_mille
