"""`rbamp` works on plain CPython with nothing but lib/ on sys.path (a Linux
master with smbus-like glue): no micropython shims, default sleep and clock."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r'''
import sys, struct
sys.path.insert(0, LIB)
import rbamp
assert "micropython" not in sys.modules and "machine" not in sys.modules
assert issubclass(rbamp.RbAmpParamError, ValueError)     # as upstream, CPython only

class Bus:
    """machine.I2C-like object over a register image (what a Linux adapter provides)."""
    def __init__(self):
        m = self.m = bytearray(256)
        m[0x03] = 0x04; m[0x54] = 1; m[0x55] = 1; m[0x57] = 0x9E; m[0x58] = 0x07; m[0x24] = 1
        m[0x70] = 1; m[0x71] = 3
        m[0xA6:0xAA] = struct.pack("<f", -1234.5)
    def readfrom_mem_into(self, addr, reg, buf):
        if addr != 0x50:
            raise OSError(19, "ENODEV")
        buf[:] = self.m[reg:reg + len(buf)]
    def writeto_mem(self, addr, reg, buf):
        if reg != 0x01:
            self.m[reg] = buf[0] if reg != 0x2A else self.m[reg] & ~buf[0]

dev = rbamp.RbAmp(Bus())          # default delay (time.sleep) and clock (time.monotonic)
dev.begin()
assert dev.read_rt() == 1 and dev.p_mw == [-1234500], dev.p_mw
assert dev.read_power(0) == -1234.5
dev.latch_period()
print("OK", dev)
'''


def test_imports_and_runs_with_only_lib_on_path(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MICROPYPATH")}
    code = "LIB = %r\n" % os.path.join(ROOT, "lib") + SCRIPT
    r = subprocess.run([sys.executable, "-S", "-c", code], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK RbAmp(0x50 UI1 v0x04 BASIC burst)")
