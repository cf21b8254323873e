"""The node on the emulated Pico (frozen RPI_PICO firmware, rp2040js, tools/picoboard),
measured against issue 9's goals and printed side by side:

  heap      STATUS heap_used (after the node's own gc.collect()), node running
            with store + console: one UI3 module (goal <= 48 KB), eight (<= 80 KB);
            peak: heap_used from a STATUS queued right behind the largest reply
            (READ with eight modules, CONFIG) while that reply is still in the TX
            queue (the UART line rate is modelled, so it stays there)
  cpu       core cycles not in WFE/WFI (the emulator counts them exactly, 8 ns
            each at 125 MHz) while sampling at 5 Hz, console and store idle:
            whole node (<= 5 % / 10 ms per 200 ms window with one module,
            <= 25 % with eight); per three-channel module per window =
            (eight modules - one module) / 7 (read + decode + integrate, <= 2 ms)
  store     CPU per save of every channel (extra cycles over the idle rate /
            saves) and the flash operations, which run with interrupts off (the
            emulated boot ROM routines: 45 ms per 4 KB erase, 0.7 ms per 256 B
            program); windows missed meanwhile
  console   CPU per command (extra cycles over the idle rate, reply on the wire)
  i2c       bus occupancy per window at 50 kHz from bytes on the wire
            (bytes x 9 / f_SCL, START/STOP not counted), modules per bus at 5 Hz
  profile   PC samples of the idle one-module window mapped to firmware.elf

The profile is low power while idle (no commit due) and high power from
COMMIT_AT_S on (a commit every save.min_interval_s = 5 s).

usage: .venv/bin/python tools/bench/bench_pico.py [--quick] [--firmware BIN] [--top N]"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import picoboard                       # noqa: E402
import rbamp_sim                       # noqa: E402
from picoboard import profile as pprof  # noqa: E402

NS_PER_CYCLE = 8                       # 125 MHz
WINDOW_NS = 200 * 1000000
F_SCL = 50000
COMMIT_AT_S = 40
SAVE_EVERY_S = 5                       # rp2040.json save.min_interval_s (high power: every interval)
GOALS = {"heap1": 48 * 1024, "heap8": 80 * 1024, "busy1": 5.0, "ms1": 10.0, "busy8": 25.0, "per_mod": 2.0}
COMMANDS = ("INFO", "STATUS", "TOTALS", "READ", "CONFIG", "HELP")


def _profile():
    return rbamp_sim.Profile.from_csv("t_s,p0_w,p1_w,p2_w\n0,5,-3,2\n%d,3000,-2000,1500\n" % COMMIT_AT_S)


def _board(n, fw, seed=1):
    cfg = picoboard.board_config()
    cfg["modules"] = [{"addr": 0x50 + i, "label": "m%d" % i} for i in range(n)]
    mods = ",".join("0x%02x:UI3" % (0x50 + i) for i in range(n))
    b = picoboard.PicoBoard(modules=mods, profile=_profile(), seed=seed, config=cfg, line_rate=True, pty=False,
                            firmware_bin=fw)
    b.wire_bytes = 0
    wire = b.bus._wire

    def counted(nbytes):                # bytes on the wire (address bytes included)
        b.wire_bytes += nbytes
        return wire(nbytes)
    b.bus._wire = counted
    return b.start()


def _status_of(reply):
    from rbmeter.client import parse_text_record
    out = {}
    for ln in reply.decode("utf-8", "replace").split("\n"):
        ln = ln.strip()
        if ln.startswith("STATUS "):
            out.update(parse_text_record(ln))
    return out


def _int(v, d=-1):
    try:
        return int(v)
    except (TypeError, ValueError):
        return d


class Meter:
    """Cycles / time / wire bytes between two marks."""

    def __init__(self, b):
        self.b = b
        self.s = b.stats()
        self.w = b.wire_bytes

    def done(self):
        s = self.b.stats()
        dt = s["t"] - self.s["t"]
        cyc = s["chipCycles"] - self.s["chipCycles"]
        return {"dt": dt, "cyc": cyc, "wire": self.b.wire_bytes - self.w, "wfe": s["wfeNs"] - self.s["wfeNs"],
                "flash_ns": (s["eraseNs"] - self.s["eraseNs"]) + (s["progNs"] - self.s["progNs"]),
                "rx_over": sum(s["rxOverrun"]) - sum(self.s["rxOverrun"])}


def idle_window(b, seconds, sample_every=0):
    if sample_every:
        b.pc_sampling(sample_every)
    m = Meter(b)
    b.run_for(seconds, slice_s=0.5)
    r = m.done()
    hist = None
    if sample_every:
        b.pc_sampling(0, clear=False)
        hist = b.pc_histogram()
    r["busy"] = 100.0 * r["cyc"] * NS_PER_CYCLE / r["dt"]
    r["ms_win"] = r["cyc"] * NS_PER_CYCLE / 1e6 / (r["dt"] / WINDOW_NS)
    r["windows"] = r["dt"] / WINDOW_NS
    return r, hist


def command_cpu(b, line, idle_rate):
    """Extra CPU ms of one command (reply complete on the wire) over the idle rate."""
    m = Meter(b)
    reply = b.console_cmd(line, timeout_s=10.0, slice_s=0.005)
    r = m.done()
    extra = r["cyc"] - idle_rate * r["dt"]
    return extra * NS_PER_CYCLE / 1e6, len(reply), r["dt"] / 1e6, reply


def peak_behind(b, line):
    """heap_used from a STATUS queued right behind `line`'s reply."""
    def two_done(d):
        lines = [x.strip() for x in d.split(b"\n")]
        return sum(1 for x in lines if x == b"OK" or x.startswith(b"ERR")) >= 2
    reply = b.console_cmd(line + "\r\nSTATUS", timeout_s=10.0, slice_s=0.005, until=two_done)
    st = _status_of(reply)
    return _int(st.get("heap_used")), len(reply)


def commit_phase(b, idle_rate, seconds):
    """Runs into the high-power part: a save every min_interval; returns
    figures per save and the windows missed meanwhile."""
    st0 = b.status()
    ops0 = len(b.flash_ops)
    t0 = b.t_ns
    m = Meter(b)
    b.run_for(seconds, slice_s=0.5)
    r = m.done()
    st1 = b.status()
    commits = _int(st1.get("commits"), 0) - _int(st0.get("commits"), 0)
    ops = [o for o in b.flash_ops[ops0:] if o[0] >= t0]
    erases = sum(1 for o in ops if o[1] == "erase")
    progs = len(ops) - erases
    longest = 0.0
    for o in ops:
        ms = (o[3] + 4095) // 4096 * 45.0 if o[1] == "erase" else (o[3] + 255) // 256 * 0.7
        longest = max(longest, ms)
    extra = r["cyc"] - idle_rate * r["dt"]
    # one save per save.min_interval_s (5 s) at this power; STATUS `commits`
    # counting differs between store versions, the interval does not
    c = max(r["dt"] / 1e9 / SAVE_EVERY_S, 1.0)
    d = {k: _int(st1.get(k), 0) - _int(st0.get(k), 0) for k in ("windows", "missed", "gap_events", "stale")}
    return {"delta": d, "commits": commits, "saves": c, "cpu_ms": extra * NS_PER_CYCLE / 1e6 / c,
            "irq_off_ms": r["flash_ns"] / 1e6 / c,
            "erases": erases / c, "programs": progs / c, "longest_ms": longest, "seconds": r["dt"] / 1e9}


def run_case(n, fw, a, out):
    w0 = time.monotonic()
    b = _board(n, fw)
    try:
        b.run_for(a.settle, slice_s=0.5)
        idle, hist = idle_window(b, a.seconds, a.every if n == 1 else 0)
        st = b.status()
        rate = idle["cyc"] / idle["dt"]
        cmds = {}
        for c in COMMANDS:
            cmds[c] = command_cpu(b, c, rate)
        peaks = {c: peak_behind(b, c) for c in ("READ", "CONFIG")}
        left = COMMIT_AT_S + 1 - b.t_ns / 1e9
        if left > 0:
            b.run_for(left, slice_s=0.5)
        com = commit_phase(b, rate, a.commit_s)
        res = {"n": n, "idle": idle, "hist": hist, "heap": _int(st.get("heap_used")),
               "heap_free": _int(st.get("heap_free")), "cmds": cmds, "peaks": peaks, "commit": com,
               "gaps": st.get("gap_events"), "wall": time.monotonic() - w0, "virt": b.t_ns / 1e9,
               "rx_over": sum(b.stats()["rxOverrun"])}
    finally:
        b.close()
    out[n] = res
    return res


def verdict(v, goal):
    return "ok" if v <= goal else "OVER"


def main(argv):
    ap = argparse.ArgumentParser(description="the node on the emulated Pico vs issue 9's goals")
    ap.add_argument("--quick", action="store_true", help="shorter windows")
    ap.add_argument("--firmware", default=None, help="firmware.bin (default: make firmware's build)")
    ap.add_argument("--elf", default=None)
    ap.add_argument("--top", type=int, default=15, help="functions in the profile")
    ap.add_argument("--every", type=int, default=997, help="cycles between PC samples")
    a = ap.parse_args(argv)
    a.settle = 8.0
    a.seconds = 5.0 if a.quick else 10.0
    a.commit_s = 11.0 if a.quick else 21.0
    fw = a.firmware or picoboard.firmware()
    elf = a.elf or os.path.join(os.path.dirname(fw), "firmware.elf")
    print("firmware: %s" % fw)
    res = {}
    for n in (1, 8):
        r = run_case(n, fw, a, res)
        print("  (%d module%s: %.0f s virtual in %.0f s wall)" % (n, "" if n == 1 else "s", r["virt"], r["wall"]),
              flush=True)
    r1, r8 = res[1], res[8]
    per_mod = (r8["idle"]["ms_win"] - r1["idle"]["ms_win"]) / 7
    wire1 = r1["idle"]["wire"] / r1["idle"]["windows"]
    wire8 = r8["idle"]["wire"] / r8["idle"]["windows"] / 8
    occ_ms = wire8 * 9 * 1000.0 / F_SCL
    print("\n%-62s %14s %12s  %s" % ("measure (UI3 modules, frozen firmware, emulated RP2040)", "measured", "goal", ""))
    rows = [
        ("heap in use after gc.collect(), 1 module, store + console", "%.1f KB" % (r1["heap"] / 1024),
         "<= 48 KB", verdict(r1["heap"], GOALS["heap1"])),
        ("  the same, 8 modules", "%.1f KB" % (r8["heap"] / 1024), "<= 80 KB", verdict(r8["heap"], GOALS["heap8"])),
        ("peak: READ (8 modules, %d B) still queued" % r8["peaks"]["READ"][1],
         "%.1f KB" % (r8["peaks"]["READ"][0] / 1024), "reported", ""),
        ("peak: CONFIG (%d B) still queued" % r8["peaks"]["CONFIG"][1],
         "%.1f KB" % (r8["peaks"]["CONFIG"][0] / 1024), "reported", ""),
        ("CPU per 200 ms window per 3-channel module ((8-1)/7)", "%.2f ms" % per_mod, "<= 2 ms",
         verdict(per_mod, GOALS["per_mod"])),
        ("whole node, 1 module at 5 Hz, console + store idle", "%.2f %%" % r1["idle"]["busy"], "<= 5 %",
         verdict(r1["idle"]["busy"], GOALS["busy1"])),
        ("  per 200 ms window", "%.2f ms" % r1["idle"]["ms_win"], "<= 10 ms",
         verdict(r1["idle"]["ms_win"], GOALS["ms1"])),
        ("whole node, 8 modules at 5 Hz", "%.2f %%" % r8["idle"]["busy"], "<= 25 %",
         verdict(r8["idle"]["busy"], GOALS["busy8"])),
        ("  per 200 ms window", "%.2f ms" % r8["idle"]["ms_win"], "", ""),
    ]
    for n, r in ((1, r1), (8, r8)):
        c = r["commit"]
        rows.append(("store save of %d channels (%d mod): CPU per save (%.1f saves)" % (3 * n, n, c["saves"]),
                     "%.1f ms" % c["cpu_ms"], "reported", ""))
        rows.append(("  IRQs off per save (%.1f erases + %.1f programs)" % (c["erases"], c["programs"]),
                     "%.1f ms" % c["irq_off_ms"], "reported", ""))
        rows.append(("  longest single IRQ-off stretch", "%.1f ms" % c["longest_ms"], "reported", ""))
        dd = c["delta"]
        rows.append(("  meanwhile: windows / missed / stale / gap events",
                     "%d/%d/%d/%d" % (dd["windows"], dd["missed"], dd["stale"], dd["gap_events"]), "-/0/0/0", ""))
    for n, r in ((1, r1), (8, r8)):
        for c in COMMANDS:
            ms, nb, lat, _ = r["cmds"][c]
            rows.append(("console %-6s (%d mod): CPU, %5d B reply in %4.0f ms" % (c, n, nb, lat), "%.2f ms" % ms,
                         "reported", ""))
    rows += [
        ("I2C bytes on the wire per window per module (1 / 8 mod)", "%.0f / %.0f B" % (wire1, wire8), "", ""),
        ("I2C occupancy per window per module at 50 kHz", "%.2f ms = %.1f %%" % (occ_ms, occ_ms / 2.0),
         "reported", ""),
        ("  8 modules on one bus", "%.1f %%" % (8 * occ_ms / 2.0), "reported", ""),
        ("modules per bus at 5 Hz (bytes x 9 / f_SCL)", "%d" % int(200.0 / occ_ms) if occ_ms else "-",
         "reported", ""),
        ("gap events during the run (1 / 8 mod)", "%s / %s" % (r1["gaps"], r8["gaps"]), "0", ""),
    ]
    for name, v, g, ok in rows:
        print("%-62s %14s %12s  %s" % (name, v, g, ok))
    if r1["hist"]:
        print()
        try:
            pprof.report(r1["hist"], elf, a.top)
        except Exception as e:            # no toolchain: the figures above still stand
            print("profile: %s" % e)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
