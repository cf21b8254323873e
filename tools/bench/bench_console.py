"""Console costs on the MicroPython unix port (docs/protocol.md "Costs"):
the per-command signature check, a signed PRESET through the engine, READ,
and the TX queue draining a large reply into a port that takes 64 bytes per
write (rp2-like partial writes). Prints figures; asserts nothing.

  python tools/bench/bench_console.py [--quick]"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")

SCRIPT = r"""
import time, gc
from clock import Ticks
import proto
from proto import auth
from node.console import Console
from test_proto_fake import Rig, FakeNode
N = %d

def us(fn, n):
    gc.collect()
    t = time.ticks_us()
    for i in range(n):
        fn(i)
    return time.ticks_diff(time.ticks_us(), t) / n

ks = b"k" * 32
print("cmd tag (HMAC-SHA256, 1 line)      %%8.1f us" %% us(lambda i: auth.cmd_tag(ks, i + 1, "PRESET 0x50 0 1234.5 0"), N))
print("KEY keystream, 64 bytes            %%8.1f us" %% us(lambda i: auth.key_pad(ks, i + 1, 64), N // 4))
r = Rig()
r.login()
M = N if N < 300 else 300
lines = [r.signed("PRESET 0x50 0 %%d.5 0" %% i).encode() + b"\r\n" for i in range(M)]
print("signed PRESET through the engine   %%8.1f us" %% us(lambda i: r.eng.feed(lines[i], 0), M))
del r.out[:]
del lines
print("READ (3 channels)                  %%8.1f us" %% us(lambda i: (r.eng.feed(b"READ\n", 0), r.out.clear()), N))
print("unsigned SAVE (refused)            %%8.1f us" %% us(lambda i: (r.eng.feed(b"SAVE\n", 0), r.out.clear()), N))

class Port:
    def __init__(self):
        self.n = 0
    def write(self, b):
        k = len(b) if len(b) < 64 else 64
        self.n += k
        return k
    def readinto(self, buf):
        return None

p = Port()
con = Console(p, Ticks(), 20)
for i in range(40):
    con.write(b"CONFIG modules.%%d.ch.2.noload_w=1000\r\n" %% i)
q = con.pending()
polls = 0
t = time.ticks_us()
while con.pending():
    con.poll(0)
    polls += 1
dt = time.ticks_diff(time.ticks_us(), t)
print("TX queue: %%d bytes in %%d polls (64-byte partial writes), %%.1f us per poll" %% (q, polls, dt / polls))
gc.collect()
a = gc.mem_alloc()
e = proto.Engine(FakeNode(), lambda b: None, Ticks(), lambda n: b"\x00" * n)
gc.collect()
print("Engine instance heap               %%8d bytes" %% (gc.mem_alloc() - a))
"""


def main(argv):
    n = 200 if "--quick" in argv else 2000
    path = os.pathsep.join([os.path.join(ROOT, p) for p in ("lib", "tests/lib", "tests/support", "tools")])
    env = dict(os.environ, MICROPYPATH=path)
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=2M", "-c", SCRIPT % n], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    sys.stdout.write("console costs, MicroPython unix port (x86-64), n=%d\n" % n)
    sys.stdout.write(r.stdout)
    if r.returncode:
        sys.stderr.write(r.stderr[-3000:])
    return r.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
