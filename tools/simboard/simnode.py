"""The node firmware on the MicroPython unix port against the simulator.
Launcher contract (options, stdout lines, exit codes): docs/simnode.md."""
import sys
import time

# MICROPYPATH replaces the default path, which drops the port's frozen
# modules (asyncio lives there on the unix port)
if ".frozen" not in sys.path:
    sys.path.append(".frozen")

CUT_RC = 99
REBOOT_RC = 98
SAFE_PIN = 0
DRDY_PIN = 4
_MASK = (1 << 30) - 1
USAGE = ("simnode.py --tty PATH --state DIR [--profile CSV] [--modules 0x50:UI2,...] [--virtual]"
         " [--duration S] [--start-ms T] [--start-ticks N] [--i2c-fault-rate R] [--seed N]"
         " [--cut-at-ms T] [--cut-at-flash-op K] [--speed X] [--config FILE.json] [--safe-flag]"
         " [--safe-pin-held] [--window-ms W] [--store-ms S] [--console-ms C] [--flash-blocks N] [--board-uid HEX] [--ble]")

_FLAGS = ("--virtual", "--safe-pin-held", "--safe-flag", "--ble")
_OPTS = {"--tty": str, "--state": str, "--profile": str, "--modules": str, "--duration": float,
         "--start-ms": int, "--start-ticks": int, "--i2c-fault-rate": float, "--seed": int,
         "--cut-at-ms": int, "--cut-at-flash-op": int, "--speed": float, "--flash-blocks": int,
         "--console-ms": int, "--window-ms": int, "--store-ms": int, "--config": str,
         "--board-uid": bytes.fromhex}


def out(*a):
    print(*a)


def parse(argv):
    o = {"--modules": "0x50:UI2", "--start-ms": 0, "--start-ticks": 0, "--i2c-fault-rate": 0.0,
         "--seed": 1, "--speed": 1.0, "--flash-blocks": 64}
    i = 0
    while i < len(argv):
        k = argv[i]
        if k in _FLAGS:
            o[k] = True
            i += 1
            continue
        if k not in _OPTS or i + 1 >= len(argv):
            raise ValueError("bad option %s" % k)
        o[k] = _OPTS[k](argv[i + 1])
        i += 2
    if "--tty" not in o or "--state" not in o:
        raise ValueError("--tty and --state are required")
    if o["--speed"] <= 0:
        raise ValueError("--speed must be > 0")
    return o


def parse_modules(text):
    mods = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        a, _, v = part.partition(":")
        mods.append((int(a, 0), (v or "UI2").upper()))
    return mods


def ble_on(path):
    # --ble (NimBLE build, HCI UART in $MICROPYBTUART): ble.enabled in the config
    import json
    try:
        with open(path) as f:
            cfg = json.loads(f.read())
    except (OSError, ValueError):
        cfg = {}
    if not isinstance(cfg, dict):
        cfg = {}
    b = cfg.get("ble") if isinstance(cfg.get("ble"), dict) else {}
    if b.get("enabled") is not True:
        b["enabled"] = True
        cfg["ble"] = b
        with open(path, "w") as f:
            f.write(json.dumps(cfg))


class Run:
    """One power-up of the simulated board."""

    def __init__(self, o):
        import rbamp_sim
        import machine
        from clock import Ticks
        from simflash import ImageFlash
        self.o = o
        self.virtual = bool(o.get("--virtual"))
        self.t0 = o["--start-ms"]
        self.clock = rbamp_sim.VirtualClock(start_ms=self.t0)
        if "--profile" in o:
            with open(o["--profile"]) as f:
                prof = rbamp_sim.Profile.from_csv(f.read())
        else:
            prof = rbamp_sim.Profile.solar_home_day()
        seed = o["--seed"]
        self.modules = []
        for i, (addr, variant) in enumerate(parse_modules(o["--modules"])):
            # the module shares the board's supply: fresh at every power-up
            # same physical module at every power-up: its UID depends on the
            # address only, not on the run's seed
            uid = bytes(((addr * 37 + 11 * j) & 0xFF) for j in range(12))
            self.modules.append(rbamp_sim.Module(addr=addr, variant=variant, profile=prof, uid=uid,
                                                 seed=seed * 31 + i, window_ms=o.get("--window-ms", 200)))
        faults = rbamp_sim.Faults(seed=seed, nack_rate=o["--i2c-fault-rate"])
        self.bus = rbamp_sim.Bus(self.modules, clock=self.clock, faults=faults, freq=50000)
        # node time: virtual ms -> ticks; after DONE (and in real-time mode)
        # the wall clock drives it (see now())
        self.frozen_at = None
        self.wall0 = time.ticks_ms()
        self.ticks = Ticks(o["--start-ticks"], source=self.now)
        self.flash = ImageFlash(o["--state"] + "/flash.img", o["--flash-blocks"], on_cut=self.cut)
        if "--cut-at-flash-op" in o:
            self.flash.cut_at = o["--cut-at-flash-op"]
            self.flash.torn = 1   # flashsim.TORN_HALF
        self.cut_ms = o.get("--cut-at-ms")
        dur = o.get("--duration")
        self.end_ms = None if dur is None else int(dur * 1000 + 0.5)
        pins = {}
        if o.get("--safe-pin-held"):
            pins[SAFE_PIN] = 0
        # the board's machine.unique_id(): the node id is its last 4 bytes
        extra = {"uid": o["--board-uid"]} if "--board-uid" in o else {}
        machine.attach(bus=self.bus, tty=o["--tty"], drdy_pin=DRDY_PIN, drdy=self.drdy, pins=pins,
                       on_reset=self.reboot, **extra)
        self.node = None

    def wall_ms(self):
        return time.ticks_diff(time.ticks_ms(), self.wall0)

    def now(self):
        """Node time on the virtual axis. Virtual mode: the simulator clock.
        Real time: wall clock x speed (the simulator clock follows). After
        DONE: sampling stops, the console's own timing runs on wall time."""
        if self.frozen_at is not None:
            return self.frozen_at[0] + time.ticks_diff(time.ticks_ms(), self.frozen_at[1])
        if not self.virtual:
            t = self.t0 + int(self.wall_ms() * self.o["--speed"])
            if t > self.clock.now_ms():
                self.clock.set(t)
        return self.clock.now_ms()

    def sim_ms(self):
        return self.clock.now_ms()

    def drdy(self):
        # open-drain DRDY idles high; the ~10 us pulses are not visible to polling
        for m in self.modules:
            if not m.drdy_level():
                return 0
        return 1

    def cut(self):
        # power is gone: no flush, no save beyond what the flash already holds
        out("CUT", self.sim_ms())
        raise SystemExit(CUT_RC)

    def reboot(self):
        # console REBOOT: flash stays as it is (the node committed first)
        self.flash.flush()
        out("REBOOT", self.sim_ms())
        raise SystemExit(REBOOT_RC)

    def mount(self):
        import flashsim
        try:
            flashsim.mount(self.flash, "/flash")
        except OSError:
            # blank image (first power-up): what the factory provisioning does
            flashsim.mount(self.flash, "/flash", mkfs=True)

    def provision(self):
        # host-side file copies before boot (like `mpremote cp` on a board)
        if "--config" in self.o:
            with open(self.o["--config"], "rb") as f:
                data = f.read()
            with open("/flash/config.json", "wb") as f:
                f.write(data)
        if self.o.get("--safe-flag"):
            with open("/flash/safemode", "wb") as f:
                f.write(b"1")
        if self.o.get("--ble"):
            ble_on("/flash/config.json")
        self.flash.flush()

    def boot(self):
        """boot.py + main.py of the board; False if safe mode held the app."""
        self.mount()
        self.provision()
        import node.safe
        from node import board
        dec = node.safe.decide("/flash", SAFE_PIN, board.pin_held)
        if dec.safe:
            out("LOG safe mode: " + dec.why)
            out("SAFE", self.sim_ms())
            return False
        import gc
        gc.collect()
        self.mem0 = gc.mem_alloc()          # simulator + flash image, before the node
        import node.app
        tm = {}
        if "--console-ms" in self.o:
            tm["console_ms"] = self.o["--console-ms"]
        elif self.virtual:
            tm["console_ms"] = 1000     # virtual ms between console polls (cost!)
        for k in ("window", "store"):
            if "--%s-ms" % k in self.o:
                tm[k + "_ms"] = self.o["--%s-ms" % k]
        delay = self.clock.advance if self.virtual else None
        self.node = node.app.start(self.ticks, root="/flash", sim=True, timing=tm, delay_ms=delay)
        for p in self.node.problems:
            out("LOG " + p)
        gc.collect()
        out("LOG mem sim+flash=%d node=%d free=%d" % (self.mem0, gc.mem_alloc() - self.mem0, gc.mem_free()))
        out("READY", self.sim_ms())
        return True

    def _stop_at(self):
        t = self.end_ms
        if self.cut_ms is not None and (t is None or self.cut_ms < t):
            t = self.cut_ms
        return t

    def _reached(self):
        """At the stop time: CUT (exits) or DONE (freeze the simulation and
        commit like a clean shutdown: a next run on the same flash starts
        from exactly the totals read after DONE)."""
        if self.cut_ms is not None and self.sim_ms() >= self.cut_ms:
            self.cut()
        self.frozen_at = (self.sim_ms(), time.ticks_ms())
        self.flash.cut_at = -1          # the run is over: a cut armed for later is off
        try:
            self.node.shutdown()
            self.flash.flush()
        except Exception as e:
            out("LOG shutdown commit failed: %s" % (e,))
        import gc
        gc.collect()
        out("LOG mem node=%d free=%d" % (gc.mem_alloc() - self.mem0, gc.mem_free()))
        f = self.flash
        out("LOG flash ops=%d erases=%d writes=%d bytes=%d" % (f.ops, f.erases, f.writes, f.wbytes))
        out("DONE", self.sim_ms())

    def run_virtual(self):
        from node.sched import VirtualLoop
        stop = self._stop_at()
        if stop is None:
            raise ValueError("--virtual needs --duration or --cut-at-ms")
        loop = VirtualLoop(self.node.sched, self.clock.advance)
        stdin = _StdinCmds()
        while self.sim_ms() < stop:
            # in slices, so a STOP on stdin (rbmeter sim: Ctrl-C/SIGTERM) ends the run cleanly
            loop.run(min(10000, stop - self.sim_ms()))
            c = stdin.check()
            if c is None:
                raise SystemExit(0)          # EOF: power pulled, no save
            if c == "STOP":
                break
        self._reached()
        self.serve_console()

    def serve_console(self):
        # after DONE: only the console runs, until stdin closes
        import select
        p = select.poll()
        p.register(sys.stdin, select.POLLIN)
        con = self.node.sched.slot("console")
        while True:
            if p.poll(2):
                if not sys.stdin.read(1):
                    break
            if con is not None:
                con.run(self.ticks, self.ticks.ticks_ms())

    def run_real(self):
        import asyncio
        from node.sched import run_asyncio
        speed = self.o["--speed"]
        stop = self._stop_at()

        from node.app import waker
        con = self.node.console
        inner = waker(self.node, None, con.port.stream() if con is not None else None, 1.0 / speed)

        async def wake(slot, ms):
            if self.frozen_at is not None and slot.name != "console":
                await asyncio.sleep_ms(3600000)     # simulation over: park
                return
            await inner(slot, ms)

        async def supervisor():
            stdin = _StdinCmds()
            while True:
                if self.frozen_at is None and stop is not None and self.now() >= stop:
                    self._reached()
                c = stdin.check()
                if c is None:
                    raise SystemExit(0)
                if c == "STOP" and self.frozen_at is None:
                    self._reached()          # clean stop: commit, DONE, keep serving
                await asyncio.sleep_ms(5)

        run_asyncio(self.node.sched, extra=[supervisor()], wake=wake)


class _StdinCmds:
    """Lines from the launcher on stdin: "STOP" ends the run cleanly (commit,
    DONE); EOF ends the process without a save (power pulled)."""

    def __init__(self):
        import select
        self.p = select.poll()
        self.p.register(sys.stdin, select.POLLIN)
        self.buf = ""

    def check(self):
        """"" nothing new, a complete line, or None at EOF."""
        while self.p.poll(0):
            ch = sys.stdin.read(1)
            if not ch:
                return None
            if ch == "\n":
                line = self.buf.strip()
                self.buf = ""
                return line
            self.buf += ch
        return ""


def main(argv):
    try:
        o = parse(argv)
    except ValueError as e:
        print("usage:", USAGE, "\n", e, file=sys.stderr)
        return 2
    run = Run(o)
    if not run.boot():
        run.frozen_at = (run.sim_ms(), time.ticks_ms())
        import select
        p = select.poll()
        p.register(sys.stdin, select.POLLIN)
        while True:
            if p.poll(1000) and not sys.stdin.read(1):
                return 0
    if run.virtual:
        run.run_virtual()
    else:
        run.run_real()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
