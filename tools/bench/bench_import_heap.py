"""Heap needed to import lib/ as the board does: .mpy files on the filesystem vs frozen.

  python tools/bench/bench_import_heap.py

Runs on the 32-bit unix port with NimBLE built from the firmware source (tools/fwbuild
unix-ble32: 31-bit small ints and 4-byte pointers, the object sizes of RP2040 and ESP32), with
lib/ frozen in. For each way, bisects the smallest `-X heapsize` with which the node's start-up
imports (`import node.app`, what main.py does, plus `ble`) succeed, and reports the heap in use
after the imports and a gc.collect(). The .mpy files are the ones BUILD.md deploys
(build/deploy/rp2/lib, compiled by the firmware source's mpy-cross).
The emulated-Pico figure (the real rp2 heap) comes from the board harness (docs/pico.md)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import fwbuild  # noqa: E402
from fwbuild import fsimage  # noqa: E402

IMPORTS = ("node.app", "ble")
PROBE = ("import gc\ngc.collect()\nb=gc.mem_alloc()\n%s\ngc.collect()\n"
         "print('HEAP', gc.mem_alloc()-b, gc.mem_alloc(), gc.mem_free())\n")


def run(exe, heap, code, path):
    env = dict(os.environ)
    if path:
        env["MICROPYPATH"] = path
    else:
        env.pop("MICROPYPATH", None)
    r = subprocess.run([exe, "-X", "heapsize=%d" % heap, "-c", code], cwd="/", env=env,
                       capture_output=True, text=True, timeout=60)
    for ln in r.stdout.splitlines():
        if ln.startswith("HEAP "):
            return [int(x) for x in ln.split()[1:]]
    return None


def min_heap(exe, code, path, lo=2048, hi=1 << 20, step=256):
    if run(exe, hi, code, path) is None:
        raise SystemExit("imports fail even with %d B of heap" % hi)
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if run(exe, mid, code, path) is None:
            lo = mid
        else:
            hi = mid
    return hi


def main():
    exe = fwbuild.unix_ble32()
    mpy = os.path.join(fsimage.stage("rp2"), "lib")
    code = PROBE % "\n".join("import " + m for m in IMPORTS)
    empty = PROBE % "pass"
    print("== heap to import lib/ (%s) on the 32-bit unix port, v1.28.0 ==" % ", ".join(IMPORTS))
    print("   %-34s %12s %18s" % ("way", "min heap", "in use after gc"))
    base = min_heap(exe, empty, None)
    rows = (("frozen (firmware/manifest.py)", None),
            (".mpy files on the filesystem", mpy + ":.frozen"),
            (".py sources on the filesystem", os.path.join(ROOT, "lib") + ":.frozen"))
    for label, path in rows:
        need = min_heap(exe, code, path)
        used = run(exe, 1 << 20, code, path)
        print("   %-34s %9d B %15d B" % (label, need - base, used[0]))
    print("   (min heap: smallest -X heapsize that imports, minus %d B that an empty script needs)" % base)


if __name__ == "__main__":
    main()
