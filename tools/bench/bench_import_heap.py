"""Heap needed for lib/ as the board loads it: .mpy files on the filesystem vs frozen.

  python tools/bench/bench_import_heap.py [--no-pico]

1. The 32-bit unix port with NimBLE built from the firmware source (tools/fwbuild unix-ble32:
   31-bit small ints and 4-byte pointers, the object sizes of RP2040 and ESP32), lib/ frozen in.
   For each way, bisects the smallest `-X heapsize` with which the imports succeed, and reports
   the heap in use after them and a gc.collect(): the start-up set (`node.app`, what main.py
   imports, plus `ble`) and every lib/ module. The .mpy files are the ones BUILD.md deploys
   (build/deploy/rp2/lib, compiled by the firmware source's mpy-cross).
2. The real rp2 heap: the node running on the emulated Pico (tools/picoboard) 8 s after boot, with
   one UI2 module and with eight UI3 modules, STATUS heap_used (taken after the node's
   gc.collect()): the frozen firmware with boot.py/main.py/config, and the stock firmware with the
   LittleFS image of `make fsimage`."""
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


def all_modules():
    out = []
    for d, dirs, files in os.walk(os.path.join(ROOT, "lib")):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(d, f), os.path.join(ROOT, "lib"))[:-3]
                out.append(rel[:-len("/__init__")] if rel.endswith("/__init__") else rel)
    return sorted(m.replace("/", ".") for m in out)


def unix_figures():
    exe = fwbuild.unix_ble32()
    mpy = os.path.join(fsimage.stage("rp2"), "lib")
    empty = PROBE % "pass"
    base = min_heap(exe, empty, None)
    rows = (("frozen (firmware/manifest.py)", None),
            (".mpy files on the filesystem", mpy + ":.frozen"),
            (".py sources on the filesystem", os.path.join(ROOT, "lib") + ":.frozen"))
    for what, mods in (("start-up: " + ", ".join(IMPORTS), IMPORTS),
                       ("every lib/ module (%d)" % len(all_modules()), all_modules())):
        code = PROBE % "\n".join("import " + m for m in mods)
        print("== heap to import lib/ (%s) on the 32-bit unix port, v1.28.0 ==" % what)
        print("   %-34s %12s %18s" % ("way", "min heap", "in use after gc"))
        for label, path in rows:
            need = min_heap(exe, code, path)
            used = run(exe, 1 << 20, code, path)
            print("   %-34s %9d B %15d B" % (label, need - base, used[0]))
    print("   (min heap: smallest -X heapsize that imports, minus %d B that an empty script needs)" % base)


def pico_figures(secs=8.0):
    import json
    from picoboard import PicoBoard, board_config, default_files
    img = os.path.join(ROOT, "build", "firmware", "fs", "rp2-lfs.bin")
    fsimage.build_image(out=img)
    fs_files = fsimage.walk(fsimage.new_fs(open(img, "rb").read()))
    stock = fwbuild.rp2_stock()["bin"]
    print("== the node on the emulated Pico, %.0f s after boot (STATUS, after the node's gc.collect) ==" % secs)
    for nmod, mods in ((1, "0x50:UI2"), (8, ",".join("0x%02x:UI3" % a for a in range(0x50, 0x58)))):
        cfg = board_config()
        cfg["modules"] = [{"addr": a} for a in range(0x50, 0x50 + nmod)]
        files = dict(fs_files)
        files["/config.json"] = json.dumps(cfg).encode()
        for label, kw in (("frozen firmware", {"files": default_files(cfg)}),
                          ("stock firmware + .mpy on LittleFS", {"files": files, "firmware_bin": stock})):
            b = PicoBoard(pty=False, modules=mods, **kw)
            try:
                b.start()
                b.run_for(secs)
                st = dict(kv.split(b"=", 1) for line in b.console_cmd("STATUS").split(b"\r\n")
                          for kv in line.split()[1:] if b"=" in kv)
            finally:
                b.close()
            print("   %d module(s), %-34s heap_used %7d B  heap_free %7d B"
                  % (nmod, label, int(st[b"heap_used"]), int(st[b"heap_free"])))


def main():
    unix_figures()
    if "--no-pico" not in sys.argv:
        pico_figures()


if __name__ == "__main__":
    main()
