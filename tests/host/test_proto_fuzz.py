"""Heavy protocol fuzz on the MicroPython unix port: 100,000 seeded random
inputs without auth (0 mutations may reach the node, every reply framed) plus
an authenticated run that must never crash. Two interpreters run in parallel."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import runtimes  # noqa: E402

SCRIPT = """
import test_proto_fuzzlite as f
lines, replies, muts = f.fuzz(%d, %d, %s)
print("FUZZ", %d, lines, replies, muts)
"""


def _start(seed, n, authed):
    env = dict(os.environ, MICROPYPATH=runtimes.MICROPYPATH)
    return subprocess.Popen([runtimes.MICROPYTHON, "-X", "heapsize=4M", "-c",
                             SCRIPT % (seed, n, authed, n)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(p):
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, out[-2000:] + err[-4000:]
    line = [l for l in out.splitlines() if l.startswith("FUZZ ")][-1]
    n, lines, replies, muts = [int(x) for x in line.split()[1:]]
    return n, lines, replies, muts


def test_fuzz_100k_unauthenticated_on_unix_port():
    procs = [_start(1001, 50_000, False), _start(2002, 50_000, False)]
    total = replies = 0
    for p in procs:
        n, lines, rep, muts = _result(p)
        assert muts == 0
        total += n
        replies += rep
    print("fuzz: %d inputs, %d replies, 0 mutations" % (total, replies))
    assert total >= 100_000 and replies > 40_000


def test_fuzz_authenticated_on_unix_port():
    n, lines, replies, muts = _result(_start(3003, 10_000, True))
    assert replies > 4_000 and muts > 100
