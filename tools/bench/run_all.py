"""Runs every benchmark in one go and prints their figures (`make bench`).

  python tools/bench/run_all.py [--quick]

Benchmarks print measurements side by side; they never assert timings
(the test suite does not depend on machine speed)."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHES = ("bench_energy.py", "bench_store.py", "bench_node.py", "bench_bridge.py", "bench_import_heap.py",
           "bench_pico.py", "bench_ble.py", "bench_console.py")


def main(argv):
    rc = 0
    for b in BENCHES:
        t0 = time.time()
        print("\n" + "=" * 78 + "\n" + b + "\n" + "=" * 78, flush=True)
        r = subprocess.run([sys.executable, os.path.join(HERE, b)] + argv)
        print("-- %s: exit %d, %.0f s" % (b, r.returncode, time.time() - t0), flush=True)
        rc = rc or r.returncode
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
