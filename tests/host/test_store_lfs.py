"""Store on the real LittleFS (vfs.VfsLfs2, MicroPython unix port) with
power cuts injected by flashsim: exhaustive and randomized sweeps, faults
and corruption. The MicroPython scripts live in tests/support_store/."""
import json
import os
import subprocess

import pytest

import runtimes

ENV = dict(os.environ, MICROPYPATH=os.pathsep.join(
    os.path.join(runtimes.ROOT, p) for p in ("lib", "tools", "tests/support", "tests/support_store")))


def _mp(script, *args, heap="2M", timeout=600):
    r = subprocess.run([runtimes.MICROPYTHON, "-X", "heapsize=" + heap,
                        os.path.join(runtimes.ROOT, "tests", "support_store", script)] + [str(a) for a in args],
                       cwd=runtimes.ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    return r


def _result(r):
    for line in r.stdout.splitlines():
        if line.startswith("RESULT {"):
            return json.loads(line[7:])
    pytest.fail("no RESULT\n" + r.stdout[-3000:] + r.stderr[-3000:])


@pytest.mark.parametrize("torn", [0, 1, 2], ids=["clean", "half", "garbage"])
def test_cut_at_every_flash_op(torn):
    # 30 commits x 3 channel files incl. metadata compaction; cut at every program/erase index
    r = _mp("powercut.py", "exhaustive", "ab", torn, 200)
    res = _result(r)
    print(res)
    assert res["nerr"] == 0, res["errors"]
    assert res["cuts"] == res["ops"] + 1 and res["ops"] >= 60
    assert 0 < res["lost_max"] // 2 <= res["bound_mwh"]


def test_randomized_10000_cuts():
    # two independent 5,000-cut chains (different seeds) side by side on 2 cores
    procs = [subprocess.Popen([runtimes.MICROPYTHON, "-X", "heapsize=2M",
                               os.path.join(runtimes.ROOT, "tests", "support_store", "powercut.py"),
                               "random", "5000", str(seed)],
                              cwd=runtimes.ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (7, 8)]
    tot = {"cuts": 0, "sim_days": 0.0, "soft_resets": 0, "lost_max_mwh": 0, "commits": 0}
    for p in procs:
        out, err = p.communicate(timeout=900)
        res = _result(subprocess.CompletedProcess(p.args, p.returncode, out, err))
        assert res["nerr"] == 0, res["errors"]
        for k in ("cuts", "sim_days", "soft_resets", "commits"):
            tot[k] += res[k]
        tot["lost_max_mwh"] = max(tot["lost_max_mwh"], res["lost_max_mwh"])
    print("randomized:", tot)
    assert tot["cuts"] >= 10000 and tot["sim_days"] >= 28
    assert tot["soft_resets"] > 1000          # these recovered exactly (checked in the script)


def test_faults_and_corruption():
    r = _mp("lfs_faults.py")
    print(r.stdout)
    assert "RESULT fails=0" in r.stdout, r.stdout[-4000:]
    for name in ("t_full", "t_readonly", "t_missing", "t_bitflip", "t_every_byte_flip",
                 "t_truncated_and_foreign", "t_identity_mismatch"):
        assert "PASS " + name in r.stdout


def test_flash_image_file_backed(tmp_path):
    # the sim node keeps its flash in an image file between runs
    img = str(tmp_path / "flash.img")
    code = """
import sys, flashsim
from flashsim import RAMFlash
from flashsim.fakemeter import FakeMeter
from store.persist import Store, MeterSource
from store.journal import Journal
first = sys.argv[2] == "1"
d = RAMFlash(16, path=sys.argv[1])
flashsim.mount(d, "/flash", mkfs=first)
m = FakeMeter(1)
s = Store(MeterSource([(m, 0)]), [(b"\\x05" * 12, 0x51, 1)], journal=Journal("/flash/store"))
s.boot()
print("BOOT", m.imp_total(0))
m.add(0, 3600000, 1000)
s.shutdown()
flashsim.umount("/flash")
d.save()
"""
    script = tmp_path / "img.py"
    script.write_text(code)
    outs = []
    for first in ("1", "0", "0"):
        r = subprocess.run([runtimes.MICROPYTHON, str(script), img, first], env=ENV,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.split()[-1])
    assert outs == ["0", "1000", "2000"]
    assert os.path.getsize(img) == 16 * 4096
