"""Heavy protocol fuzz on the MicroPython unix port: 100,000 seeded random
inputs with the signed-command authentication (an owner logs in and signs now
and then; the fuzzer replays, alters and forges): 0 unauthorised mutations,
every reply framed. Plus an unauthenticated run (no mutation at all). Two
interpreters run in parallel."""
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


def test_fuzz_100k_with_signed_auth_on_unix_port():
    procs = [_start(1001, 50_000, True), _start(2002, 50_000, True)]
    total = replies = muts = 0
    for p in procs:
        n, lines, rep, m = _result(p)      # fuzz() asserts: every mutation was owner-signed
        total += n
        replies += rep
        muts += m
    print("fuzz: %d inputs, %d replies, %d owner-signed mutations, 0 unauthorised" % (total, replies, muts))
    assert total >= 100_000 and replies > 40_000 and muts > 1_000


def test_fuzz_unauthenticated_on_unix_port():
    n, lines, replies, muts = _result(_start(3003, 20_000, False))
    assert muts == 0 and replies > 8_000
