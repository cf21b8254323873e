"""Cost of the simulator per transaction (CPython or MicroPython):
    python -m rbamp_sim.bench        (PYTHONPATH=tools)
    micropython -m rbamp_sim.bench   (MICROPYPATH=tools)"""
import time

from rbamp_sim import Bus, Module, Profile, Faults, VirtualClock


def _us():
    if hasattr(time, "ticks_us"):
        return time.ticks_us()  # type: ignore
    return time.perf_counter_ns() // 1000


def run(n=50000, week=False):
    clock = VirtualClock()
    mod = Module(variant="UI2", profile=Profile.solar_home_day())
    bus = Bus([mod], clock=clock)
    buf = bytearray(78)
    clock.advance(100)
    t0 = _us()
    for _ in range(n):
        clock.advance(200)
        bus.readfrom_mem_into(0x50, 0x70, buf)
    t1 = _us()
    for _ in range(n):
        bus.readfrom_mem_into(0x50, 0x70, buf)
    t2 = _us()
    clock.advance(7 * 86400 * 1000)
    bus.readfrom_mem_into(0x50, 0x70, buf)
    t3 = _us()
    print("78-byte burst, new window each read: %.1f us" % ((t1 - t0) / n))
    print("78-byte burst, same window:          %.1f us" % ((t2 - t1) / n))
    print("catch-up after a week without reads: %.1f ms" % ((t3 - t2) / 1000))
    if week:
        clock = VirtualClock()
        mod = Module(variant="UI2", profile=Profile.solar_home_day())
        bus = Bus([mod], clock=clock, faults=Faults(seed=1, nack_rate=0.01, jitter_ms=3))
        t0 = _us()
        errs = 0
        for _ in range(7 * 86400 * 5):
            clock.advance(200)
            try:
                bus.readfrom_mem_into(0x50, 0x70, buf)
            except OSError:
                errs += 1
        print("a week at 5 Hz (3.02M reads, 1%% NACK): %.1f s, %d errors"
              % ((_us() - t0) / 1e6, errs))


if __name__ == "__main__":
    import sys
    run(week="week" in sys.argv)
