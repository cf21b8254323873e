"""Filesystem faults and corruption on the real LittleFS (unix port).
Run by tests/host/test_store_lfs.py; prints PASS/FAIL lines, exit 1 on failure."""
import sys
import os

import flashsim
import lfs_rig
from lfs_rig import Rig, NCH, MNT

P = (3000000, -2000000, None)
FILES = MNT + "/store/u112233445566778899aabbcc-0."


def run(r, n, dt=1000):
    for _ in range(n):
        r.step(P, dt)


def t_full():
    # full partition before boot: the journal directory cannot even be made
    r = Rig(nblocks=8)
    n = 0
    try:
        while True:                 # whole 4 KiB files: a failed file takes no space
            with open(MNT + "/junk%d" % n, "wb") as f:
                f.write(b"\x00" * 4096)
            n += 1
    except OSError:
        pass
    r.boot()
    run(r, 40)
    st = r.store.status()
    assert st["ram_only"] and "fs" in st["faults"], st
    assert r.m.imp_total(0) > 0                            # metering continues
    for k in range(n):                                     # space comes back -> resumes
        os.remove(MNT + "/junk%d" % k)
    run(r, 70)
    st = r.store.status()
    assert not st["ram_only"] and "fs" not in st["faults"], st
    truth = r.totals()
    r.power_cut_reboot()
    rec = r.totals()
    assert 0 <= truth[0][0] - rec[0][0] <= 5000, (truth, rec)


def t_readonly():
    r = Rig()
    r.boot()
    run(r, 12)
    saved = r.totals()
    flashsim.umount(MNT)
    flashsim.mount(r.dev, MNT, readonly=True)
    rep = r.boot(keep_fast=True)                           # reboot onto a read-only fs
    assert r.totals() == saved, (r.totals(), saved)        # recovery still reads
    st = r.store.status()
    assert st["ram_only"] and "fs" in st["faults"], st
    run(r, 30)
    assert r.m.imp_total(0) > saved[0][0]                  # keeps metering in RAM
    ok, msg = r.store.preset(0x50, 0, 5, 5)
    assert not ok and r.m.imp_total(0) > 5                 # not durable -> not applied


def t_missing():
    r = Rig()
    flashsim.umount(MNT)                                   # no filesystem at all
    rep = r.boot()
    st = r.store.status()
    assert st["ram_only"] and "fs" in st["faults"], st
    run(r, 20)
    assert r.m.imp_total(0) > 0


def _corrupt(path, pos, mask):
    with open(path, "rb") as f:
        b = bytearray(f.read())
    b[pos % len(b)] ^= mask
    with open(path, "wb") as f:
        f.write(b)


def t_bitflip():
    r = Rig()
    r.boot()
    run(r, 30)
    seqs = r.store.seq[0]
    newest = FILES + str(seqs & 1)
    older = r.saved_totals()
    _corrupt(newest, 17, 0x10)
    r.power_cut_reboot()
    assert any("damaged" in x for x in r.store.report), r.store.report
    rec = r.totals()
    assert rec[0][0] < older[0][0] and rec[0][0] > 0       # the older slot was used
    assert r.store.seq[0] == seqs - 1
    run(r, 6)                                              # next record replaces the bad one
    assert r.store.seq[0] == seqs


def t_every_byte_flip():
    # each byte of the newest record flipped in turn: always the older record
    r = Rig()
    r.boot()
    run(r, 30)
    seq = r.store.seq[0]
    path = FILES + str(seq & 1)
    with open(path, "rb") as f:
        good = f.read()
    with open(FILES + str((seq - 1) & 1), "rb") as f:
        from store import record
        old = record.decode(f.read())
    for pos in range(len(good)):
        for mask in (0x01, 0x80):
            b = bytearray(good)
            b[pos] ^= mask
            with open(path, "wb") as f:
                f.write(b)
            from store.journal import Journal
            j = Journal(MNT + "/store")
            got = j.load("u112233445566778899aabbcc-0")
            assert got is not None and got.seq == old.seq, (pos, got and got.seq)


def t_truncated_and_foreign():
    r = Rig()
    r.boot()
    run(r, 30)
    seq = r.store.seq[0]
    for name in [MNT + "/store/" + x for x in os.listdir(MNT + "/store") if x[0] == "u"]:
        with open(name, "rb") as f:
            b = f.read()
        with open(name, "wb") as f:
            f.write(b[:len(b) // 2])
    with open(MNT + "/store/u0102-0.0", "wb") as f:          # foreign junk under a key-like name
        f.write(b"hello world, not a record")
    with open(MNT + "/store/readme.txt", "wb") as f:
        f.write(b"x")
    r.power_cut_reboot()
    assert r.totals() == [(0, 0)] * NCH                    # clean start...
    assert any("damaged" in x for x in r.store.report), r.store.report   # ...reported
    run(r, 10)
    assert r.m.imp_total(0) > 0


def t_identity_mismatch():
    r = Rig()
    r.boot()
    run(r, 30)
    old = r.totals()
    # re-wire: another module (new UID) now answers at 0x50
    lfs_rig.UID = b"\x01" * 12
    try:
        r.power_cut_reboot()
    finally:
        lfs_rig.UID = b"\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc"
    assert r.totals() == [(0, 0)] * NCH, r.totals()        # not attached
    assert "identity" in r.store.faults and any("mismatch" in x for x in r.store.report), r.store.report
    names = os.listdir(MNT + "/store")
    assert "u112233445566778899aabbcc-0.0" in names        # old module's record kept
    run(r, 10)
    r.power_cut_reboot()                                   # old module back: its totals return
    assert r.totals()[0][0] >= old[0][0] - 20000


def main():
    fails = 0
    for n in sorted(globals()):
        if n.startswith("t_"):
            try:
                globals()[n]()
                print("PASS", n)
            except Exception as e:
                fails += 1
                print("FAIL", n, repr(e))
                sys.print_exception(e)
            flashsim.umount(MNT)
    print("RESULT fails=%d" % fails)
    sys.exit(1 if fails else 0)


main()
