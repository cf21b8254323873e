"""Master time bases for the simulator: absolute, unwrapped milliseconds."""
import time


class VirtualClock:
    """Time moves only when told to (tests, virtual-time node loops)."""

    def __init__(self, start_ms=0):
        self._t = int(start_ms)

    def now_ms(self):
        return self._t

    def advance(self, ms):
        if ms < 0:
            raise ValueError("virtual time cannot go back")
        self._t += int(ms)
        return self._t

    def set(self, ms):
        if ms < self._t:
            raise ValueError("virtual time cannot go back")
        self._t = int(ms)
        return self._t

    # lets a driver under test use the clock as its sleep function
    def sleep_ms(self, ms):
        self.advance(ms)


class RealClock:
    """Wall-clock ms since construction. MicroPython: ticks_ms unwrapped by
    accumulating ticks_diff (call at least every few days of real time);
    CPython: time.monotonic_ns."""

    def __init__(self, start_ms=0):
        self._mono = getattr(time, "monotonic_ns", None)
        if self._mono is not None and not hasattr(time, "ticks_ms"):
            self._base = self._mono() // 1000000 - int(start_ms)
        else:
            self._mono = None
            self._last = time.ticks_ms()  # type: ignore
            self._acc = int(start_ms)

    def now_ms(self):
        if self._mono is not None:
            return self._mono() // 1000000 - self._base
        t = time.ticks_ms()  # type: ignore
        self._acc += time.ticks_diff(t, self._last)  # type: ignore
        self._last = t
        return self._acc

    def sleep_ms(self, ms):
        if self._mono is not None:
            time.sleep(ms / 1000.0)
        else:
            time.sleep_ms(ms)  # type: ignore
