"""BLE figures of the node (docs/ble.md), on the unix port built with NimBLE
from the firmware source, talking HCI over a pty to Bumble's controllers.

  python tools/bench/bench_ble.py [--quick] [--bits 32|64]

1. Heap: gc.mem_alloc() after a collection (the node's own STATUS heap_used,
   and simnode's boot line) of the sim node with BLE off vs on, idle and with
   1 and 2 centrals connected; NimBLE's own buffers (the stack allocates them
   on the MicroPython heap) measured apart: a bare BLE().active(True).
   The 32-bit build (MICROPY_FORCE_32BIT=1) has the object sizes of ESP32
   and RP2040; --bits 64 measures the 64-bit build (pointers x2).
2. Reply throughput, bytes/s of notification payload, at ATT MTU 23 and 247
   (CONFIG in text mode, repeated).
3. Connect-to-first-reply: link-layer connect, (MTU exchange), GATT
   discovery, subscribe, write INFO, first notification; median of N.
4. Raw `bluetooth` API vs aioble (micropython-lib in the same source, as
   .mpy from its mpy-cross): heap to register the same three services.
Figures only; nothing is asserted."""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for p in ("tools", "lib"):
    sys.path.insert(0, os.path.join(ROOT, p))

import fwbuild  # noqa: E402
from rbmeter.ble import BleSerial, BumbleCentral  # noqa: E402
from rbmeter.ble_link import BleNode, Radio  # noqa: E402
from rbmeter.client import Client  # noqa: E402

CFG = {"modules": [{"addr": 0x50}], "auth": {"secret": "bench secret 0123456789"}}


def nimble_heap(mp, radio):
    code = ("import gc, bluetooth\ngc.collect()\na=gc.mem_alloc()\nb=bluetooth.BLE()\nb.active(True)\n"
            "gc.collect()\nprint('NIMBLE', gc.mem_alloc()-a)\n")
    env = dict(os.environ, MICROPYBTUART=radio.node_tty)
    env.pop("MICROPYPATH", None)
    r = subprocess.run([mp, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    for ln in r.stdout.splitlines():
        if ln.startswith("NIMBLE"):
            return int(ln.split()[1])
    return None


def boot_mem(node):
    for ln in node.lines:
        if ln.startswith("LOG mem sim+flash="):
            return int(ln.split("node=")[1].split()[0])
    return None


def heap_used(node):
    u = Client(node.console, timeout=5)
    try:
        time.sleep(1.5)                  # a few polls with the connections up
        return int(u.status()["heap_used"])
    finally:
        u.close()


def connect(radio, dev, mtu):
    c = BumbleCentral(dev)
    radio.loop.run(c.connect(radio.node_addr + "/P", mtu), 30)
    return c


def heap_figures(mp, bits):
    print("\n-- heap, %d-bit unix+NimBLE build (%s)" % (bits, mp))
    out = {}
    for ble in (False, True):
        radio = Radio()
        st = tempfile.mkdtemp(prefix="rbm-bench-ble-")
        node = BleNode(radio, st, CFG, micropython=mp, ble=ble)
        try:
            node.start()
            out[ble] = [boot_mem(node), heap_used(node)]
            if ble:
                devs = [radio.central() for _ in range(2)]
                cs = []
                for d in devs:
                    cs.append(connect(radio, d, 247))
                    out.setdefault("conns", []).append(heap_used(node))
                for c in cs:
                    radio.loop.run(c.disconnect(), 10)
                out["nimble"] = None
        finally:
            node.close()
            radio.close()
    radio = Radio()
    try:
        out["nimble"] = nimble_heap(mp, radio)
    finally:
        radio.close()
    off_boot, off_run = out[False]
    on_boot, on_run = out[True]
    nim = out["nimble"] or 0
    print("%-44s %10s %10s" % ("", "boot B", "running B"))
    print("%-44s %10d %10d" % ("node heap, BLE off", off_boot, off_run))
    print("%-44s %10d %10d" % ("node heap, BLE on, advertising", on_boot, on_run))
    for i, v in enumerate(out.get("conns", [])):
        print("%-44s %10s %10d" % ("node heap, BLE on, %d central(s)" % (i + 1), "", v))
    print("%-44s %10d" % ("NimBLE's own (bare BLE().active(True))", nim))
    tot = out["conns"][-1] - off_run
    print("%-44s %10d   (goal 16384; lib/ble + engines + NimBLE %d)" % (
        "BLE total with 2 centrals", tot, nim))
    print("%-44s %10d" % ("  of which Python side (lib/ble, 2 engines)", tot - nim))
    print("%-44s %10d" % ("  per extra central", out["conns"][1] - out["conns"][0]))
    return out


def throughput(radio, dev, mtu, rounds):
    c = connect(radio, dev, mtu)
    ser = BleSerial(c, radio.loop)
    cl = Client(ser, timeout=10, json_mode=False)
    try:
        cl.command("CONFIG")
        c.sizes.clear()
        t0 = time.monotonic()
        for _ in range(rounds):
            cl.command("CONFIG")
        dt = time.monotonic() - t0
        n = sum(c.sizes)
        return c.mtu, n / dt, n / rounds, len(c.sizes) / rounds
    finally:
        ser.close()


def first_reply(radio, dev, mtu):
    import asyncio
    c = BumbleCentral(dev)

    async def run():
        t0 = time.monotonic()
        ev = asyncio.Event()
        await c.connect(radio.node_addr + "/P", mtu)
        t1 = time.monotonic()
        c.on_data = lambda d: ev.set()
        await c.write(b"INFO\n")
        await asyncio.wait_for(ev.wait(), 10)
        t2 = time.monotonic()
        await c.disconnect()
        return t1 - t0, t2 - t0
    return radio.loop.run(run(), 60)


def link_figures(mp, quick):
    radio = Radio()
    st = tempfile.mkdtemp(prefix="rbm-bench-ble-")
    node = BleNode(radio, st, CFG, micropython=mp)
    try:
        node.start()
        dev = radio.central()
        time.sleep(1)
        print("\n-- reply throughput (CONFIG, text mode, notification payload bytes)")
        print("%8s %12s %14s %14s" % ("ATT MTU", "bytes/s", "bytes/reply", "notif/reply"))
        for mtu in (23, 247):
            m, bps, per, nn = throughput(radio, dev, mtu, 5 if quick else 20)
            print("%8d %12.0f %14.0f %14.1f" % (m, bps, per, nn))
            time.sleep(0.3)
        print("\n-- connect to first reply (connect + discovery + subscribe, then INFO)")
        print("%8s %16s %16s %6s" % ("ATT MTU", "ready ms (med)", "1st reply ms", "n"))
        for mtu in (23, 247):
            xs = [first_reply(radio, dev, mtu) for _ in range(5 if quick else 15)]
            print("%8d %16.0f %16.0f %6d" % (mtu, 1000 * statistics.median(a for a, _ in xs),
                                            1000 * statistics.median(b for _, b in xs), len(xs)))
    finally:
        node.close()
        radio.close()


AIOBLE_PROBE = r"""
import gc, sys, bluetooth
U = bluetooth.UUID
NUS = (U("6E400001-B5A3-F393-E0A9-E50E24DCCA9E"), ((U("6E400003-B5A3-F393-E0A9-E50E24DCCA9E"), 0x10),
                                                 (U("6E400002-B5A3-F393-E0A9-E50E24DCCA9E"), 0x0c)))
TOT = (U("7B6D0001-5E1A-4C2B-9A4E-52424D455452"), ((U("7B6D0002-5E1A-4C2B-9A4E-52424D455452"), 0x12),))
DIS = (U(0x180A), tuple((U(x), 2) for x in (0x2A24, 0x2A25, 0x2A26, 0x2A29)))
S = (NUS, TOT, DIS)
b = bluetooth.BLE(); b.active(True)
gc.collect(); a0 = gc.mem_alloc()
if sys.argv[1] == "raw":
    b.gatts_register_services(S)
    gc.collect(); a1 = a2 = gc.mem_alloc()
else:
    import aioble
    gc.collect(); a1 = gc.mem_alloc()
    svcs = []
    for su, chars in S:
        sv = aioble.Service(su)
        for cu, f in chars:
            aioble.Characteristic(sv, cu, read=bool(f & 2), write=bool(f & 8), write_no_response=bool(f & 4),
                                  notify=bool(f & 0x10), capture=bool(f & 8))
        svcs.append(sv)
    aioble.register_services(*svcs)
    gc.collect(); a2 = gc.mem_alloc()
print("HEAP", a1 - a0, a2 - a1)
"""


def aioble_figures(mp):
    from fwbuild import source
    src = source.resolve(ROOT, fwbuild.cache_dir(), lambda *a: None)
    lib = os.path.join(src.path, "lib", "micropython-lib", "micropython", "bluetooth", "aioble", "aioble")
    mc = fwbuild.mpy_cross()
    tmp = tempfile.mkdtemp(prefix="rbm-aioble-")
    os.makedirs(os.path.join(tmp, "aioble"))
    for f in ("__init__", "core", "device", "peripheral", "server"):
        subprocess.run([mc, "-msmall-int-bits=31", "-o", os.path.join(tmp, "aioble", f + ".mpy"),
                        os.path.join(lib, f + ".py")], check=True)
    probe = os.path.join(tmp, "probe.py")
    with open(probe, "w") as f:
        f.write(AIOBLE_PROBE)
    print("\n-- raw bluetooth API vs aioble: the same 3 services (NUS, totals, DIS), heap B")
    print("%-10s %14s %14s" % ("", "code (.mpy)", "services"))
    for mode in ("raw", "aioble"):
        radio = Radio()
        try:
            env = dict(os.environ, MICROPYBTUART=radio.node_tty, MICROPYPATH=".frozen:" + tmp)
            r = subprocess.run([mp, probe, mode], env=env, capture_output=True, text=True, timeout=60)
            v = [ln.split()[1:] for ln in r.stdout.splitlines() if ln.startswith("HEAP")]
            if v:
                print("%-10s %14s %14s" % (mode, v[0][0] if mode == "aioble" else "-", v[0][1] if mode == "aioble"
                                           else v[0][0]))
            else:
                print(mode, "failed:", r.stderr[-300:])
        finally:
            radio.close()
    print("(aioble also keeps one asyncio task and event per awaited characteristic and connection)")


def main(argv):
    quick = "--quick" in argv
    bits = 64 if "--bits" in argv and argv[argv.index("--bits") + 1] == "64" else 32
    mp64 = fwbuild.unix_ble()
    mp = mp64
    if bits == 32:
        try:
            mp = fwbuild.unix_ble32()
        except Exception as e:        # no gcc-multilib: say so, measure 64-bit
            print("32-bit build unavailable (%s): 64-bit figures; pointers and object headers halve "
                  "on ESP32/RP2040" % e)
            bits = 64
    heap_figures(mp, bits)
    aioble_figures(mp)
    link_figures(mp64, quick)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
