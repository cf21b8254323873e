"""rbamp_sim core: identity, RT commits, read-freeze, SEQ/DRDY, boot."""
import struct

import mptest
from rbamp_sim import Bus, Module, Profile, Faults, VirtualClock, RealClock, regs as R

A = 0x50


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def make(variant="UI2", version=0x03, profile=None, t0=0, **kw):
    clock = VirtualClock(t0)
    if profile is None:
        profile = Profile.constant([1500.0, -800.0, 42.5], u_v=230.0)
    mod = Module(addr=A, variant=variant, version=version, profile=profile, **kw)
    bus = Bus([mod], clock=clock)
    return clock, mod, bus


def rt(bus):
    b = bus.readfrom_mem(A, 0x70, 78)
    return b, struct.unpack_from("<14f", b, 0x86 - 0x70)


def test_identity_every_variant():
    exp = {"UI1": (1, 1, 0x079E), "UI2": (2, 2, 0x079E), "UI3": (3, 3, 0x079E),
           "I1": (4, 1, 0x069E), "I2": (5, 2, 0x069E), "I3": (6, 3, 0x069E)}
    for ver in (0x03, 0x04):
        for name in exp:
            hw, nch, cap = exp[name]
            clock, mod, bus = make(name, ver, label="boiler")
            clock.advance(60)
            m = bus.readfrom_mem(A, 0, 256)
            assert m[R.VERSION] == ver
            assert m[R.PRODUCT_ID] == 0x01
            assert m[R.HW_VARIANT] == hw
            assert m[R.TOPOLOGY] == nch
            assert m[R.FW_TIER] == 0x00
            assert m[R.CAPABILITY] | m[R.CAPABILITY + 1] << 8 == cap
            assert (m[0x58] & 1) == (1 if hw <= 3 else 0)   # voltage-HW bit8
            assert m[R.MODE] == 0
            assert m[R.LABEL:R.LABEL + 8] == b"boiler\x00\x00"
            assert m[R.I2C_ADDRESS] == A
            assert m[R.GC_TICK:R.GC_TICK + 2] == b"\xff\xff"
            zc = m[R.ZC_OFFSET] | m[R.ZC_OFFSET + 1] << 8
            assert (zc == 0xFFFF) == (hw >= 4)
            assert m[R.AC_FREQ] == 50
            assert m[R.AC_PERIOD] | m[R.AC_PERIOD + 1] << 8 == 10000
            assert m[R.RESET_CAUSE] == R.RC_POR
            p = struct.unpack_from("<14f", m, 0x86)
            u, up, i, ip, pp, pf = p[0], p[1], p[2:5], p[5:8], p[8:11], p[11:14]
            for ch in range(3):
                if ch >= nch:
                    assert i[ch] == 0.0 and ip[ch] == 0.0 and pp[ch] == 0.0 and pf[ch] == 0.0
                else:
                    assert i[ch] > 0.0
                    if hw >= 4:
                        assert pp[ch] == 0.0 and pf[ch] == 0.0
            if hw >= 4:
                assert u == 0.0 and up == 0.0
            else:
                assert u == 230.0 and pp[0] == 1500.0
                if nch > 1:
                    assert pp[1] == -800.0 and pf[1] == -1.0


def test_uid_differs_per_module_and_is_stable():
    clock = VirtualClock()
    a = Module(addr=0x50, seed=1)
    b = Module(addr=0x51, seed=1)
    c = Module(addr=0x50, seed=2)
    bus = Bus([a, b, c], clock=clock)
    clock.advance(20)
    ua = bus.readfrom_mem(0x50, R.UID, 12)  # 0x50 answered by a and c: wired-AND
    assert len(a.uid) == 12 and a.uid != b.uid and a.uid != c.uid
    assert a.uid == Module(addr=0x50, seed=1).uid
    assert ua == bytes(x & y for x, y in zip(a.uid, c.uid))
    assert bus.readfrom_mem(0x51, R.UID, 12) == b.uid


def test_rt_values_are_float32_window_averages():
    # 1000 W until 1.1 s, then 250.125 W; 2nd channel -300 W then +700 W at 1.23 s
    csv = "t_s,p0_w,p1_w,u_v\n0,1000,-300,230\n1.1,250.125,-300,231.5\n1.23,250.125,700,231.5\n"
    prof = Profile.from_csv(csv)
    clock, mod, bus = make("UI2", profile=prof)
    for t in (1050, 1250, 1450):  # commits at 50 + 200k
        clock.set(t)
        b, v = rt(bus)
        a = t - 200
        for ch in range(2):
            imp, exp = prof.energy_mwms(ch, a, t)
            want = f32((imp - exp) / 200.0 / 1000.0)
            assert v[8 + ch] == want, (t, ch, v[8 + ch], want)
        assert v[0] == f32(prof.u_integral(a, t) / 200.0 / 1000.0)
    # window 1050..1250 mixes 1000 W (50 ms) and 250.125 W (150 ms)
    clock, mod, bus = make("UI2", profile=prof)
    clock.set(1250)
    _, v = rt(bus)
    assert v[8] == f32((1000 * 50 + 250.125 * 150) / 200.0)
    assert v[9] == f32((-300 * 180 + 700 * 20) / 200.0)
    # PF is the profile's fixed PF with P's sign; I = |P| / (U * PF)
    assert v[11] == 1.0
    assert abs(v[2] - v[8] / v[0]) < 1e-5


def test_pf_current_and_q_follow_profile_pf():
    prof = Profile.constant([-2000.0], u_v=200.0, pf=0.8)
    clock, mod, bus = make("UI1", profile=prof)
    clock.advance(250)
    _, v = rt(bus)
    assert v[8] == -2000.0
    assert v[11] == f32(-0.8)
    assert abs(v[2] - 12.5) < 1e-5                 # 2000 / (200 * 0.8)
    assert abs(v[5] - 12.5 * 1.4142135) < 1e-4
    q = struct.unpack("<f", bus.readfrom_mem(A, R.Q_REAC, 4))[0]
    assert abs(q - 1500.0) < 0.01                  # |P| * tan(acos 0.8)


def test_boot_timeline():
    clock, mod, bus = make("UI1", t0=5000)
    e = mptest.raises(OSError, bus.readfrom_mem, A, 0, 1)
    assert e.args[0] == 19
    clock.set(5009)
    mptest.raises(OSError, bus.readfrom_mem, A, 0, 1)
    clock.set(5010)
    m = bus.readfrom_mem(A, 0, 256)
    assert m[R.STATUS] & R.ST_READY == 0
    assert m[R.STATUS] & R.ST_EVENTS
    assert m[R.EVENT_FLAGS] == R.EV_RESET
    assert m[R.V03_STATUS] == 0
    assert m[0x71] == 0 and m[0xA6:0xAA] == b"\x00" * 4     # no data before 1st commit
    clock.set(5049)
    assert bus.readfrom_mem(A, R.V03_STATUS, 1) == b"\x00"
    clock.set(5050)
    m = bus.readfrom_mem(A, 0, 256)
    assert m[R.STATUS] & R.ST_READY and m[R.V03_STATUS] == 1 and m[0x71] == 1
    assert struct.unpack_from("<f", m, R.P_REAL)[0] == 1500.0
    clock.set(5000 + 3999)
    assert bus.readfrom_mem(A, R.UPTIME_S, 4) == b"\x03\x00\x00\x00"
    clock.set(5000 + 3600 * 1000)
    assert bus.readfrom_mem(A, R.UPTIME_S, 4) == struct.pack("<I", 3600)


def test_seq_and_drdy_per_commit():
    clock, mod, bus = make("UI1")
    seen = []
    mod.on_drdy = lambda m, t: seen.append(t)
    clock.set(49)
    assert mod.seq == 0 and mod.drdy_count == 0
    for k in range(300):
        clock.set(50 + 200 * k)
        b = bus.readfrom_mem(A, 0x70, 2)
        assert b[1] == (k + 1) & 0xFF
        assert mod.drdy_count == k + 1
    assert seen[:3] == [50, 250, 450] and len(seen) == 300
    # DRDY level: low only in the commit millisecond (10 us pulse)
    assert mod.drdy_level(50 + 200 * 300) == 0
    assert mod.drdy_level(51 + 200 * 300) == 1
    # SEQ after 255 wraps to 0
    clock, mod, bus = make("UI1")
    clock.set(50 + 200 * 254)
    assert mod.seq == 255
    clock.set(50 + 200 * 255)
    assert mod.seq == 0


def test_burst_read_is_coherent_under_mid_read_commit():
    csv = "t_s,p0_w\n0,100\n1,3000\n"
    clock, mod, bus = make("UI1", profile=Profile.from_csv(csv))
    clock.set(850)
    calls = []

    def hook(i):
        if i == 40:                 # commit lands in the middle of the burst
            clock.set(1450)
            mod.force_commit()
            calls.append(i)
    bus.between_bytes = hook
    b = bus.readfrom_mem(A, 0x70, 78)
    assert calls == [40]
    assert b[1] == 5 and struct.unpack_from("<f", b, 0xA6 - 0x70)[0] == 100.0
    bus.between_bytes = None
    b = bus.readfrom_mem(A, 0x70, 78)
    assert b[1] == 5 + 1 + 3  # forced commit + regular ones at 1050, 1250, 1450
    assert struct.unpack_from("<f", b, 0xA6 - 0x70)[0] == 3000.0


def test_bytewise_reads_can_tear():
    csv = "t_s,p0_w\n0,100\n1,3000\n"
    clock, mod, bus = make("UI1", profile=Profile.from_csv(csv))
    clock.set(850)
    raw = bytearray(4)
    for i in range(4):          # one transaction per byte, like upstream drivers
        if i == 2:
            clock.set(1250)     # a commit between byte 1 and byte 2
        raw[i] = bus.readfrom_mem(A, R.P_REAL + i, 1)[0]
    v = struct.unpack("<f", raw)[0]
    old = struct.pack("<f", 100.0)
    new = struct.pack("<f", 3000.0)
    assert bytes(raw) == old[:2] + new[2:]
    assert v != 100.0 and v != 3000.0
    # a read starting outside the freeze region is live (Q is not frozen)
    clock.set(1300)
    bus.between_bytes = lambda i: mod.force_commit() if i == 2 else None
    b = bus.readfrom_mem(A, R.Q_REAC, 4)
    assert len(b) == 4


def test_auto_increment_off_repeats_register():
    clock, mod, bus = make("UI1", auto_increment=False)
    clock.advance(60)
    b = bus.readfrom_mem(A, R.HW_VARIANT, 4)
    assert b == b"\x01\x01\x01\x01"
    p = bytes(bus.readfrom_mem(A, R.P_REAL + i, 1)[0] for i in range(4))
    assert struct.unpack("<f", p)[0] == 1500.0
    # pointer + read as separate transactions
    bus.writeto(A, bytes([R.VERSION]))
    assert bus.readfrom(A, 3) == b"\x03\x03\x03"
    mod2 = make("UI1")[1]
    assert mod2.auto_increment


def test_pointer_write_then_read_auto_increment():
    clock, mod, bus = make("UI1")
    clock.advance(60)
    assert bus.writeto(A, bytes([R.PRODUCT_ID])) == 1
    assert bus.readfrom(A, 2) == b"\x01\x01"
    assert bus.readfrom(A, 1) == b"\x00"       # pointer moved on to FW_TIER
    buf = bytearray(3)
    bus.readfrom_mem_into(A, 0xFE, buf)        # wraps at 0xFF -> 0x00
    assert buf[2] == mod.peek(0)[0]


def test_missing_module_nacks_with_enodev():
    clock, mod, bus = make("UI1")
    clock.advance(20)
    e = mptest.raises(OSError, bus.readfrom_mem, 0x51, 0, 1)
    assert e.args[0] == 19
    e = mptest.raises(OSError, bus.writeto, 0x51, b"\x00")
    assert e.args[0] == 19
    assert bus.scan() == [A]


def test_lazy_catch_up_over_long_gap_is_fast():
    # O(1) amortized: a week without reads is caught up in bulk, window by
    # window only around the profile's change points (counted, not timed:
    # the speed itself is a benchmark figure, tools/rbamp_sim/bench.py)
    prof = Profile.solar_home_day()
    clock, mod, bus = make("UI2", profile=prof)
    clock.advance(60)
    bus.readfrom_mem(A, 0x70, 78)
    calls = [0]
    window = mod._window

    def counting(*a):
        calls[0] += 1
        return window(*a)

    mod._window = counting
    clock.advance(7 * 86400 * 1000)            # a week without reads: ~3M windows
    b = bus.readfrom_mem(A, 0x70, 78)
    n = (7 * 86400 * 1000 + 60 - 50) // 200 + 1
    assert mod.drdy_count == n
    assert b[1] == n & 0xFF
    assert calls[0] < n // 100, calls[0]       # 2,079 of 3,024,001 windows one by one
    # registers equal the per-window average of the last window
    t = clock.now_ms()
    last = 50 + 200 * (n - 1)
    imp, exp = prof.energy_mwms(0, last - 200, last)
    assert struct.unpack_from("<f", b, 0xA6 - 0x70)[0] == f32((imp - exp) / 200000.0)
    assert t >= last


def test_bulk_matches_step_by_step():
    # the closed-form catch-up must equal polling every window
    prof = Profile.from_csv("t_s,p0_w,p1_w\n0,500,-100\n7.3,-200.5,50\n19.01,800,0\n", period_s=31)
    c1, m1, b1 = make("UI2", profile=prof)
    c2, m2, b2 = make("UI2", profile=prof)
    end = 200000
    t = 0
    while t < end:
        t += 200
        c1.set(t)
        b1.readfrom_mem(A, 0x70, 2)
    c2.set(end)
    r1 = b1.readfrom_mem(A, 0x70, 78)
    r2 = b2.readfrom_mem(A, 0x70, 78)
    assert r1 == r2
    assert m1.basic_mwms(0) == m2.basic_mwms(0) and m1.basic_mwms(1) == m2.basic_mwms(1)
    assert m1.acc_n == m2.acc_n
    assert m1.acc_sum == m2.acc_sum and m1.acc_max == m2.acc_max


def test_jitter_and_window_ppm_shift_commits():
    f = Faults(seed=3, jitter_ms=5)
    clock = VirtualClock()
    mod = Module(profile=Profile.constant([10.0]))
    Bus([mod], clock=clock, faults=f)
    times = []
    mod.on_drdy = lambda m, t: times.append(t)
    for t in range(0, 20050, 10):
        clock.set(t)
        mod.sync()
    d = [times[i + 1] - times[i] for i in range(len(times) - 1)]
    assert min(d) >= 190 and max(d) <= 210 and min(d) != max(d)
    assert len(times) == 100
    f = Faults(window_ppm=10000)  # module windows 1 % long
    clock = VirtualClock()
    mod = Module(profile=Profile.constant([10.0]))
    Bus([mod], clock=clock, faults=f)
    clock.set(50 + 200 * 100)
    assert mod.drdy_count == 100     # commit k at 50 + 202 k: k = 99 is the last by 20050
    clock.set(50 + 202 * 100)
    assert mod.drdy_count == 101


def test_virtual_and_real_clock():
    c = VirtualClock(5)
    assert c.now_ms() == 5
    c.advance(10)
    c.set(100)
    assert c.now_ms() == 100
    mptest.raises(ValueError, c.set, 99)
    c.sleep_ms(7)
    assert c.now_ms() == 107
    r = RealClock(1000)
    a = r.now_ms()
    r.sleep_ms(5)
    b = r.now_ms()
    assert 1000 <= a <= b and b - a >= 4


def _read(bus, buf):
    bus.readfrom_mem_into(A, 0x70, buf)


def _step_read(clock, bus, buf):
    clock.advance(200)
    bus.readfrom_mem_into(A, 0x70, buf)


def test_steady_state_reads_allocate_nothing():
    # lets drivers be allocation-tested against the simulator itself
    clock, mod, bus = make("UI2")
    buf = bytearray(78)
    clock.advance(100)
    _read(bus, buf)
    for _ in range(3):
        mptest.assert_no_alloc(_read, bus, buf)     # same window
    if mptest.RUNTIME == "wasm32":
        return  # window integrals exceed 31-bit small ints there (host code)
    _step_read(clock, bus, buf)
    for _ in range(3):
        mptest.assert_no_alloc(_step_read, clock, bus, buf)   # a new window each time
    assert buf[1] == 5 and struct.unpack_from("<f", buf, 0xA6 - 0x70)[0] == 1500.0


def test_wire_time_accounting_and_optional_clock_advance():
    clock, mod, bus = make("UI1")
    clock.advance(100)
    bus.readfrom_mem(A, 0x70, 78)               # 81 bytes on the wire at 50 kHz
    assert bus.bus_us == (81 * 9 + 3) * 1000000 // 50000 == 14640
    assert clock.now_ms() == 100
    clock = VirtualClock(100)
    mod = Module(profile=Profile.constant([5.0]))
    bus = Bus([mod], clock=clock, freq=100000, tx_time=True)
    clock.advance(20)
    for _ in range(10):
        bus.readfrom_mem(A, 0x70, 78)           # 7.32 ms each
    assert clock.now_ms() == 120 + 73            # 73.2 ms, remainder carried
    assert bus._us_rem == 200


def test_profile_max_abs_and_step_sum():
    # steps at 10 s (+500 -> -1200) and 20 s (-1200 -> +300), held between rows
    prof = Profile.from_csv("t_s,p0_w\n0,500\n10,-1200\n20,300\n")
    assert prof.max_abs_mw(0, 0, 10000) == 500000            # end exclusive: the 10 s step is out
    assert prof.max_abs_mw(0, 0, 10001) == 1200000
    assert prof.max_abs_mw(0, 15000, 60000) == 1200000        # the value holding at the start counts
    assert prof.max_abs_mw(0, 20000, 60000) == 300000
    assert prof.step_sum_mw(0, 0, 10000) == 0                 # change points in (t0, t1)
    assert prof.step_sum_mw(0, 0, 10001) == 1700000
    assert prof.step_sum_mw(0, 0, 60000) == 1700000 + 1500000
    assert prof.step_sum_mw(0, 10000, 60000) == 1500000       # a step exactly at t0 is not counted
    assert prof.step_sum_mw(1, 0, 60000) == 0                  # channel not in the profile
