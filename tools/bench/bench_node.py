"""Benchmarks of the whole node on the MicroPython unix port (simnode.py):

  speed    virtual-time speed: simulated hours per wall second and per CPU
           second, at the real 200 ms RT window and at coarser windows
  latency  console round trip (READ, text mode) while the node samples in
           real time: median and p99 over N commands
  heap     smallest `-X heapsize` that runs a simulated week: bisection over
           heap sizes on a short run (the heap need does not grow with the
           run length once the journal files exist), then one full week at
           the found size (plus 10 %) to confirm

usage: .venv/bin/python tools/bench/bench_node.py [speed] [latency] [heap] [--quick]"""
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "simboard"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from launch import SimNode, MICROPYTHON, SIMNODE   # noqa: E402
from rbmeter.sim import node_env   # noqa: E402


def _cpu():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime


def run_virtual(hours, window_ms=200, heap="2M", extra=(), console_ms=10000, timeout=900):
    """One virtual run with no console traffic. Returns (ok, wall s, cpu s, output)."""
    d = tempfile.mkdtemp(prefix="bench-node-")
    try:
        argv = [MICROPYTHON, "-X", "heapsize=" + heap, SIMNODE, "--tty", "/dev/null", "--state", d,
                "--virtual", "--duration", str(int(hours * 3600)), "--window-ms", str(window_ms),
                "--store-ms", "1000" if window_ms <= 200 else "5000", "--console-ms", str(console_ms)] + list(extra)
        c0 = _cpu()
        t0 = time.monotonic()
        r = subprocess.run(argv, env=node_env(), cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        wall = time.monotonic() - t0
        cpu = _cpu() - c0
        ok = r.returncode == 0 and "DONE" in r.stdout
        return ok, wall, cpu, r.stdout + r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def bench_speed(quick):
    print("== virtual-time speed (no console traffic, 1 module UI2, solar profile)")
    cases = [(200, 1 if quick else 6), (1000, 6 if quick else 24), (2000, 24 if quick else 48)]
    for w, h in cases:
        ok, wall, cpu, out = run_virtual(h, w)
        print("window %4d ms: %5.1f h simulated in %6.1f s wall / %6.1f s CPU -> %6.1f h per wall s, %6.1f h per CPU s%s"
              % (w, h, wall, cpu, h / wall, h / cpu, "" if ok else "  FAILED:\n" + out[-2000:]))
        print("               a week would take %.0f s CPU" % (168 * cpu / h))


def bench_latency(quick, extra=()):
    print("== console round-trip latency while sampling (real time, READ in text mode)")
    import serial
    n_cmds = 50 if quick else 300
    d = tempfile.mkdtemp(prefix="bench-node-")
    n = SimNode(d, ["--modules", "0x50:UI2,0x51:UI3"] + list(extra))
    try:
        n.wait("READY", 60)
        s = serial.Serial(n.bridge.host_path, 115200, timeout=2)
        time.sleep(1.0)                      # let sampling lock onto the windows
        s.reset_input_buffer()
        lat = []
        for i in range(n_cmds):
            t0 = time.perf_counter()
            s.write(b"READ\r\n")
            while True:
                line = s.readline()
                if not line:
                    raise RuntimeError("no reply to command %d: %r" % (i, n.lines[-5:]))
                if line.startswith(b"OK") or line.startswith(b"ERR"):
                    break
            lat.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.013)                # arrive at random phases of the poll cycle
        s.close()
        lat.sort()
        med = lat[len(lat) // 2]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print("%d x READ (5 channels): median %.2f ms, p99 %.2f ms, max %.2f ms (%s)"
              % (len(lat), med, p99, lat[-1], " ".join(extra) or "console poll 20 ms"))
    finally:
        n.stop()
        shutil.rmtree(d, ignore_errors=True)


def _kib(k):
    return "%dk" % k


def bench_heap(quick):
    print("== heap: smallest -X heapsize for the running node (sim + flash image included)")
    short_h = 2 if quick else 6
    lo, hi = 64, 2048                        # KiB; lo fails, hi works
    ok, _, _, out = run_virtual(short_h, 1000, _kib(hi))
    if not ok:
        print("does not run at %d KiB:\n%s" % (hi, out[-1500:]))
        return
    while hi - lo > 16:
        mid = (lo + hi) // 2
        ok, _, _, _ = run_virtual(short_h, 1000, _kib(mid))
        print("  %5d KiB, %d h: %s" % (mid, short_h, "ok" if ok else "fails"))
        if ok:
            hi = mid
        else:
            lo = mid
    print("smallest heap for a %d h run: %d KiB (fails at %d KiB)" % (short_h, hi, lo))
    ok, _, _, out = run_virtual(1, 1000, "2M")
    for ln in out.splitlines():
        if ln.startswith("LOG mem"):
            print("  split (bytes, after gc.collect): " + ln[8:])
    conf = int(hi * 1.1)
    hours = 24 if quick else 168
    ok, wall, cpu, out = run_virtual(hours, 1000, _kib(conf))
    print("full %d h run at %d KiB (+10 %%): %s (%.0f s wall)" % (hours, conf, "ok" if ok else "FAILED", wall))
    # what the simulator side holds: flash image (64 x 4 KiB) + register sim
    print("note: the heap includes the flash image held in RAM (256 KiB), the simulator and the"
          " bytecode of every lib/ module compiled from source (frozen on a board: not on the heap)")


def main(argv):
    quick = "--quick" in argv
    which = [a for a in argv if not a.startswith("--")] or ["speed", "latency", "heap"]
    if "speed" in which:
        bench_speed(quick)
    if "latency" in which:
        bench_latency(quick)
        bench_latency(quick, ("--console-ms", "2"))
    if "heap" in which:
        bench_heap(quick)


if __name__ == "__main__":
    main(sys.argv[1:])
