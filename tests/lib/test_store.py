"""Store logic on every runtime (CPython, unix port, wasm32): records, CRC,
fast record, policy, recovery selection and faults on the in-memory file
layer (flashsim.memfs). LittleFS itself: tests/host/test_store_lfs.py."""
import mptest
from clock import Ticks
from store import record, rtcmem
from store.record import Record
from store.journal import Journal, key_for
from store.policy import Policy, DUE_NO, DUE_ENERGY, DUE_MAXAGE, DUE_URGENT
from store.persist import Store, MeterSource
from flashsim.memfs import MemFS
from flashsim.fakemeter import FakeMeter

UID = b"\xa1\xb2\xc3\xd4\x01\x02\x03\x04\x05\x06\x07\x08"


def _rec(seq=7, vals=(12, 345678, 3599999, 0, 0, 0, 86400, 999, 1)):
    return Record(seq, record.K_PERIODIC, UID, 0x50, (3, 1, 0, 2),
                  [(0, vals), (1, (0, -1, 1 << 40)), (2, ())], (record.EV_PRESET, 1, (5, 0, 0, 123)))


def test_record_roundtrip():
    b = record.encode(_rec())
    r = record.decode(b)
    assert r.seq == 7 and r.kind == record.K_PERIODIC and r.uid == UID and r.addr == 0x50
    assert r.meta == (3, 1, 0, 2)
    assert r.chans == [(0, (12, 345678, 3599999, 0, 0, 0, 86400, 999, 1)), (1, (0, -1, 1 << 40)), (2, ())]
    assert r.event == (record.EV_PRESET, 1, (5, 0, 0, 123))
    assert r.chan(1) == (0, -1, 1 << 40) and r.chan(5) is None
    assert len(b) == (b[2] | (b[3] << 8)) and record.frame_len(b) == len(b)
    # a typical 3-channel record stays inside LittleFS's inline limit
    assert len(b) < 100, len(b)


def test_record_seq_wraps_u32():
    r = record.decode(record.encode(_rec(seq=0xFFFFFFFF)))
    assert r.seq == 0xFFFFFFFF


def test_record_every_bit_flip_detected():
    b = record.encode(_rec())
    for i in range(len(b)):
        for bit in (0, 3, 7):
            x = bytearray(b)
            x[i] ^= 1 << bit
            mptest.raises(ValueError, record.decode, bytes(x))


def test_record_truncated_and_garbage():
    b = record.encode(_rec())
    for n in range(len(b)):
        mptest.raises(ValueError, record.decode, b[:n])
    rng = mptest.Rng(3)
    for _ in range(200):
        junk = bytes(rng.below(256) for _ in range(rng.range(0, 80)))
        try:
            record.decode(junk)
            assert False, "garbage decoded"
        except ValueError:
            pass


def test_varint_zigzag():
    out = bytearray()
    vals = (0, 1, -1, 63, -64, 64, 1 << 29, -(1 << 30), 10 ** 12, -(10 ** 15))
    for v in vals:
        record.put_varint(out, v)
    i = 0
    for v in vals:
        w, i = record.get_varint(out, i)
        assert w == v
    assert i == len(out)


def test_crc16_known_value():
    # CRC-16/CCITT-FALSE check value
    assert rtcmem.crc16(b"123456789", 0, 9) == 0x29B1


def _fast(cap=64, nvals=6, nmods=1):
    mem = bytearray(cap)
    return rtcmem.Fast(rtcmem.RamFake(mem), nmods, nvals, 0x5A), mem


def test_fast_roundtrip_and_staleness():
    f, mem = _fast()
    for k in range(6):
        f.base[k] = 1000 * k
        f.cur[k] = 1000 * k + (k - 2) * 77
    f.seqs[0] = 41
    assert f.update()
    g = rtcmem.Fast(rtcmem.RamFake(mem), 1, 6, 0x5A)
    assert g.read([41]) == [[-154, -77, 0, 77, 154, 231]]
    assert g.read([42]) == [None]                                             # flash is newer
    assert rtcmem.Fast(rtcmem.RamFake(mem), 1, 6, 0x5B).read([41]) is None   # other layout
    h = rtcmem.Fast(rtcmem.RamFake(mem), 2, 6, 0x5A)                          # 2 slots x 3 fields
    h.seqs[0] = 7
    h.seqs[1] = 9
    h.cur[4] = -3
    assert h.update()
    assert h.read([7, 9]) == [[0, 0, 0], [0, -3, 0]] and h.read([7, 10]) == [[0, 0, 0], None]
    mem[9] ^= 4
    assert g.read([41]) is None
    assert rtcmem.Fast(rtcmem.RamFake(bytearray(64)), 1, 6, 0x5A).read([0]) is None   # zeroed RAM


def test_fast_overflow_keeps_older_record():
    f, mem = _fast(cap=12, nvals=4)
    f.cur[0] = 5
    assert f.update()
    before = bytes(mem)
    f.cur[1] = 1 << 27          # needs 4 varint bytes: no longer fits 12
    f.cur[2] = 1 << 27
    assert not f.update() and f.overflows == 1
    assert bytes(mem) == before
    f.cur[3] = 1 << 29          # beyond the diff limit
    assert f.encode() == -1


def test_fast_update_allocation_free():
    f, mem = _fast(cap=96, nvals=27, nmods=2)
    for k in range(27):
        f.base[k] = 100000 * k
        f.cur[k] = 100000 * k + 3600 * k
    mptest.assert_no_alloc(f.update)
    assert f.writes == 1
    mptest.assert_no_alloc(rtcmem.crc16, mem, 0, 96)


def test_rp2_scratch_layout():
    # the RP2 backend over a fake mem32: words 0..3 and 5..7, SCRATCH4 untouched
    class Mem:
        def __init__(self):
            self.d = {}

        def __getitem__(self, a):
            return self.d.get(a, 0)

        def __setitem__(self, a, v):
            self.d[a] = v & 0xFFFFFFFF
    be = rtcmem.Rp2Scratch(Mem())
    be._m[0x4005801C] = 0x6AB73121          # SCRATCH4: pico-sdk watchdog magic
    buf = bytearray(range(1, 29))
    be.store(buf, 28)
    assert be.load() == bytes(buf)
    assert be._m[0x4005801C] == 0x6AB73121
    assert be._m[0x4005800C] == 0x04030201 and be._m[0x40058028] == 0x1C1B1A19
    assert rtcmem.detect().capacity == 0 or mptest.RUNTIME not in ("cpython", "unix", "wasm32")


def test_policy():
    p = Policy(threshold_mwh=1000, min_ms=5000, max_ms=600000)
    assert p.due(100000, 100000, 5000, False) == DUE_NO          # nothing changed
    assert p.due(4999, 4999, 50000, True) == DUE_NO              # too soon
    assert p.due(5000, 5000, 1000, True) == DUE_ENERGY
    assert p.due(5000, 5000, 999, True) == DUE_NO
    assert p.due(600000, 599999, 0, True) == DUE_NO
    assert p.due(600000, 600000, 0, True) == DUE_MAXAGE
    assert p.due(5000, 10, 0, True, urgent=True) == DUE_URGENT
    assert p.due(59999, 59999, 5000, True, failing=True) == DUE_NO   # back off while failing
    assert p.due(60000, 60000, 5000, True, failing=True) == DUE_ENERGY
    assert p.loss_bound_mwh(500000) == 1000          # 500 W: threshold dominates
    assert p.loss_bound_mwh(10000000) == 13888       # 10 kW x 5 s
    mptest.small(p.loss_bound_mwh(50000000))


def test_journal_ab_picks_newest_valid():
    fs = MemFS()
    j = Journal("/s", fs)
    j.ensure()
    k = key_for(UID, 0x50) + "-0"
    for s in range(1, 6):
        j.write(k, _rec(seq=s))
    assert sorted(fs.files) == ["/s/%s.0" % k, "/s/%s.1" % k]
    assert j.load(k).seq == 5
    fs.corrupt("/s/%s.1" % k, 20)
    assert j.load(k).seq == 4 and j.corrupt == 1
    fs.truncate("/s/%s.0" % k, 9)
    assert j.load(k) is None
    assert key_for(None, 0x50) == "a50" and key_for(b"", 0x51) == "a51"


def test_journal_patterns_and_seq_wrap():
    for pat in ("ab", "rewrite", "rename", "append"):
        fs = MemFS(capacity=1 << 24)
        j = Journal("/s", fs, pattern=pat)
        j.ensure()
        for s in range(0xFFFFFFF0, 0xFFFFFFFF + 40):
            j.write("a50", _rec(seq=s & 0xFFFFFFFF))
        r = j.load("a50")
        assert r is not None and r.seq == (0xFFFFFFFF + 39) & 0xFFFFFFFF, (pat, r and r.seq)
    # append: a torn tail and garbage between records are skipped
    fs = MemFS()
    j = Journal("/s", fs, pattern="append")
    j.ensure()
    for s in (1, 2, 3):
        j.write("a50", _rec(seq=s))
    fs.files["/s/a50.l"] = fs.files["/s/a50.l"][:-5]
    assert j.load("a50").seq == 2
    fs.files["/s/a50.l"] = b"\xb5J\x00" + fs.files["/s/a50.l"] + b"junk"
    assert j.load("a50").seq == 2


class Rig:
    def __init__(self, fs=None, mem=None, nch=3, mods=None, ff=None, fast_ms=0):
        self.fs = fs or MemFS()
        self.mem = mem if mem is not None else bytearray(128)
        self.tk = Ticks(start=(1 << 30) - 3000)
        self.mods = mods or [(UID, 0x50, nch)]
        self.ff = ff
        self.fast_ms = fast_ms

    def boot(self):
        n = 0
        for u, a, c in self.mods:
            n += c
        self.m = FakeMeter(n)
        self.s = Store(MeterSource([(self.m, c) for c in range(n)]), self.mods, journal=Journal("/store", self.fs),
                       fast=rtcmem.RamFake(self.mem), ticks=self.tk, fast_fields=self.ff, fast_ms=self.fast_ms)
        return self.s.boot()

    def run(self, secs, p=(2500000, -1200000, None)):
        for _ in range(secs):
            for c in range(len(p)):
                if p[c] is None:
                    self.m.add_gap(c, 1000)
                else:
                    self.m.add(c, p[c], 1000)
            self.tk.advance(1000)
            self.s.tick()

    def states(self):
        return [self.m.state(c) for c in range(self.m.n)]


def test_soft_reset_loses_nothing():
    r = Rig()
    r.boot()
    r.run(123)
    truth = r.states()
    r.m = r.s = None            # drop every Python object ("reboot")
    rep = r.boot()
    assert r.states() == truth, (r.states(), truth)
    assert "fast state applied" in rep
    assert r.s.meta[0][3] == 1 and r.s.meta[0][0] == 2     # fast recoveries, boots


def test_power_cut_loses_at_most_bound():
    r = Rig()
    r.boot()
    r.run(123)
    truth = r.states()
    for i in range(len(r.mem)):
        r.mem[i] = 0           # power cut: retained RAM gone too
    r.boot()
    got = r.states()
    for c in (0, 1):
        ti = truth[c][0] * 1000000 + truth[c][1] + truth[c][3] * 1000000 + truth[c][4]
        gi = got[c][0] * 1000000 + got[c][1] + got[c][3] * 1000000 + got[c][4]
        assert 0 <= ti - gi <= 5000 * 2500 // 3600 + 700, (ti, gi)


def test_fast_fields_subset_rp2_sized():
    # 28-byte RP2 scratch: carry only the energy fields of each channel
    mem = bytearray(28)
    r = Rig(mem=mem, ff=(0, 1, 3, 4))
    r.boot()
    r.run(3)
    truth = r.states()
    r.boot()
    got = r.states()
    for c in range(3):
        assert got[c][0:2] == truth[c][0:2] and got[c][3:5] == truth[c][3:5], (got, truth)


def test_stale_fast_state_ignored():
    r = Rig()
    r.boot()
    r.run(20)
    old = bytes(r.mem)
    r.run(20)
    truth = r.states()
    r.mem[:] = old             # a fast record based on an older flash record
    rep = r.boot()
    assert "channel 0: fast state older than flash, ignored" in rep, rep
    for c in range(2):
        assert r.states()[c][0:2] <= truth[c][0:2]


def test_identity_and_moves():
    fs = MemFS()
    r = Rig(fs=fs)
    r.boot()
    r.run(30)
    t0 = r.states()
    r.boot()
    # module moved to another address: totals follow its UID
    r2 = Rig(fs=fs, mem=r.mem, mods=[(UID, 0x52, 3)])
    rep = r2.boot()
    assert r2.states() == t0 and any("moved" in x for x in rep), rep
    # a different module at 0x52 now: do not attach, report, keep the old record
    r3 = Rig(fs=fs, mods=[(b"\x99" * 12, 0x52, 3)])
    rep = r3.boot()
    assert r3.states()[0][0:2] == (0, 0) and "identity" in r3.s.faults
    assert any("mismatch" in x for x in rep), rep
    r4 = Rig(fs=fs, mods=[(UID, 0x50, 3)])
    r4.boot()
    assert r4.states()[0][0:2] == t0[0][0:2]


def test_preset_and_reset_journalled():
    r = Rig()
    r.boot()
    r.run(10)
    ok, msg = r.s.preset(0x50, 1, 123456789012, 42)
    assert ok, msg
    assert r.m.imp_total(1) == 123456789012 and r.m.exp_total(1) == 42
    rec = r.s.j.load(r.s.ckeys[1])
    assert rec.kind == record.K_PRESET and rec.event == (record.EV_PRESET, 1, (123456, 789012, 0, 42))
    assert rec.meta[1] == 1
    ok, msg = r.s.reset(0, 0)
    assert ok and r.m.imp_total(0) == 0
    assert r.s.j.load(r.s.ckeys[0]).kind == record.K_RESET
    log = r.fs.read("/store/audit.log").decode()
    assert "-1 preset 123456 789012 0 42" in log and "-0 reset" in log, log
    # power cut right after: the preset survives without the fast state
    for i in range(len(r.mem)):
        r.mem[i] = 0
    r.boot()
    assert r.m.imp_total(1) == 123456789012 and r.m.imp_total(0) == 0
    mptest.raises(ValueError, r.s.preset, 0x50, 7, 1, 1)
    assert not r.s.preset(0x50, 0, -1, 0)[0]


def test_preset_rolled_back_when_not_durable():
    r = Rig()
    r.boot()
    r.run(10)
    before = r.m.state(0)
    r.fs.readonly = True
    ok, msg = r.s.preset(0x50, 0, 5, 5)
    assert not ok and r.m.state(0) == before and r.s.meta[0][1] == 0


def test_fs_full_readonly_missing_degrade_to_ram():
    for fault in ("full", "readonly", "missing"):
        fs = MemFS(capacity=1 << 16)
        r = Rig(fs=fs)
        r.boot()
        r.run(10)
        if fault == "full":
            fs.capacity = 10
        elif fault == "readonly":
            fs.readonly = True
        else:
            fs.missing = True
        r.run(120)
        st = r.s.status()
        assert st["ram_only"] and "fs" in st["faults"], (fault, st)
        assert r.m.imp_total(0) >= 120 * 2500000 // 3600000           # still metering
        fs.readonly = fs.missing = False
        fs.capacity = 1 << 16
        r.run(70)                                                     # retry after back-off
        assert not r.s.status()["ram_only"], fault
    # unusable from the start
    fs = MemFS()
    fs.missing = True
    r = Rig(fs=fs)
    r.boot()
    assert r.s.status()["ram_only"]
    r.run(5)
    assert r.m.imp_total(0) > 0


def test_commit_cadence_default_policy():
    r = Rig()
    r.boot()
    c0 = r.s.commits
    r.run(600, p=(400000, 0, 0))        # 400 W: 1 Wh every 9 s
    n = r.s.commits - c0
    assert 600 // 9 - 1 <= n <= 600 // 9 + 1, n
    c0 = r.s.commits
    r.run(600, p=(20000000, 0, 0))      # 20 kW: capped by the 5 s minimum interval
    assert r.s.commits - c0 == 120, r.s.commits - c0
    c0 = r.s.commits
    r.run(1200, p=(0, 0, None))         # only the gap counter moves: every 10 min
    assert r.s.commits - c0 == 2, r.s.commits - c0


def test_totals_and_ages_stay_small():
    r = Rig()
    r.boot()
    r.tk.advance(1 << 29)               # a long silence, across the tick wrap
    r.s.tick()
    mptest.small(r.s.age_ms)
    mptest.small(r.s.dirty_ms)
    r.run(3)
    for c in range(3):
        for v in r.m.state(c):
            mptest.small(v)


def test_with_energy_meter():
    # the real engine behind MeterSource: soft reset exact, preset/reset journalled
    try:
        import energy
    except ImportError:
        mptest.skip("lib/energy not present")
    fs = MemFS()
    mem = bytearray(28)                       # RP2-sized retained RAM
    tk = Ticks()

    def boot():
        m = energy.Meter(2)
        s = Store(MeterSource([(m, 0), (m, 1)]), [(UID, 0x50, 2)], journal=Journal("/store", fs),
                  fast=rtcmem.RamFake(mem), ticks=tk, fast_fields=(1, 2, 4, 5), fast_ms=0)
        s.boot()
        return m, s
    m, s = boot()
    for _ in range(17):
        m.add(0, 2345678, 1000)
        m.add(1, -987654, 1000)
        tk.advance(1000)
        s.tick()
    want = [(m.import_total_mwh(c), m.export_total_mwh(c)) for c in range(2)]
    m, s = boot()
    assert [(m.import_total_mwh(c), m.export_total_mwh(c)) for c in range(2)] == want
    assert s.preset(0x50, 1, 10 ** 12, 5)[0] and m.import_total_mwh(1) == 10 ** 12
    assert not s.preset(0x50, 1, 10 ** 16, 5)[0] and m.import_total_mwh(1) == 10 ** 12
    assert s.reset(0x50, 0)[0] and m.import_total_mwh(0) == 0
    m, s = boot()
    assert m.import_total_mwh(1) == 10 ** 12 and m.import_total_mwh(0) == 0


def test_powerfail_during_commit_is_deferred():
    r = Rig()
    r.boot()
    r.run(3)
    fs = r.fs
    orig = fs.write
    hits = []

    def write(path, data):
        if not hits:
            hits.append(path)
            r.m.add(0, 3600000, 1000)         # energy arrives meanwhile...
            assert r.s.powerfail() is False   # ...and the power-fail callback runs re-entrantly
        orig(path, data)
    fs.write = write
    assert r.s.commit()
    fs.write = orig
    assert r.s.last_kind == record.K_POWERFAIL
    assert r.s.saved[0] == r.m.state(0)       # the deferred commit saved the newer state


def test_bad_fast_deltas_fall_back_to_flash():
    # carrying only the mWh field lets a kWh rollover produce an invalid tuple
    class Strict(FakeMeter):
        def restore(self, ch, t):
            if t[1] >= 1000000:
                raise ValueError("mwh range")
            FakeMeter.restore(self, ch, t)
    mem = bytearray(64)
    fs = MemFS()
    tk = Ticks()

    def boot():
        m = Strict(1)
        s = Store(MeterSource([(m, 0)]), [(UID, 0x50, 1)], journal=Journal("/store", fs),
                  fast=rtcmem.RamFake(mem), ticks=tk, fast_fields=(1,), fast_ms=0)
        return m, s, s.boot()
    m, s, rep = boot()
    m.preset(0, 999500, 0)
    s.commit()
    m.add(0, 3600000, 1000)                   # +1 Wh: kWh rolls over, mWh 999500 -> 500
    s.fast_update()
    m, s, rep = boot()
    assert m.imp_total(0) == 999500 and any("flash record used" in x for x in rep), rep
