"""Driver logic against a tiny in-test register image (no simulator): the
allocation-free proof of read_rt() and the retry/exception plumbing."""
import struct

import mptest
import rbamp
from rbamp import RbAmp, BAD


class MemBus:
    """Minimal register image with machine.I2C memory methods. Reads copy
    bytes without allocating (auto-increment on or off); writes store the
    first byte, EVENT_FLAGS is W1C. `fail` queues OSErrors for the next
    transactions."""

    def __init__(self, addr=0x50, variant=2, version=0x04, auto_inc=True):
        self.addr = addr
        self.img = bytearray(256)
        self.auto_inc = auto_inc
        self.fail = []
        self.reads = 0
        self.writes = []
        img = self.img
        img[0x00] = 0x01
        img[0x03] = version
        img[0x54] = 0x01
        img[0x55] = variant
        img[0x56] = 0x04                  # BASIC, bidirectional flag bit2
        cap = 0x079E if variant <= 3 else 0x069E
        img[0x57] = cap & 0xFF
        img[0x58] = cap >> 8
        img[0x24] = (variant - 1) % 3 + 1
        for i in range(12):
            img[0x5C + i] = 0x10 + i
        img[0x68:0x68 + 4] = b"tst1"
        img[0x2A] = 0x20                  # RESET_OCCURRED after boot
        img[0x70] = 0x01
        img[0x71] = 7

    def set_f32(self, reg, x):
        self.img[reg:reg + 4] = struct.pack("<f", x)

    def set_bits(self, reg, bits):
        self.img[reg:reg + 4] = struct.pack("<I", bits)

    def _check(self, addr):
        if self.fail:
            raise self.fail.pop(0)
        if addr != self.addr:
            raise OSError(19)

    def readfrom_mem_into(self, addr, reg, buf):
        self._check(addr)
        self.reads += 1
        img = self.img
        n = len(buf)
        i = 0
        if self.auto_inc:
            while i < n:
                buf[i] = img[(reg + i) & 0xFF]
                i += 1
        else:
            while i < n:
                buf[i] = img[reg]
                i += 1

    def readfrom_mem(self, addr, reg, n):
        b = bytearray(n)
        self.readfrom_mem_into(addr, reg, b)
        return bytes(b)

    def writeto_mem(self, addr, reg, buf):
        self._check(addr)
        self.writes.append((reg, bytes(buf)))
        if reg == 0x2A:
            self.img[0x2A] &= ~buf[0] & 0xFF
        elif reg not in (0x01,):
            self.img[reg] = buf[0]
        if reg == 0x2A:
            self.img[0x70] &= ~0x04

    def writeto(self, addr, buf):
        self._check(addr if addr else self.addr)     # general call
        self.writes.append((-1, bytes(buf)))

    def scan(self):
        return [self.addr]


def _no_delay(ms):
    pass


def make(variant=2, version=0x04, auto_inc=True):
    bus = MemBus(variant=variant, version=version, auto_inc=auto_inc)
    dev = RbAmp(bus, 0x50, delay_ms=_no_delay)
    dev.begin()
    return bus, dev


def test_begin_identity_from_image():
    bus, dev = make(variant=2)
    assert dev.variant_name == "UI2" and dev.channels == 2 and dev.has_voltage_hw
    assert dev.read_mode == "burst"
    assert dev.firmware_version == 0x04 and dev.tier == 0 and dev.tier_name == "BASIC"
    assert dev.uid == bytes(range(0x10, 0x1C))
    assert dev.label == "tst1"
    assert bus.img[0x2A] == 0                 # boot event cleared
    assert (0x01, b"\x27") in bus.writes      # primer latch


def test_bytewise_detected_without_auto_increment():
    bus, dev = make(auto_inc=False)
    assert dev.read_mode == "bytewise"
    bus.set_f32(0xA6, 1234.5)
    bus.set_f32(0xAA, -99.25)
    assert dev.read_rt() == 1
    assert dev.p_mw == [1_234_500, -99_250]
    assert dev.uid == bytes(range(0x10, 0x1C))


def test_read_rt_values_and_seq():
    bus, dev = make()
    bus.set_f32(0xA6, 1500.0)
    bus.set_f32(0xAA, -800.0)
    assert dev.read_rt() == 1                 # first read after begin
    assert dev.p_mw == [1_500_000, -800_000]
    assert dev.read_rt() == 0                 # same window
    bus.img[0x71] = 8
    assert dev.read_rt() == 1
    bus.img[0x71] = 11
    assert dev.read_rt() == 3                 # two windows missed
    bus.img[0x71] = 2                         # wrap 255 -> 0
    assert dev.read_rt() == 247
    bus.set_bits(0xAA, 0x7FC00000)            # NaN
    dev.read_rt()
    assert dev.p_mw[1] == BAD and dev.sanity_reject_count == 1
    bus.img[0x70] = 0x00                      # not ready
    assert dev.read_rt() == -1
    assert dev.p_mw == [BAD, BAD]


def test_events_pending_and_reboot():
    bus, dev = make()
    dev.read_rt()
    bus.img[0x70] = 0x05
    bus.img[0x2A] = 0x21
    bus.img[0x71] = 0
    assert dev.read_rt() == 1                 # SEQ restarted at 0: seen via EVENT_FLAGS bit5
    assert dev.events_pending and dev.reboot_count == 1
    assert bus.img[0x2A] == 0x21              # left for check_events
    assert dev.read_rt() == 0
    assert dev.check_events() == 0x21
    assert not dev.events_pending and dev.reboot_count == 1
    assert bus.img[0x2A] == 0
    assert dev.read_rt() == 0
    bus.img[0x71] = 1
    assert dev.read_rt() == 1
    # a reboot first noticed by check_events also restarts the tracking
    bus.img[0x2A] = 0x20
    bus.img[0x71] = 0
    assert dev.check_events() == 0x20 and dev.reboot_count == 2
    assert dev.read_rt() == 1


def _rt(dev):
    return dev.read_rt()


def test_read_rt_allocation_free():
    bus, dev = make(variant=3)
    bus.set_f32(0xA6, 49999.99)
    bus.set_f32(0xAA, -0.0625)
    bus.set_bits(0xAE, 0xFF800000)
    dev.read_rt()
    bus.img[0x71] = 9
    assert mptest.assert_no_alloc(_rt, dev) == 2
    assert dev.p_mw == [49_999_988, -62, BAD]
    bus.img[0x70] = 0x05                      # events pending: EVENT_FLAGS is read as well
    bus.img[0x2A] = 0x20
    bus.img[0x71] = 0
    assert mptest.assert_no_alloc(_rt, dev) == 1
    assert dev.reboot_count == 1
    bus.img[0x70] = 0x00
    assert mptest.assert_no_alloc(_rt, dev) == -1
    if mptest.MICROPYTHON:                    # control: the float accessor does allocate
        mptest.raises(AssertionError, mptest.assert_no_alloc, _pw, dev)


def _pw(dev):
    return dev.read_power(0)


def test_retries_then_io_error():
    bus, dev = make()
    bus.fail = [OSError(19), OSError(5)]
    assert dev.read_rt() == 1                 # third attempt succeeds
    assert dev.retry_count_total == 2
    bus.fail = [OSError(19), OSError(19), OSError(19)]
    e = mptest.raises(rbamp.RbAmpIOError, dev.read_rt)
    assert "no ACK after 3 attempts (ENODEV)" in str(e)
    assert isinstance(e, OSError) and e.errno == 19
    assert dev.retry_exhaustion_count == 1
    bus.fail = [OSError(110), OSError(110), OSError(110)]
    e = mptest.raises(rbamp.RbAmpIOError, dev.read_rt)
    assert "ETIMEDOUT" in str(e) and e.errno == 110
    bus.fail = [OSError(5), OSError(5), OSError(5)]
    assert "EIO" in str(mptest.raises(rbamp.RbAmpIOError, dev.read_power, 0))


def test_identity_errors():
    bus = MemBus()
    bus.img[0x54] = 0x02
    e = mptest.raises(rbamp.RbAmpVersionError, RbAmp(bus, delay_ms=_no_delay).begin)
    assert "rbDimmer" in str(e)
    for ver in (0x00, 0xFF):
        bus = MemBus()
        bus.img[0x03] = ver
        mptest.raises(rbamp.RbAmpVersionError, RbAmp(bus, delay_ms=_no_delay).begin)
    bus = MemBus()
    bus.img[0x55] = 7
    mptest.raises(rbamp.RbAmpVersionError, RbAmp(bus, delay_ms=_no_delay).begin)
    bus = MemBus(variant=1)
    bus.img[0x58] = 0x06                      # UI1 claiming no voltage hardware
    e = mptest.raises(rbamp.RbAmpDeviceError, RbAmp(bus, delay_ms=_no_delay).begin)
    assert "faulty" in str(e)
    bus = MemBus(addr=0x51)                   # nobody at 0x50
    e = mptest.raises(rbamp.RbAmpIOError, RbAmp(bus, delay_ms=_no_delay).begin)
    assert "no ACK" in str(e)
    assert not RbAmp(bus, 0x50).probe() and RbAmp(bus, 0x51).probe()
    mptest.raises(rbamp.RbAmpParamError, RbAmp, bus, 0x78)


def test_exception_hierarchy():
    for cls in (rbamp.RbAmpIOError, rbamp.RbAmpTimeoutError, rbamp.RbAmpStaleError,
                rbamp.RbAmpParamError, rbamp.RbAmpModeError, rbamp.RbAmpVersionError,
                rbamp.RbAmpUnsupportedError):
        assert issubclass(cls, rbamp.RbAmpError)
    assert issubclass(rbamp.RbAmpError, OSError)


def test_float_accessors_and_sanity():
    bus, dev = make(variant=2)
    bus.set_f32(0x86, 231.5)
    bus.set_f32(0x8E, 6.5)
    bus.set_f32(0xB2, -0.97)
    bus.set_f32(0xAA, -1500.0)
    bus.img[0x20] = 50
    assert dev.read_voltage() == 231.5 and dev.voltage == 231.5
    assert dev.read_current(0) == 6.5 and dev.current[0] == 6.5
    assert abs(dev.read_power_factor(0) + 0.97) < 1e-6
    assert dev.power[1] == -1500.0 and dev.read_power(1) == -1500.0
    assert dev.read_frequency() == 50
    mptest.raises(rbamp.RbAmpParamError, dev.read_power, 2)
    bus.set_f32(0x86, 1.0e6)
    mptest.raises(rbamp.RbAmpIOError, dev.read_voltage)
    assert dev.sanity_reject_count == 1
    dev.read_rt()
    assert dev.rt_float(0x8E) == 6.5


def test_current_only_variant():
    bus, dev = make(variant=5)
    assert dev.variant_name == "I2" and not dev.has_voltage_hw and dev.channels == 2
    bus.set_f32(0x92, 3.25)
    assert dev.read_current(1) == 3.25
    e = mptest.raises(rbamp.RbAmpUnsupportedError, dev.read_voltage)
    assert "I2" in str(e)
    mptest.raises(rbamp.RbAmpUnsupportedError, dev.read_power, 0)


def test_v12_is_basic_without_tier_register():
    bus, dev = make(version=0x03)
    assert dev.tier_name == "BASIC" and dev.tier_flags == 0


def test_command_error_raises():
    bus, dev = make()
    bus.img[0x02] = 0xFE
    e = mptest.raises(rbamp.RbAmpParamError, dev.command, 0x26, 0)
    assert "0xFE" in str(e) and "PARAM" in str(e)


def test_general_call_frame():
    bus, dev = make()
    assert RbAmp.broadcast_latch_group(bus, 3, 0x1234) == 0x1234
    assert bus.writes[-1] == (-1, b"\xa5\x27\x03\x34\x12")
    mptest.raises(rbamp.RbAmpParamError, RbAmp.broadcast_latch_group, bus, 256, 0)


def _add(e, p, dt):
    e.add(0, p, dt)
    return e.mwh[0]


def test_energy_accumulator_exact_and_small():
    from rbamp import RbAmpEnergy
    e = RbAmpEnergy(1)
    e.add(0, 1_000, 3_600_000)                # 1 W for 1 h = 1 Wh
    assert e.mwh_total(0) == 1000 and e.rem[0] == 0
    e.add(0, -5_000_000, 60_000)              # export is not counted (BASIC)
    assert e.mwh_total(0) == 1000
    e.add(0, 1, 1)                            # 1 mW*ms carried, not lost
    assert e.rem[0] == 1 and e.mwh_total(0) == 1000
    e.add(0, 3_599_999, 1)
    assert e.rem[0] == 0 and e.mwh_total(0) == 1001
    # worst case per call: 50 kW for a long period, still only small ints (wasm32 proof)
    e2 = RbAmpEnergy(1)
    mptest.assert_no_alloc(_add, e2, 50_000_000, 600_000)
    assert e2.mwh_total(0) == 50_000_000 * 600_000 // 3_600_000
    for v in (e2.kwh[0], e2.mwh[0], e2.rem[0]):
        mptest.small(v)
    # rolls mWh into kWh: 20 kWh
    for _ in range(40):
        e2.add(0, 50_000_000, 600_000)
    assert e2.kwh[0] == 341 and e2.mwh[0] == 666_666 and e2.rem[0] == 2_400_000
    assert abs(e2.wh(0) - 341_666.666) < 0.01
    e2.reset(0)
    assert e2.wh(0) == 0.0


def test_bytewise_read_rt_allocation_free_too():
    bus, dev = make(variant=2, auto_inc=False)
    bus.set_f32(0xA6, 10.5)
    bus.set_f32(0xAA, -7.25)
    dev.read_rt()
    bus.img[0x71] = 8
    assert mptest.assert_no_alloc(_rt, dev) == 1
    assert dev.p_mw == [10_500, -7_250]


def test_capability_gates_general_call():
    bus = MemBus(variant=1)
    bus.img[0x57] = 0x9C                      # UI1 without GC_LATCH (bit1)
    dev = RbAmp(bus, delay_ms=_no_delay)
    dev.begin()
    e = mptest.raises(rbamp.RbAmpUnsupportedError, dev.enable_gc)
    assert "general-call" in str(e) and "0x079C" in str(e)
    dev.set_group_id(3)                       # GC_GROUP_FILTER (bit2) still there
    assert bus.img[0x28] == 3
