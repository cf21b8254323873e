"""Store benchmark: prints figures (not a timed test). ~3-6 minutes.

  python tools/bench/bench_store.py [--quick] [--ports=rp2,esp32,unix]

Runs tests/support_store/bench_mp.py on the MicroPython unix port with the
real LittleFS (vfs.VfsLfs2) on a flashsim partition (4 KiB blocks), mounted with
each port's own parameters (MicroPython v1.28.0 sources):
  rp2   progsize=256 (ports/rp2/modules/_boot.py), 352 blocks (1408 KB)
  esp32 VfsLfs2 defaults (progsize=32; vfs.mount autodetect), 512 blocks (2 MB "vfs" partition)
  unix  VfsLfs2 defaults, 256 blocks (the figures before the port parameters were known)
0. inline limit: erases per rewrite of one file by size
1. journal patterns: erases, program ops and bytes per commit, us per commit
2. one simulated day at the default policy (1 s ticks, 1 Wh / 5 s / 10 min):
   (a) typical home: grid channel ~10 kWh import + 8 kWh export per day
   (b) worst case: 3 channels at 10 kW continuous
   -> erases/day, bytes programmed/day, projected flash lifetime
3. per-sample cost of the store's fast path vs the engine stand-in alone (unix parameters)
4. power-cut sweeps (powercut.py) with each port's parameters: exhaustive (ab, 3 torn modes) + random
Lifetime: LittleFS levels wear dynamically (metadata pairs are relocated
after block_cycles erases, new data goes to the next free block), so erases
spread over the free blocks: years = free_blocks x 100,000 / erases_per_day / 365.
Printed for an empty partition and a half-full one."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import runtimes  # noqa: E402

ENV = dict(os.environ, MICROPYPATH=os.pathsep.join(
    os.path.join(ROOT, p) for p in ("lib", "tools", "tests/support", "tests/support_store")))
CYCLES = 100000
PORTS = {"rp2": "RPI_PICO, progsize 256, 352 blocks", "esp32": "ESP32, progsize 32, 512 blocks",
         "unix": "unix defaults, progsize 32, 256 blocks"}


def mp(*args, port="unix"):
    r = subprocess.run([runtimes.MICROPYTHON, "-X", "heapsize=8M",
                        os.path.join(ROOT, "tests", "support_store", "bench_mp.py"), "--port=" + port]
                       + [str(a) for a in args],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=1800)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit("bench_mp failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])


def years(erases_per_day, blocks):
    return blocks * CYCLES / erases_per_day / 365 if erases_per_day else float("inf")


def main():
    quick = "--quick" in sys.argv
    ports = [p for a in sys.argv if a.startswith("--ports=") for p in a[8:].split(",")] or list(PORTS)
    print("== store benchmark (MicroPython unix port, LittleFS v2 with each port's mount parameters) ==")
    print("\n0. inline limit: erases per rewrite of one file of N bytes (300 rewrites)")
    for port in ports:
        r = mp("inline", port=port)
        print("   %-6s %s" % (port, "  ".join("%dB:%.3f" % (x["size"], x["erases_per_save"]) for x in r["rows"])))
    n = 500 if quick else 2000
    print("\n1. journal patterns, %d commits of a 3-channel record" % n)
    print("   %-6s %-8s %10s %10s %12s %10s" % ("port", "pattern", "erase/cmt", "prog/cmt", "bytes/cmt", "us/cmt"))
    for port in ports:
        for p in mp("patterns", n, port=port):
            print("   %-6s %-8s %10.3f %10.2f %12.1f %10.0f" % (port, p["pattern"], p["erases_per_commit"],
                  p["prog_ops_per_commit"], p["prog_bytes_per_commit"], p["us_per_commit"]))
    print("   (us/commit includes the Python block device; power-cut sweeps: see docs/persistence.md)")

    print("\n2. one simulated day at the default policy (threshold 1 Wh, min 5 s, max 10 min)")
    for port in ports:
        print("   -- %s (%s)" % (port, PORTS[port]))
        for sc, label in (("home", "typical home (10 kWh import + 8 kWh export)"),
                          ("worst", "worst case (3 channels x 10 kW continuous)")):
            d = mp("day", sc, port=port)
            epd = d["erases"]
            blocks = d["blocks"]
            print("   %s" % label)
            print("     commits/day %d, erases/day %d (%.3f per commit), programmed %.2f MB/day in %d ops,"
                  % (d["commits"], epd, epd / max(1, d["commits"]), d["prog_bytes"] / 1e6, d["prog_ops"]))
            print("     journal records %.2f MB/day; blocks touched %d, max erases on one block %d"
                  % (d["record_bytes"] / 1e6, d["blocks_touched"], d["max_block_erases"]))
            print("     engine %s (aged 10 years), record %d bytes/channel file; totals import %s, export %s mWh"
                  % (d["engine"], d["record_len"][0], d["import_mwh"], d["export_mwh"]))
            print("     lifetime @100k cycles: %.0f years (%d free blocks), %.0f years (%d free blocks)"
                  % (years(epd, blocks), blocks, years(epd, blocks // 2), blocks // 2))
    print("   worst-case loss on a hard power cut, per channel: max(1 Wh, 5 s x P) + one tick of P")
    for p_w in (300, 1000, 3000, 10000, 50000):
        b = max(1000, p_w * 5000 // 3600)
        print("     P = %5d W: <= %6d mWh (+ %d mWh per 1 s tick)" % (p_w, b, p_w * 1000 // 3600))

    print("\n3. per-sample cost, 3 channels (unix port, us per sample)")
    c = mp("cost")
    print("   engine only (%s)   %8.1f" % (c["engine"], c["none"]))
    print("   + store.tick(), fast rec 1 s %8.1f  (x%.1f)" % (c["tick_fast1s"], c["tick_fast1s"] / c["none"]))
    print("   + store.tick(), fast every   %8.1f  (x%.1f)" % (c["tick_fast_every"], c["tick_fast_every"] / c["none"]))
    print("   fast record update alone     %8.1f  (allocation-free; proven on wasm32 in tests/lib/test_store.py)"
          % c["fast_update_us"])
    print("   -> call store.tick() once per second, not per sample: per-sample overhead x%.2f"
          % ((c["none"] * 5 + c["tick_fast1s"] - c["none"]) / (c["none"] * 5)))

    print("\n4. power-cut sweeps with each port's LittleFS parameters (tests/support_store/powercut.py)")
    for port in ports:
        rows = [mp("powercut", "exhaustive", "ab", torn, 200, port=port) for torn in (0, 1, 2)]
        rnd = mp("powercut", "random", 300 if quick else 1000, 7, port=port)
        print("   %-6s exhaustive ab: %d cuts x 3 torn modes, %d bad, max loss %d mWh (bound %d);"
              " random: %d cuts over %.1f days, %d bad, max loss %d mWh"
              % (port, rows[0]["cuts"], sum(r["nerr"] for r in rows), max(r["lost_max"] for r in rows),
                 rows[0]["bound_mwh"], rnd["cuts"], rnd["sim_days"], rnd["nerr"], rnd["lost_max_mwh"]))


if __name__ == "__main__":
    main()
