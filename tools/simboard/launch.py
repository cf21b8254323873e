"""Host side (CPython) of docs/simnode.md for tests and benchmarks: start
simnode.py on the MicroPython unix port with its console on a PtyBridge,
wait for READY/DONE/CUT lines, talk to the console line by line."""
import os
import queue
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

from rbmeter.ptybridge import PtyBridge   # noqa: E402
from rbmeter.sim import node_env, stop_node   # noqa: E402

MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
SIMNODE = os.path.join(ROOT, "tools", "simboard", "simnode.py")
CUT_RC = 99


class SimNode:
    """One power-up. args: extra simnode options (list of str)."""

    def __init__(self, state, args=(), heap="2M", bridge=None):
        self.own_bridge = bridge is None
        self.bridge = bridge or PtyBridge()
        self.argv = [MICROPYTHON, "-X", "heapsize=" + heap, SIMNODE, "--tty", self.bridge.node_path,
                     "--state", state] + list(args)
        self.proc = subprocess.Popen(self.argv, env=node_env(), cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.events = queue.Queue()
        self.lines = []
        self.err = []
        threading.Thread(target=self._out, daemon=True).start()
        threading.Thread(target=self._errr, daemon=True).start()
        self.ser = None

    def _out(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            self.lines.append(line)
            k, _, rest = line.partition(" ")
            if k in ("READY", "DONE", "CUT", "SAFE", "REBOOT"):
                self.events.put((k, int(rest.split()[0])))
        self.events.put(("EXIT", self.proc.wait()))

    def _errr(self):
        for raw in self.proc.stderr:
            self.err.append(raw.decode("utf-8", "replace"))

    def wait(self, kind, timeout=60):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %s; stdout=%r stderr=%s" % (kind, self.lines[-5:], "".join(self.err)[-3000:]))
            try:
                k, v = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if k == kind:
                return v
            if k == "EXIT" or (k == "CUT" and kind != "CUT"):
                raise RuntimeError("wanted %s, got %s %s; stdout=%s stderr=%s" % (
                    kind, k, v, "\n".join(self.lines[-30:]), "".join(self.err)[-3000:]))

    def serial(self, timeout=5):
        import serial
        if self.ser is None:
            self.ser = serial.Serial(self.bridge.host_path, 115200, timeout=timeout)
        return self.ser

    def cmd(self, line, timeout=5):
        """Send one command line; return the reply lines up to the terminating
        OK / ERR line (or a single-line reply)."""
        s = self.serial(timeout)
        s.reset_input_buffer()
        s.write(line.encode() + b"\r\n")
        out = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            raw = s.readline()
            if not raw:
                continue
            t = raw.decode("utf-8", "replace").rstrip("\r\n")
            out.append(t)
            if t == "OK" or t.startswith("OK ") or t.startswith("ERR") or t == "END" or t.startswith("NONCE"):
                return out
        raise TimeoutError("no reply to %r: %r" % (line, out))

    def stop(self, timeout=10):
        if self.ser is not None:
            self.ser.close()
            self.ser = None
        stop_node(self.proc, timeout)
        if self.own_bridge:
            self.bridge.close()
        return self.proc.returncode
