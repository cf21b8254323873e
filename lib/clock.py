"""Tick sources with MicroPython's ticks_ms/ticks_diff/ticks_add interface.

On a board the node uses the `time` module itself. `Ticks` is the same
interface over an explicit, settable time base: virtual time on the laptop
and tests that cross the 2**30 ms wrap of ESP32/RP2040."""
try:
    from micropython import const
except ImportError:  # CPython: Linux masters, host tests
    def const(__x):  # positional-only, like the stub
        return __x

PERIOD = const(1 << 30)          # ESP32/RP2040 ticks_ms period
_HALF = const(1 << 29)
_MASK = const((1 << 30) - 1)


class Ticks:
    def __init__(self, start=0, source=None):
        # source: optional callable returning absolute ms (e.g. the
        # simulator's clock); otherwise time moves only by advance().
        self._t = start & _MASK
        self._source = source
        self._base = source() if source is not None else 0

    def ticks_ms(self):
        if self._source is not None:
            return (self._t + self._source() - self._base) & _MASK
        return self._t

    def advance(self, ms):
        self._t = (self._t + ms) & _MASK

    @staticmethod
    def ticks_add(t, delta):
        return (t + delta) & _MASK

    @staticmethod
    def ticks_diff(a, b):
        # signed difference a - b in (-2**29, 2**29]; intermediates stay small on 31-bit ports
        return ((a - b + _HALF) & _MASK) - _HALF
