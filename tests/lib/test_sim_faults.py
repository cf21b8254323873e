"""rbamp_sim: seeded fault injection, profiles and exact ground truth."""
import struct

import mptest
from rbamp_sim import Bus, Module, Profile, Faults, VirtualClock, GHOST, regs as R

A = 0x50


def make(faults, variant="UI1", profile=None, **kw):
    clock = VirtualClock()
    if profile is None:
        profile = Profile.constant([1000.0, 500.0, 250.0])
    mod = Module(addr=A, variant=variant, profile=profile, **kw)
    bus = Bus([mod], clock=clock, faults=faults)
    return clock, mod, bus


def outcomes(bus, clock, n, step=0):
    """errno (or 0 for success) of n reads."""
    out = []
    for _ in range(n):
        clock.advance(step)
        try:
            bus.readfrom_mem(A, 0x70, 4)
            out.append(0)
        except OSError as e:
            out.append(e.args[0])
    return out


def test_transaction_fault_rates_are_seeded():
    f = Faults(seed=7, nack_rate=0.1, eio_rate=0.05, timeout_rate=0.05)
    clock, mod, bus = make(f)
    clock.advance(100)
    a = outcomes(bus, clock, 2000)
    assert 120 < a.count(19) < 280, a.count(19)
    assert 50 < a.count(5) < 150 and 50 < a.count(110) < 150
    assert bus.n_err == 2000 - a.count(0)
    errs = mod.peek(R.I2C_ERR_COUNT, 2)
    assert errs[0] | errs[1] << 8 == a.count(5)        # the module counted the bus errors
    clock2, mod2, bus2 = make(Faults(seed=7, nack_rate=0.1, eio_rate=0.05, timeout_rate=0.05))
    clock2.advance(100)
    assert outcomes(bus2, clock2, 2000) == a          # same seed, same sequence
    clock3, mod3, bus3 = make(Faults(seed=8, nack_rate=0.1, eio_rate=0.05, timeout_rate=0.05))
    clock3.advance(100)
    assert outcomes(bus3, clock3, 2000) != a


def test_failed_write_has_no_effect():
    clock, mod, bus = make(Faults(seed=3, nack_rate=0.5))
    clock.advance(100)
    ok = 0
    for i in range(40):
        try:
            bus.writeto_mem(A, R.GROUP_ID, bytes([i]))
            ok = i
        except OSError:
            pass
    assert mod.peek(R.GROUP_ID)[0] == ok


def test_esp32_host_nack_rate_by_speed():
    for freq, lo, hi in ((100000, 320, 480), (50000, 0, 20)):
        clock, mod, bus = make(Faults(seed=2, host="esp32"))
        bus = Bus([Module(addr=A)], clock=clock, faults=Faults(seed=2, host="esp32"), freq=freq)
        clock.advance(100)
        n = outcomes(bus, clock, 2000).count(19)
        assert lo <= n <= hi, (freq, n)


def test_emi_burst_window():
    clock, mod, bus = make(Faults(seed=5, emi=[(1000, 2000)]))
    clock.advance(100)
    before = outcomes(bus, clock, 300)
    clock.set(1000)
    during = outcomes(bus, clock, 600)
    clock.set(2000)
    after = outcomes(bus, clock, 300)
    assert before.count(0) == 300 and after.count(0) == 300
    assert 340 < during.count(19) < 460, during.count(19)   # ~67 %


def test_ghost_bytes_after_nack():
    clock, mod, bus = make(Faults(seed=4, nack_rate=0.3, ghost_rate=1.0))
    clock.advance(100)
    ghosts = 0
    prev_nack = False
    for _ in range(500):
        try:
            b = bus.readfrom_mem(A, R.U_RMS, 4)
        except OSError:
            prev_nack = True
            continue
        if b == GHOST:
            assert prev_nack                     # only right after a NACK
            ghosts += 1
            assert abs(struct.unpack("<f", b)[0] - 1.962) < 0.001
        else:
            assert b == struct.pack("<f", 230.0)
        prev_nack = False
    assert ghosts > 50


def test_bus_wedge_times_out():
    clock, mod, bus = make(Faults(wedge_at=(500, 800)))
    clock.set(500)
    e = mptest.raises(OSError, bus.readfrom_mem, A, 0, 1)
    assert e.args[0] == 110
    clock.set(800)
    assert bus.readfrom_mem(A, R.PRODUCT_ID, 1) == b"\x01"


def test_nan_and_inf_in_power_registers():
    clock, mod, bus = make(Faults(seed=9, nan_rate=0.2, inf_rate=0.1), variant="UI3")
    nan = inf = 0
    for k in range(500):
        clock.set(50 + 200 * k)
        p = struct.unpack("<3f", bus.readfrom_mem(A, R.P_REAL, 12))
        bad = [v for v in p if v != v or v in (float("inf"), float("-inf"))]
        assert len(bad) <= 1
        for v in p:
            if v != v:
                nan += 1
            elif v in (float("inf"), float("-inf")):
                inf += 1
        if not bad:
            assert p == (1000.0, 500.0, 250.0)
    assert 70 < nan < 130 and 25 < inf < 75, (nan, inf)
    # glitches touch registers only: the accumulator is clean
    assert mod.basic_mwms(0) == 1000 * 1000 * (50 + 200 * 499)


def test_stale_windows_skip_commits():
    clock, mod, bus = make(Faults(seed=11, stale_rate=0.25))
    seqs = []
    for k in range(400):
        clock.set(50 + 200 * k)
        seqs.append(bus.readfrom_mem(A, 0x71, 1)[0])
    repeats = sum(1 for i in range(1, 400) if seqs[i] == seqs[i - 1])
    assert 70 < repeats < 130, repeats
    assert mod.drdy_count == 400 - (repeats + (1 if seqs[0] == 0 else 0))
    # stall interval: no commits at all, SEQ frozen, no DRDY
    clock, mod, bus = make(Faults(stale_at=[(1000, 3000)]))
    clock.set(999)
    s0 = mod.seq
    clock.set(2999)
    assert mod.seq == s0
    clock.set(3050)
    assert mod.seq == (s0 + 1) & 0xFF


def test_scheduled_and_random_reboots():
    clock, mod, bus = make(Faults(reboot_at=[5000]))
    clock.set(4990)
    assert bus.readfrom_mem(A, 0x71, 1)[0] == 25
    wr = bus.writeto_mem
    wr(A, R.EVENT_FLAGS, b"\xff")
    clock.set(5005)
    e = mptest.raises(OSError, bus.readfrom_mem, A, 0, 1)
    assert e.args[0] == 19                      # NACK while booting
    clock.set(5010)
    assert bus.readfrom_mem(A, R.EVENT_FLAGS, 1)[0] == R.EV_RESET
    assert bus.readfrom_mem(A, 0x71, 1)[0] == 0 and mod.boots == 2
    assert bus.readfrom_mem(A, R.RESET_CAUSE, 1)[0] == R.RC_POR
    clock.set(5050)
    assert bus.readfrom_mem(A, 0x71, 1)[0] == 1
    # watchdog reboots at a rate: about 5 per hour over 10 h, reproducible
    counts = []
    for _ in range(2):
        clock, mod, bus = make(Faults(seed=21, reboot_rate_per_h=5.0))
        clock.set(10 * 3600 * 1000)
        mod.sync()
        counts.append(mod.boots - 1)
    assert counts[0] == counts[1] and 25 <= counts[0] <= 80, counts
    assert bus.readfrom_mem(A, R.RESET_CAUSE, 1)[0] in (R.RC_IWDG, R.RC_POR)


def test_chip_skew_only_in_chip_time_registers():
    clock, mod, bus = make(Faults(chip_skew=0.5))
    clock.set(1050)
    assert bus.readfrom_mem(A, R.PERIOD_MS, 4) == struct.pack("<I", 100)
    bus.writeto_mem(A, R.COMMAND, b"\x27")
    clock.set(11050)
    bus.writeto_mem(A, R.COMMAND, b"\x27")
    clock.advance(50)
    assert bus.readfrom_mem(A, R.PERIOD_LATCH_MS, 4) == struct.pack("<I", 5000)
    assert mod.drdy_count == 56                 # RT cadence stays 200 ms master time


def test_truth_is_exact():
    csv = "t_s,p0_w,p1_w\n0,1000.5,-250\n10,-2000.001,0\n25.5,0.001,300\n"
    prof = Profile.from_csv(csv)
    # hand-computed over [0, 30 s]: ch0 import 1000.5 W*10 s + 0.001 W*4.5 s
    assert prof.energy_mwms(0, 0, 30000) == (1000500 * 10000 + 1 * 4500, 2000001 * 15500)
    assert prof.energy_mwms(1, 0, 30000) == (300000 * 4500, 250000 * 10000)
    assert prof.energy_mwms(0, 9999, 10001) == (1000500, 2000001)
    assert prof.energy_mwms(2, 0, 1000) == (0, 0)
    clock = VirtualClock(2000)                   # module created at 2 s
    mod = Module(variant="UI2", profile=prof)
    Bus([mod], clock=clock)
    clock.set(26000)
    assert mod.truth_mwms(0) == (1000500 * 8000 + 500, 2000001 * 15500)
    assert mod.truth_mwms(1) == (300000 * 500, 250000 * 8000)
    # periodic profile: whole periods in closed form
    p = Profile.from_csv("t_s,p0_w\n0,100\n1,-50\n", period_s=3)
    assert p.energy_mwms(0, 0, 3000 * 1000) == (100000 * 1000 * 1000, 50000 * 2000 * 1000)
    assert p.energy_mwms(0, 2500, 3500) == (100000 * 500, 50000 * 500)
    assert p.value_mw(0, 3000 * 7 + 999) == 100000 and p.value_mw(0, 3000 * 7 + 1000) == -50000


def test_truth_survives_reboots_and_faults():
    prof = Profile.solar_home_day()
    clock, mod, bus = make(Faults(seed=1, reboot_rate_per_h=2.0, nack_rate=0.1), "UI2", prof)
    clock.set(86400 * 1000)
    mod.sync()
    imp, exp = mod.truth_mwms(0)
    assert (imp, exp) == prof.energy_mwms(0, 0, 86400 * 1000)
    assert imp > 0 and exp > 0                   # the day imports and exports
    pimp, pexp = mod.truth_mwms(1)
    assert pimp == 0 and pexp > 10 ** 13        # PV: > ~3 kWh generated


def test_csv_parsing_rules():
    p = Profile.from_csv("# comment\n\nt_s,p0_w,u_v\n0,1.5,230.1\n0.25,-2,229\n")
    assert p.value_mw(0, 249) == 1500 and p.value_mw(0, 250) == -2000
    assert p.u_mv(100) == 230100
    mptest.raises(ValueError, Profile.from_csv, "t_s,p0_w\n0,1.0001\n")   # sub-mW
    mptest.raises(ValueError, Profile.from_csv, "t_s,p0_w\n0,1e3\n")
    mptest.raises(ValueError, Profile.from_csv, "t_s,p1_w\n0,1\n")        # p0 first
    mptest.raises(ValueError, Profile.from_csv, "t_s,p0_w\n1,1\n0,2\n")   # order
    mptest.raises(ValueError, Profile.from_csv, "t_s,p0_w\n0,1\n5,2\n", period_s=5)
    p = Profile.from_csv("t_s,p0_w\n2,7\n")                                 # before 1st row
    assert p.value_mw(0, 0) == 7000 and p.energy_mwms(0, 0, 1000) == (7000000, 0)


def test_solar_home_day_shape():
    p = Profile.solar_home_day()
    h = 3600 * 1000
    assert p.value_mw(0, 3 * h) > 0 and p.value_mw(1, 3 * h) == 0        # night import
    assert p.value_mw(0, 13 * h) < 0 and p.value_mw(1, 13 * h) < -3000000  # midday export
    assert p.value_mw(0, 19 * h) > 2000000                                # evening peak
    assert p.u_mv(13 * h) > p.u_mv(3 * h)
    assert p.value_mw(0, 3 * h) == p.value_mw(0, 27 * h)                  # repeats daily
