"""rbamp_sim: writes, commands, ERROR/EVENT, period latch, general call,
address change."""
import struct

import mptest
from rbamp_sim import Bus, Module, Profile, Faults, VirtualClock, regs as R

A = 0x50


def make(variant="UI2", version=0x03, profile=None, **kw):
    clock = VirtualClock()
    if profile is None:
        profile = Profile.constant([1500.0, -800.0], u_v=230.0)
    mod = Module(addr=A, variant=variant, version=version, profile=profile, **kw)
    bus = Bus([mod], clock=clock)
    clock.advance(60)
    return clock, mod, bus


def rd(bus, reg, n=1, addr=A):
    b = bus.readfrom_mem(addr, reg, n)
    return b[0] if n == 1 else b


def wr(bus, reg, val, addr=A):
    bus.writeto_mem(addr, reg, bytes([val]))


def f32(b):
    return struct.unpack("<f", b)[0]


def test_error_and_event_semantics():
    clock, mod, bus = make()
    wr(bus, R.EVENT_FLAGS, 0xFF)               # W1C clears the boot flag
    assert rd(bus, R.EVENT_FLAGS) == 0 and rd(bus, R.STATUS) == R.ST_READY
    wr(bus, R.COMMAND, 0x77)                    # unknown opcode
    assert rd(bus, R.ERROR) == 0xFE
    assert rd(bus, R.STATUS) & R.ST_ERROR
    assert rd(bus, R.EVENT_FLAGS) == 0          # EVENT bit3 comes ~200 ms later
    clock.advance(199)
    assert rd(bus, R.EVENT_FLAGS) == 0
    clock.advance(1)
    assert rd(bus, R.EVENT_FLAGS) == R.EV_ERROR
    assert rd(bus, R.STATUS) & R.ST_EVENTS
    wr(bus, R.EVENT_MASK, 0)                    # any accepted write resets ERROR
    assert rd(bus, R.ERROR) == 0 and not rd(bus, R.STATUS) & R.ST_ERROR
    assert rd(bus, R.EVENT_FLAGS) == R.EV_ERROR  # the durable signal stays
    wr(bus, R.VERSION, 1)                       # read-only register
    assert rd(bus, R.ERROR) == 0xFE and rd(bus, R.VERSION) == 3
    wr(bus, R.COMMAND, R.CMD_CLEAR_ERROR)
    assert rd(bus, R.ERROR) == 0 and rd(bus, R.EVENT_FLAGS) == 0
    clock.advance(300)                          # the read-only write's bit3 arrives
    assert rd(bus, R.EVENT_FLAGS) == R.EV_ERROR
    wr(bus, R.EVENT_FLAGS, R.EV_ERROR)
    assert rd(bus, R.EVENT_FLAGS) == 0


def test_writes_do_not_auto_increment():
    clock, mod, bus = make()
    bus.writeto_mem(A, R.LABEL, b"ABCD")
    assert rd(bus, R.LABEL, 8) == b"A\x00\x00\x00\x00\x00\x00\x00"
    assert bus.writeto(A, bytes([R.LABEL + 1, 0x42, 0x43])) == 3
    assert rd(bus, R.LABEL, 3) == b"AB\x00"
    assert rd(bus, R.EVENT_FLAGS) & R.EV_CONFIG_CHANGED
    for i, c in enumerate(b"kitchen"):
        wr(bus, R.LABEL + i, c)
    assert rd(bus, R.LABEL, 8) == b"kitchen\x00"


def test_production_blocks_factory_commands():
    clock, mod, bus = make()
    for op in (R.CMD_SAVE_GAINS, R.CMD_FACTORY_RESET, 0x02, 0x20, 0x33):
        wr(bus, R.COMMAND, op)
        assert rd(bus, R.ERROR) == 0xFE, op
    wr(bus, R.PHASE_SAMPLES, 3)
    assert rd(bus, R.ERROR) == 0xFE
    clock, mod, bus = make(mode=1)
    wr(bus, R.COMMAND, R.CMD_SAVE_GAINS)
    mptest.raises(OSError, rd, bus, R.ERROR)   # flash write stalls the MCU
    clock.advance(700)
    assert rd(bus, R.ERROR) == 0


def test_reset_timeline_and_ram_loss():
    clock, mod, bus = make()
    wr(bus, R.DIGEST_CONFIG, 0x0F)
    wr(bus, R.EVENT_FLAGS, 0xFF)
    seq0 = rd(bus, 0x71)
    assert seq0 == 1
    t = clock.now_ms()
    wr(bus, R.COMMAND, R.CMD_RESET)
    for dt in (0, 100, 289, 299):
        clock.set(t + dt)
        e = mptest.raises(OSError, rd, bus, 0)
        assert e.args[0] == 19
    clock.set(t + 300)
    assert rd(bus, R.EVENT_FLAGS) == R.EV_RESET
    assert rd(bus, R.RESET_CAUSE) == R.RC_SW
    assert rd(bus, R.DIGEST_CONFIG) == 0        # RAM config lost
    assert rd(bus, R.V03_STATUS) == 0 and rd(bus, 0x71) == 0
    clock.set(t + 340)
    assert rd(bus, R.V03_STATUS) == 1 and rd(bus, 0x71) == 1
    assert mod.boots == 2


def test_save_user_config_persists_across_reset():
    clock, mod, bus = make(virgin=True)
    assert rd(bus, R.ERROR) == 0xFB
    wr(bus, R.SENSOR_CLASS, 2)
    assert rd(bus, R.CT_MODEL) == 0
    wr(bus, R.CT_MODEL, 3)
    wr(bus, R.COMMAND, 0x29)                    # bind ch1 (v1.2 set {1..5})
    assert rd(bus, R.ERROR) == 0 and rd(bus, R.CT_MODEL_CH0 + 1) == 3
    wr(bus, R.GROUP_ID, 7)
    wr(bus, R.COMMAND, R.CMD_SAVE_USER_CONFIG)
    mptest.raises(OSError, rd, bus, R.ERROR)
    clock.advance(700)
    assert rd(bus, R.ERROR) == 0
    wr(bus, R.GROUP_ID, 9)                      # RAM only, not saved
    wr(bus, R.COMMAND, R.CMD_RESET)
    clock.advance(400)
    assert rd(bus, R.ERROR) == 0                # no longer virgin
    assert rd(bus, R.SENSOR_CLASS) == 2 and rd(bus, R.CT_MODEL_CH0 + 1) == 3
    assert rd(bus, R.GROUP_ID) == 7


def test_ct_binding_rules_by_version():
    clock, mod, bus = make("UI2", version=0x04, sensor_class=0)
    wr(bus, R.CT_MODEL, 2)
    wr(bus, R.COMMAND, 0x28)
    assert rd(bus, R.ERROR) == 0xFE             # SENSOR_CLASS unset
    wr(bus, R.SENSOR_CLASS, 1)
    wr(bus, R.CT_MODEL, 5)                      # not an SCT-013 code on v1.3
    wr(bus, R.COMMAND, 0x28)
    assert rd(bus, R.ERROR) == 0xFE
    wr(bus, R.CT_MODEL, 6)
    wr(bus, R.COMMAND, 0x28)
    assert rd(bus, R.ERROR) == 0 and rd(bus, R.CT_MODEL_CH0) == 6
    wr(bus, R.COMMAND, 0x2A)                    # ch2 on a 2-channel module
    assert rd(bus, R.ERROR) == 0xFE
    # v1.2: a direct CT_MODEL write binds ch0 as well
    clock, mod, bus = make("UI1", version=0x03)
    wr(bus, R.CT_MODEL, 4)
    assert rd(bus, R.CT_MODEL_CH0) == 4


def _latch_read(bus, clock, settle=50):
    wr(bus, R.COMMAND, R.CMD_LATCH_PERIOD)
    assert rd(bus, R.PERIOD_VALID) == 0         # not before the settle
    clock.advance(settle)
    m = bus.readfrom_mem(A, 0, 256)
    return (m[R.PERIOD_VALID], f32(m[0xDC:0xE0]), f32(m[0xC2:0xC6]), f32(m[0xC6:0xCA]),
            f32(m[0xE0:0xE4]), struct.unpack_from("<I", m, 0xBE)[0],
            struct.unpack_from("<I", m, 0xEC)[0], m[R.EVENT_FLAGS])


def test_period_latch_clamps_export_basic():
    # ch0 alternates import 1000 W / export -500 W each second; ch1 always exports
    csv = "t_s,p0_w,p1_w\n0,1000,-300\n1,-500,-300\n"
    prof = Profile.from_csv(csv, period_s=2)
    clock, mod, bus = make("UI2", profile=prof)
    clock.set(250)
    _latch_read(bus, clock)                    # primer: windows at 50, 250
    clock.set(10250)
    v = _latch_read(bus, clock)
    valid, a0, a1, a2, mx, cnt, dt, ev = v
    assert valid == 1 and ev & R.EV_PERIOD_READY
    assert cnt == 50                            # windows ending 450 .. 10250
    # expected: mean over windows of max(window average, 0), hand-built
    sums = [0, 0]
    basic = 0
    mxw = 0
    for k in range(2, 52):
        b = 50 + 200 * k
        for ch in range(2):
            imp, exp = prof.energy_mwms(ch, b - 200, b)
            e = imp - exp
            sums[ch] += max(e, 0) * 1000 // 200       # uW, truncated like the chip model
            if ch == 0:
                mxw = max(mxw, max(e, 0) * 1000 // 200)
    assert a0 == struct.unpack("<f", struct.pack("<f", sums[0] / 50 / 1e6))[0], a0
    assert 0.0 < a0 < 1000.0
    assert a1 == 0.0 and a2 == 0.0              # export never accumulates on BASIC
    assert mx == 1000.0 and mxw == 1000000000
    assert dt == int((10250 - 250) * 0.73)
    # the RT register still shows the signed export
    clock.set(11250)
    assert f32(bus.readfrom_mem(A, R.P_REAL + 4, 4)) == -300.0
    # exact chip-view truth: sum of clamped window energies since boot
    for k in range(0, 57):
        b = 50 + 200 * k
        imp, exp = prof.energy_mwms(0, max(b - 200, 0), b)
        basic += max(imp - exp, 0)
    assert mod.basic_mwms(1) == 0
    assert mod.basic_mwms(0) == basic
    assert basic < mod.truth_mwms(0)[0]         # clamping per window loses import too


def test_empty_period_keeps_accumulator():
    clock, mod, bus = make("UI1", profile=Profile.constant([100.0]))
    clock.set(1050)
    _latch_read(bus, clock, settle=20)          # primer at 1050 (6 windows)
    clock.set(1100)
    v = _latch_read(bus, clock, settle=20)      # no commit since the last latch
    assert v[0] == 0
    clock.set(2050)                             # 1250 .. 2050 committed: 5 windows
    v = _latch_read(bus, clock, settle=20)
    assert v[0] == 1 and v[5] == 5 and v[1] == 100.0
    assert v[6] == int((2050 - 1050) * 0.73)    # period start kept through the empty latch


def test_i_variant_latch_reads_zero_but_valid():
    clock, mod, bus = make("I2")
    clock.set(1050)
    v = _latch_read(bus, clock)
    assert v[0] == 1 and v[1] == 0.0 and v[2] == 0.0 and v[4] == 0.0 and v[5] == 6


def test_general_call_latch_and_groups():
    clock = VirtualClock()
    p = Profile.constant([200.0])
    a = Module(addr=0x50, profile=p, gc_enable=True, group_id=1)
    b = Module(addr=0x51, profile=p, gc_enable=True, group_id=2)
    c = Module(addr=0x52, profile=p)                         # GC off
    bus = Bus([a, b, c], clock=clock)
    clock.set(1050)
    assert bus.writeto(0x00, b"\xA5\x27\x00\x34\x12") == 5   # all-call
    clock.advance(30)
    for m, want in ((a, 0x1234), (b, 0x1234), (c, 0xFFFF)):
        assert rd(bus, R.GC_TICK, 2, m.addr) == struct.pack("<H", want)
        assert rd(bus, R.PERIOD_VALID, 1, m.addr) == (1 if want != 0xFFFF else 0)
    assert rd(bus, R.ZC_OFFSET, 2, 0x50) != b"\x00\x00"
    clock.set(2050)
    bus.writeto_mem(0x00, 0xA5, b"\x27\x02\x01\x00")          # group 2 only
    clock.advance(30)
    assert rd(bus, R.GC_TICK, 2, 0x50) == b"\x34\x12"
    assert rd(bus, R.GC_TICK, 2, 0x51) == b"\x01\x00"
    # enabling GC needs save + reset; before that address 0x00 still NACKs for c alone
    bus2 = Bus([Module(addr=0x50, profile=p)], clock=clock)
    clock.advance(20)
    e = mptest.raises(OSError, bus2.writeto, 0x00, b"\xA5\x27\x00\x00\x00")
    assert e.args[0] == 19
    m = bus2.modules[0]
    wr(bus2, R.FLEET_CONFIG, 1)
    mptest.raises(OSError, bus2.writeto, 0x00, b"\xA5\x27\x00\x00\x00")
    wr(bus2, R.COMMAND, R.CMD_SAVE_USER_CONFIG)
    clock.advance(700)
    wr(bus2, R.COMMAND, R.CMD_RESET)
    clock.advance(400)
    assert bus2.writeto(0x00, b"\xA5\x27\x00\x07\x00") == 5
    assert m.peek(R.GC_TICK, 2) == b"\x07\x00"


def test_address_change():
    clock, mod, bus = make("UI1")
    wr(bus, R.I2C_ADDRESS, 0x50)                # same as current -> rejected
    assert rd(bus, R.ERROR) == 0xFE
    wr(bus, R.I2C_ADDRESS, 0x61)
    assert rd(bus, R.I2C_ADDRESS) == 0x61       # reads echo the staged value
    wr(bus, R.COMMAND, R.CMD_COMMIT_ADDR)       # no magic
    assert rd(bus, R.ERROR) == 0xFE
    wr(bus, R.ADDR_COMMIT_MAGIC, 0xA5)
    assert rd(bus, R.ADDR_COMMIT_MAGIC) == 0
    wr(bus, R.COMMAND, R.CMD_COMMIT_ADDR)
    mptest.raises(OSError, rd, bus, R.ERROR)
    clock.advance(700)
    assert rd(bus, R.ERROR) == 0
    assert bus.scan() == [0x50]                 # not effective before a reset
    wr(bus, R.COMMAND, R.CMD_RESET)
    clock.advance(300)
    assert bus.scan() == [0x61]
    assert rd(bus, R.I2C_ADDRESS, 1, 0x61) == 0x61
    # magic expires after 5 s
    wr(bus, R.I2C_ADDRESS, 0x62, 0x61)
    wr(bus, R.ADDR_COMMIT_MAGIC, 0xA5, 0x61)
    clock.advance(5001)
    wr(bus, R.COMMAND, R.CMD_COMMIT_ADDR, 0x61)
    assert rd(bus, R.ERROR, 1, 0x61) == 0xFE


def test_digest_config_fields():
    prof = Profile.constant([1234.4, -56.6], u_v=231.25, pf=0.9)
    clock, mod, bus = make("UI2", profile=prof)
    wr(bus, R.DIGEST_CONFIG, 0x0F)
    clock.advance(200)
    d = rd(bus, 0x70, 22)
    assert d[0] == rd(bus, R.STATUS) and d[1] == mod.seq
    i0, i1, u, p0, p1 = struct.unpack_from("<HHHhh", d, 2)
    assert u == 2313 and p0 == 1234 and p1 == -57
    assert i0 == int(1234.4 / (231.25 * 0.9) * 100 + 0.5)
    assert d[12] == 90 and d[13] == 90 and d[14:] == bytes(8)
    clock, mod, bus = make("I1")
    wr(bus, R.DIGEST_CONFIG, 0x02)               # no U on I-variants
    assert rd(bus, R.ERROR) == 0xFE
    wr(bus, R.DIGEST_CONFIG, 0x01)
    assert rd(bus, R.ERROR) == 0


def test_thresholds_and_drdy_alarm_mode():
    clock, mod, bus = make("UI1", profile=Profile.constant([2500.0]))
    wr(bus, R.EVENT_FLAGS, 0xFF)
    bus.writeto_mem(A, R.THRESH_P_HI, b"\xd0")   # 2000 W = 0x07D0, byte by byte
    bus.writeto_mem(A, R.THRESH_P_HI + 1, b"\x07")
    wr(bus, R.EVENT_MASK, R.EV_THRESH_P)
    assert mod.drdy_level() == 1
    clock.advance(200)
    assert rd(bus, R.EVENT_FLAGS) == R.EV_THRESH_P
    assert mod.drdy_level(clock.now_ms() + 1) == 0   # held low: alarm mode
    assert bus.drdy_level() == 0
    wr(bus, R.EVENT_MASK, 0)
    assert mod.drdy_level(clock.now_ms() + 1) == 1


def test_boot_errors_clone_and_overflow():
    clock, mod, bus = make("UI1", boot_error=0xF9)
    assert rd(bus, R.ERROR) == 0xF9
    wr(bus, R.COMMAND, R.CMD_CLEAR_ERROR)
    assert rd(bus, R.ERROR) == 0xF9             # clone lockout is not clearable
    clock.advance(1000)
    assert rd(bus, R.V03_STATUS) == 0 and mod.drdy_count == 0   # measurement halted
    # 8 kW at 230 V = 34.8 A on a 30 A CT (code 3)
    clock, mod, bus = make("UI1", profile=Profile.constant([8000.0]), ct_overflow=True)
    assert rd(bus, R.ERROR) == 0xFD and rd(bus, R.STATUS) & R.ST_ERROR
    clock, mod, bus = make("UI1", profile=Profile.constant([6000.0]), ct_overflow=True)
    assert rd(bus, R.ERROR) == 0


def test_lut_query_slot_selects_view():
    clock, mod, bus = make("UI1")
    assert rd(bus, R.LUT_VALID_MASK) == 0x0F
    assert rd(bus, R.LUT_VIEW_POINTS_LOG2) == 9
    wr(bus, R.LUT_QUERY_SLOT, 3)
    assert rd(bus, R.ERROR) == 0 and rd(bus, R.LUT_QUERY_SLOT) == 3
    assert rd(bus, R.LUT_VIEW_POINTS_LOG2) == 8 and rd(bus, R.LUT_VIEW_TIER) == 0
    inl = rd(bus, R.LUT_VIEW_INL_MAX, 2)
    assert 2 <= inl[0] <= 6 and inl[1] == 0
    wr(bus, R.LUT_QUERY_SLOT, 4)
    assert rd(bus, R.ERROR) == 0xFE
