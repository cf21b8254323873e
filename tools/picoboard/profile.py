"""PC-sampling profiler for the frozen firmware on the emulated Pico.

The runner records the core's PC every N executed cycles (PicoBoard.pc_sampling);
this maps the samples to firmware.elf symbols (`arm-none-eabi-nm -n -S`, the
Debian toolchain that builds the firmware) and prints the top functions.
Samples are taken only while the core executes (never in WFE/WFI), so the
shares are shares of the busy cycles.

    python -m picoboard.profile [--seconds 10] [--settle 6] [--every 997]
                                [--modules 0x50:UI2] [--top 25]
(run from tools/, or `python tools/picoboard/profile.py`)."""
import argparse
import bisect
import os
import shutil
import subprocess
import sys

NM = os.environ.get("ARM_NM", "arm-none-eabi-nm")
# the RP2040 boot ROM (float/memcpy helpers, flash routines) sits below 16 KB
ROM_END = 0x4000
# function groups that the first profile named
GROUPS = (
    ("bytecode dispatch", ("mp_execute_bytecode",)),
    ("map lookup", ("mp_map_lookup",)),
    ("integer division", ("divmod", "__aeabi_uidiv", "__aeabi_idiv", "__aeabi_uldivmod", "__aeabi_ldivmod",
                          "hw_divider", "div_s32s32", "div_u32u32", "divmod_s32s32", "divmod_u32u32")),
    ("gc", ("gc_alloc", "gc_collect", "gc_mark", "gc_sweep", "gc_free", "gc_realloc", "gc_deal_with_stack_overflow",
            "gc_helper", "gc_nbytes", "mp_obj_malloc")),
)


class Symbols:
    """Address -> function name for an ELF (text symbols, sorted)."""

    def __init__(self, elf):
        if shutil.which(NM) is None:
            raise RuntimeError("%s not found (apt-get install gcc-arm-none-eabi; make firmware installs it)" % NM)
        out = subprocess.run([NM, "-n", "-S", "--defined-only", elf], check=True, capture_output=True,
                             text=True).stdout
        addrs, sizes, names = [], [], []
        # assembly routines (pico-sdk's divider wrappers) carry no size:
        # their global labels are the fallback (`-S` prints no size column)
        bare, bare_names = [], []
        for ln in out.splitlines():
            p = ln.split()
            if len(p) == 3 and p[1] in "TW":
                a = int(p[0], 16) & ~1
                if bare and bare[-1] == a:
                    continue
                bare.append(a)
                bare_names.append(p[2])
                continue
            if len(p) != 4 or p[2] not in "tTwW":
                continue
            a, sz = int(p[0], 16) & ~1, int(p[1], 16)
            if sz == 0:
                continue
            addrs.append(a)
            sizes.append(sz)
            names.append(p[3])
        self.addrs, self.sizes, self.names = addrs, sizes, names
        self.bare, self.bare_names = bare, bare_names

    def name(self, pc):
        if pc < ROM_END:
            return "[bootrom]"
        i = bisect.bisect_right(self.addrs, pc) - 1
        if i >= 0 and pc < self.addrs[i] + self.sizes[i]:
            return self.names[i]
        j = bisect.bisect_right(self.bare, pc) - 1
        # an unsized label counts only up to the next sized function
        if j >= 0 and (i < 0 or self.bare[j] >= self.addrs[i] + self.sizes[i]) and pc - self.bare[j] < 1024:
            return self.bare_names[j]
        return "[0x%08x]" % pc


def group_of(name):
    for g, pats in GROUPS:
        for p in pats:
            if p in name:
                return g
    return None


def summarize(hist, elf):
    """hist {pc: n} -> (total, [(function, n)] sorted, {group: n})."""
    sym = Symbols(elf)
    by = {}
    for pc, n in hist.items():
        f = sym.name(int(pc))
        by[f] = by.get(f, 0) + n
    total = sum(by.values())
    groups = {}
    for f, n in by.items():
        g = group_of(f)
        if g is not None:
            groups[g] = groups.get(g, 0) + n
    return total, sorted(by.items(), key=lambda x: -x[1]), groups


def report(hist, elf, top=25, out=None):
    """Prints the top functions and the named groups; returns summarize()."""
    w = out or sys.stdout
    total, funcs, groups = summarize(hist, elf)
    if not total:
        print("profile: no samples", file=w)
        return total, funcs, groups
    print("profile: %d PC samples (busy cycles only)" % total, file=w)
    for f, n in funcs[:top]:
        print("  %5.1f %%  %6d  %s" % (100.0 * n / total, n, f), file=w)
    print("  groups: " + ", ".join("%s %.1f %%" % (g, 100.0 * groups.get(g, 0) / total) for g, _ in GROUPS), file=w)
    return total, funcs, groups


def elf_path():
    """firmware.elf next to the firmware picoboard runs ($PICOBOARD_ELF first)."""
    env = os.environ.get("PICOBOARD_ELF")
    if env:
        return env
    from picoboard.board import firmware
    return os.path.join(os.path.dirname(firmware()), "firmware.elf")


def main(argv=None):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if here not in sys.path:
        sys.path.insert(0, here)
    ap = argparse.ArgumentParser(prog="picoboard.profile", description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", default="0x50:UI2")
    ap.add_argument("--settle", type=float, default=6.0, help="virtual s before sampling (boot)")
    ap.add_argument("--seconds", type=float, default=10.0, help="virtual s sampled")
    ap.add_argument("--every", type=int, default=997, help="cycles between samples (prime: no aliasing)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    import rbamp_sim
    from picoboard import PicoBoard
    b = PicoBoard(modules=a.modules, profile=rbamp_sim.Profile.constant([1500, -800, 300]), seed=a.seed, pty=False)
    try:
        b.start()
        b.run_for(a.settle, slice_s=0.5)
        s0 = b.stats()
        b.pc_sampling(a.every)
        b.run_for(a.seconds, slice_s=0.5)
        s1 = b.stats()
        b.pc_sampling(0, clear=False)
        hist = b.pc_histogram()
    finally:
        b.close()
    dt = s1["t"] - s0["t"]
    cyc = s1["chipCycles"] - s0["chipCycles"]
    print("modules %s: %.1f s virtual, core busy %.2f %% (%.2f ms CPU per 200 ms window)"
          % (a.modules, dt / 1e9, 100.0 * cyc * 8 / dt, cyc * 8 / 1e6 / (dt / 200e6)))
    report(hist, elf_path(), a.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
