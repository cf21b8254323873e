"""Power-cut rig on the MicroPython unix port: real vfs.VfsLfs2 on a
flashsim.RAMFlash, the store over a FakeMeter in virtual time.
Used by tests/host/test_store_lfs.py and tools/bench/bench_store.py."""
import gc
import sys

import flashsim
from flashsim import RAMFlash, PowerCut
from flashsim.fakemeter import FakeMeter
from clock import Ticks
from store.persist import Store, MeterSource
from store.journal import Journal
from store.policy import Policy
from store import rtcmem

MNT = "/flash"
UID = b"\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc"
NCH = 3


class Rig:
    def __init__(self, nblocks=32, pattern="ab", torn=flashsim.TORN_NONE, policy=None, data=None):
        self.dev = RAMFlash(nblocks, data)
        self.dev.torn = torn
        self.dev.quiet = True      # check_dead() stops the "CPU" instead
        self.pattern = pattern
        self.policy = policy or Policy()
        self.tk = Ticks(start=(1 << 30) - 50000)   # crosses the 31-bit wrap early
        self.mem = bytearray(96)                    # retained RAM (fast state)
        if data is None:
            flashsim.mount(self.dev, MNT, mkfs=True)
        else:
            flashsim.mount(self.dev, MNT)
        self.store = None
        self.m = None

    def boot(self, keep_fast=True):
        if not keep_fast:
            for i in range(len(self.mem)):
                self.mem[i] = 0
        self.m = FakeMeter(NCH)
        src = MeterSource([(self.m, c) for c in range(NCH)])
        self.store = Store(src, [(UID, 0x50, NCH)], journal=Journal(MNT + "/store", pattern=self.pattern),
                           fast=rtcmem.RamFake(self.mem), policy=self.policy, ticks=self.tk,
                           fast_ms=0)
        return self.store.boot()

    def step(self, p, dt):
        m = self.m
        for c in range(NCH):
            if p[c] is None:
                m.add_gap(c, dt)
            else:
                m.add(c, p[c], dt)
        self.tk.advance(dt)
        self.store.tick()
        self.check_dead()

    def check_dead(self):
        # the CPU dies with the power even if a cut surfaced as an OSError
        # the store handled (littlefs may turn a failed op into an error code)
        if self.dev.dead:
            raise PowerCut("cut")

    def totals(self):
        m = self.m
        return [(m.imp_total(c), m.exp_total(c)) for c in range(NCH)]

    def saved_totals(self):
        s = self.store
        out = []
        for c in range(NCH):
            e = s.saved_e[c]
            out.append((e[0] * 1000000 + e[1], e[2] * 1000000 + e[3]))
        return out

    def power_cut_reboot(self, keep_fast=False):
        """Flash keeps what reached it; RAM is lost (unless keep_fast: a
        soft/watchdog reset keeps the retained RAM); remount, recover."""
        self.store = None
        self.m = None
        flashsim.umount(MNT)
        gc.collect()
        self.dev.dead = False
        self.dev.cut_at = -1
        flashsim.mount(self.dev, MNT)
        return self.boot(keep_fast)


def load_profile(rng, c):
    """Varying load: solar-ish export on ch1, base+spikes on ch0, idle ch2."""
    if c == 0:
        return rng.range(100, 9000) * 1000 if rng.chance(700) else rng.range(0, 400) * 1000
    if c == 1:
        return -rng.range(0, 6000) * 1000 if rng.chance(500) else rng.range(0, 100) * 1000
    return None if rng.chance(300) else 0
