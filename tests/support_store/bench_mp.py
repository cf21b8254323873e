"""MicroPython side of tools/bench/bench_store.py (unix port, real LittleFS
on a flashsim partition mounted with a port's parameters).
usage: micropython bench_mp.py [--port=unix|rp2|esp32] day|patterns|cost|inline
       micropython bench_mp.py --port=rp2 powercut exhaustive ab 0 200   (powercut.py's arguments)
Prints 'RESULT {json}'."""
import sys
import json
import time
import gc

import flashsim
from flashsim import RAMFlash
from flashsim.fakemeter import FakeMeter
from clock import Ticks
from store.persist import Store, MeterSource
from store.journal import Journal
from store import rtcmem

MNT = "/flash"
UID = b"\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc"
# How each port mounts its LittleFS (v1.28.0 sources): 4096-byte blocks everywhere;
#  rp2:   VfsLfs2(bdev, progsize=256) in ports/rp2/modules/_boot.py, 1408 KB = 352 blocks
#  esp32: vfs.mount(bdev) autodetect -> VfsLfs2 defaults, the 2 MB "vfs" partition of a 4 MB module
#  unix:  VfsLfs2 defaults (extmod/vfs_lfs.c: readsize 32, progsize 32, lookahead 32), 1 MiB
# VfsLfs2 derives cache = min(block, 4 * max(read, prog)) and block_cycles = 100 from these.
PORTS = {"unix": (32, 32, 32, 256), "rp2": (32, 256, 32, 352), "esp32": (32, 32, 32, 512)}
PORT = "unix"
for _a in sys.argv[1:]:
    if _a.startswith("--port="):
        PORT = _a[7:]
sys.argv[:] = [a for a in sys.argv if not a.startswith("--port=")]
READ, PROG, LOOK, NBLK = PORTS[PORT]


def mount(dev):
    import vfs
    vfs.VfsLfs2.mkfs(dev, readsize=READ, progsize=PROG, lookahead=LOOK)
    vfs.mount(vfs.VfsLfs2(dev, readsize=READ, progsize=PROG, lookahead=LOOK), MNT)


def home_w(h):
    # typical home, grid channel: ~10 kWh import, 8 kWh export per day
    if h < 7 or h >= 23:
        return 300
    if h < 9:
        return 1200
    if h < 17:
        return -1000
    return 850


try:
    from energy import Meter      # the real engine when it is there
except ImportError:
    Meter = FakeMeter


def aged(m, nch):
    # ten years of history: realistic (longer) varints in every record
    if Meter is FakeMeter:
        for c in range(nch):
            m.restore(c, (36500, 123456, 1234567, 29200, 654321, 2345678, 1000000, 500, 0))
    else:
        for c in range(nch):
            m.restore(c, (1, 36500, 123456, 1234567, 29200, 654321, 2345678, 315360000, 500, 1000000, 250))


def mk(pattern, nch=3, dev=None):
    dev = dev or RAMFlash(NBLK)
    mount(dev)
    m = Meter(nch)
    aged(m, nch)
    s = Store(MeterSource([(m, c) for c in range(nch)]), [(UID, 0x50, nch)],
              journal=Journal(MNT + "/store", pattern=pattern), fast=rtcmem.RamFake(bytearray(96)),
              ticks=Ticks(), fast_ms=1000, audit=False)
    s.boot()
    return dev, m, s


def day(scenario, pattern="ab", days=1):
    dev, m, s = mk(pattern)
    dev.track_wear()
    dev.reset_counters()
    c0 = s.commits
    b0 = s.bytes_written
    tk = s.tk_ms.__self__ if hasattr(s.tk_ms, "__self__") else None
    t = Ticks()
    s.tk_ms = t.ticks_ms
    s._prev = t.ticks_ms()
    for sec in range(86400 * days):
        h = (sec // 3600) % 24
        if scenario == "home":
            m.add(0, home_w(h) * 1000, 1000)
            m.add(1, 0, 1000)        # idle channels still count time
            m.add(2, 0, 1000)
        else:
            for c in range(3):
                m.add(c, 10000000, 1000)
        t.advance(1000)
        s.tick()
    be = dev.block_erases
    used = 0
    mx = 0
    for e in be:
        if e:
            used += 1
        if e > mx:
            mx = e
    res = {"scenario": scenario, "pattern": pattern, "days": days, "port": PORT, "blocks": NBLK,
           "commits": s.commits - c0, "erases": dev.erases, "prog_bytes": dev.wbytes, "prog_ops": dev.writes,
           "record_bytes": s.bytes_written - b0, "blocks_touched": used, "max_block_erases": mx,
           "engine": "energy.Meter" if Meter is not FakeMeter else "FakeMeter",
           "record_len": [len(open(MNT + "/store/" + f, "rb").read()) for f in ("u112233445566778899aabbcc-0.0",)],
           "import_mwh": [m.import_kwh[c] * 1000000 + m.import_mwh[c] for c in range(3)],
           "export_mwh": [m.export_kwh[c] * 1000000 + m.export_mwh[c] for c in range(3)]}
    flashsim.umount(MNT)
    return res


def patterns(n=2000):
    out = []
    for pat in ("ab", "rewrite", "rename", "append"):
        dev, m, s = mk(pat)
        dev.reset_counters()
        t0 = time.ticks_us()
        for k in range(n):
            m.add(0, 3600000, 1000)
            s.commit()
        us = time.ticks_diff(time.ticks_us(), t0)
        out.append({"pattern": pat, "commits": n, "erases_per_commit": dev.erases / n,
                    "prog_bytes_per_commit": dev.wbytes / n, "prog_ops_per_commit": dev.writes / n,
                    "us_per_commit": us / n})
        flashsim.umount(MNT)
    return out


def cost(n=20000):
    # per-sample cost: 3-channel engine stand-in alone vs + store.tick()
    # every sample (fast record every 1 s at 5 samples/s, and every sample)
    res = {"engine": "energy.Meter" if Meter is not FakeMeter else "FakeMeter"}
    for mode in ("none", "tick_fast1s", "tick_fast_every"):
        dev, m, s = mk("ab")
        s.fast_ms = 0 if mode == "tick_fast_every" else 1000
        t = Ticks()
        s.tk_ms = t.ticks_ms
        s._prev = t.ticks_ms()
        gc.collect()
        t0 = time.ticks_us()
        for k in range(n):
            m.add(0, 230000, 200)
            m.add(1, -120000, 200)
            m.add(2, 5000, 200)
            t.advance(200)
            if mode != "none":
                s.tick()
        res[mode] = time.ticks_diff(time.ticks_us(), t0) / n
        if mode != "none":
            res[mode + "_commits"] = s.commits
        flashsim.umount(MNT)
    # the fast record write alone (allocation-free path)
    f = rtcmem.Fast(rtcmem.RamFake(bytearray(96)), 1, 27, 1)
    t0 = time.ticks_us()
    for k in range(n):
        f.cur[0] = k
        f.update()
    res["fast_update_us"] = time.ticks_diff(time.ticks_us(), t0) / n
    return res


def inline(sizes=(64, 128, 129, 145, 256, 400, 512, 513, 1000), n=300):
    """Erases per rewrite of one file of each size: where LittleFS stops storing it inline
    in the directory's metadata (inline_max = min(cache, attr_max 1022, block / 8))."""
    out = []
    for size in sizes:
        dev = RAMFlash(NBLK)
        mount(dev)
        data = bytes(range(256)) * (size // 256 + 1)
        dev.reset_counters()
        for k in range(n):
            with open(MNT + "/f", "wb") as f:
                f.write(data[k % 7:k % 7 + size])
        out.append({"size": size, "erases_per_save": dev.erases / n, "prog_bytes_per_save": dev.wbytes / n})
        flashsim.umount(MNT)
    return {"port": PORT, "progsize": PROG, "rows": out}


def powercut():
    """tests/support_store/powercut.py (same arguments after 'powercut') with every mount using
    this port's LittleFS parameters."""
    import vfs

    def port_mount(dev, point=MNT, mkfs=False, readonly=False):
        if mkfs:
            vfs.VfsLfs2.mkfs(dev, readsize=READ, progsize=PROG, lookahead=LOOK)
        fs = vfs.VfsLfs2(dev, readsize=READ, progsize=PROG, lookahead=LOOK)
        vfs.mount(fs, point, readonly=readonly)
        return fs
    flashsim.mount = port_mount
    sys.argv[:] = ["powercut.py"] + sys.argv[2:]
    path = __file__.rsplit("/", 1)[0] + "/powercut.py" if "/" in __file__ else "powercut.py"
    exec(open(path).read(), {"__name__": "__main__"})


def main():
    what = sys.argv[1]
    if what == "powercut":
        powercut()
        return
    if what == "inline":
        r = inline()
    elif what == "day":
        r = day(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "ab")
    elif what == "patterns":
        r = patterns(int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
    else:
        r = cost()
    print("RESULT " + json.dumps(r))


main()
