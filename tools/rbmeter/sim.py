"""`rbmeter sim`: the whole node on the laptop.

Runs tools/simboard/simnode.py on the MicroPython unix port (launcher
contract: docs/simnode.md) with its console on a PtyBridge, power-cycles it
at seeded instants (--power-cuts) on the same flash image, and computes the
simulator's ground truth over the powered intervals.

Single-threaded state machine so the caller can interleave its own console
traffic (the --watch view) with process supervision:

    sim = Sim(SimOptions(duration_s=3600, virtual=True))
    sim.start()
    while not sim.finished:
        sim.step(0.2)
    result = sim.result(client)      # reads totals over the console
    sim.close()
"""
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from typing import Callable

from rbmeter.ptybridge import PtyBridge

ROOT = os.environ.get("RBMETER_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CUT_RC = 99
MWMS_PER_MWH = 3600000
CHANNELS = {"UI1": 1, "UI2": 2, "UI3": 3, "I1": 1, "I2": 2, "I3": 3}
MAX_DOWNTIME_MS = 30000


class SimError(Exception):
    pass


class SimOptions:
    """Plain attribute bag (argparse namespace compatible)."""

    def __init__(self, **kw):
        self.profile = None             # CSV path or None = built-in solar-home day
        self.modules = "0x50:UI2"
        self.virtual = False
        self.duration_s = None          # run length from start_ms; None = until stopped (real time only)
        self.start_ms = 0
        self.start_ticks = 0
        self.i2c_fault_rate = 0.0
        self.power_cuts = 0
        self.flash_cut_share = 0.5      # share of cuts placed on a flash operation
        self.flash_op_max = 64          # K drawn from [0, flash_op_max)
        self.max_downtime_ms = MAX_DOWNTIME_MS
        self.seed = 1
        self.state = None               # dir or None = temp dir (removed at close)
        self.speed = 1.0
        self.heapsize = "4M"   # the flash image (1 MiB) lives in the node heap too
        self.boot_timeout_s = 60.0
        self.verbose = False
        self.monitor = False            # bridge with a monitor port (console shared with a person)
        self.secret = None              # str: provisioned into the board's config before boot 1
        self.window_ms = None           # RT window of modules and sampler (simnode default 200)
        self.board_uid = None           # hex str: the board's machine.unique_id() (node id = last 4 bytes)
        self.ble_hci_uart = None        # tty: the NimBLE unix build, BLE on, HCI UART here (docs/ble.md)
        self.micropython = os.path.join(ROOT, ".venv", "bin", "micropython")
        for k, v in kw.items():
            if not hasattr(self, k):
                raise TypeError("unknown sim option %r" % k)
            setattr(self, k, v)


def node_env():
    """Environment for simnode.py on the unix port (also used by the tests'
    launcher, tools/simboard/launch.py)."""
    env = dict(os.environ)
    # ".frozen" first: MICROPYPATH replaces the default path, and asyncio
    # (used in real-time mode) is frozen into the unix port
    env["MICROPYPATH"] = os.pathsep.join([".frozen", os.path.join(ROOT, "lib"), os.path.join(ROOT, "tools"),
                                          os.path.join(ROOT, "tools", "simboard")])
    return env


def stop_node(proc, timeout):
    """stdin EOF ends a simnode (no extra save), then SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        if proc.stdin:
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def parse_modules(text):
    """"0x50:UI2,0x51:I3" -> [("0x50", "UI2"), ("0x51", "I3")] (normalized)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            a, v = part.split(":", 1)
        else:
            a, v = part, "UI2"
        try:
            addr = int(a, 0)
        except ValueError:
            raise SimError("bad module address %r" % a)
        if not 0x08 <= addr <= 0x77:
            raise SimError("module address %s outside 0x08..0x77" % a)
        v = v.strip().upper()
        if v not in CHANNELS:
            raise SimError("unknown variant %r (one of %s)" % (v, ", ".join(sorted(CHANNELS))))
        out.append(("0x%02x" % addr, v))
    if not out:
        raise SimError("no modules")
    if len(set(a for a, _ in out)) != len(out):
        raise SimError("duplicate module address")
    return out


def load_profile(path):
    """The simulator's Profile, as the node will see it."""
    if ROOT not in sys.path:
        pass
    tools = os.path.join(ROOT, "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import rbamp_sim   # noqa: E402  (tools/rbamp_sim, importable on CPython)
    if path:
        with open(path, "r", encoding="utf-8") as f:
            return rbamp_sim.Profile.from_csv(f.read())
    return rbamp_sim.Profile.solar_home_day()


def truth_channels(profile, modules, intervals):
    """Exact energy of every channel over the powered intervals, whole mWh.
    I-variants (no voltage hardware) measure no power: their truth is 0,
    which is also what the node must report for them."""
    out = []
    for addr, variant in modules:
        measures_power = not variant.startswith("I")
        for ch in range(CHANNELS[variant]):
            imp = exp = 0
            for a, b in intervals:
                if b > a and ch < profile.nch and measures_power:
                    i, e = profile.energy_mwms(ch, a, b)
                    imp += i
                    exp += e
            out.append({"module": addr, "ch": ch, "import_mwh": imp // MWMS_PER_MWH,
                        "export_mwh": exp // MWMS_PER_MWH, "gap_ms": 0})
    return out


class CutPlan:
    """Seeded power-cut instants. Each cut is (t_ms, flash_op or None); a
    flash-op cut also carries its t_ms as a fallback so it happens by then."""

    def __init__(self, rng, n, start_ms, end_ms, flash_share, flash_op_max):
        self.rng = rng
        span = end_ms - start_ms
        times = sorted(start_ms + 1 + rng.randrange(max(span - 1, 1)) for _ in range(n)) if n and span > 1 else []
        self.cuts = []
        for t in times:
            k = rng.randrange(flash_op_max) if rng.random() < flash_share else None
            self.cuts.append((t, k))

    def next_for(self, start_ms, end_ms):
        """The cut to arm for a power-up at start_ms (None = no more cuts).
        A planned instant already passed during downtime moves just after boot."""
        while self.cuts:
            t, k = self.cuts[0]
            if t <= start_ms:
                t = start_ms + 1 + self.rng.randrange(2000)
            if t >= end_ms:
                self.cuts.pop(0)
                continue
            return t, k
        return None

    def consume(self):
        if self.cuts:
            self.cuts.pop(0)


class NodeProc:
    """One power-up of simnode.py; stdout parsed by a reader thread."""

    def __init__(self, argv, env, stderr_path):
        self.argv = argv
        self.stderr_path = stderr_path
        self._err = open(stderr_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, cwd=ROOT,
                                     # own session: a terminal Ctrl-C reaches rbmeter only, which
                                     # still reads the totals before it stops the node
                                     start_new_session=True)
        self.events = queue.Queue()
        self.logs = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        out = self.proc.stdout
        assert out is not None
        for raw in out:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            kind, _, rest = line.partition(" ")
            if kind in ("READY", "DONE", "CUT"):
                try:
                    self.events.put((kind, int(rest.split()[0])))
                except (ValueError, IndexError):
                    self.logs.append(line)
            else:
                self.logs.append(line)    # LOG and unknown kinds: informational
        rc = self.proc.wait()
        self.events.put(("EXIT", rc))

    def next_event(self, timeout):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def stderr_tail(self, n=2000):
        """Last node output for error messages: stdout LOG/traceback lines and stderr."""
        text = "\n".join(self.logs[-20:])
        try:
            self._err.flush()
            with open(self.stderr_path, "rb") as f:
                data = f.read()
            return (text + "\n" + data[-n:].decode("utf-8", "replace")).strip()
        except OSError:
            return text

    def stop(self, timeout=5.0):
        """stdin EOF ends the node (no extra save), then SIGTERM, then SIGKILL."""
        stop_node(self.proc, timeout)
        self._t.join(2)
        try:
            self._err.close()
        except OSError:
            pass
        return self.proc.returncode


class Sim:
    def __init__(self, opts, log=None):
        self.o = opts
        self.log = log or (lambda msg: None)
        self.modules = parse_modules(opts.modules)
        if opts.power_cuts and opts.duration_s is None:
            raise SimError("--power-cuts needs --duration")
        if opts.virtual and opts.duration_s is None:
            raise SimError("--virtual needs --duration")
        if opts.profile and not os.path.exists(opts.profile):
            raise SimError("profile %s not found" % opts.profile)
        if opts.secret:
            from rbmeter import secret as _secret
            try:
                why = _secret.problem(_secret.decode(opts.secret))
            except _secret.SecretError as e:
                why = str(e)
            if why:
                raise SimError("--secret: %s" % why)
        if opts.ble_hci_uart:
            from rbmeter.ble_link import ble_micropython
            opts.micropython = ble_micropython()      # make firmware-ble (cached)
        if not os.path.exists(opts.micropython):
            raise SimError("MicroPython unix port not found at %s (run `make setup`)" % opts.micropython)
        self.simnode = os.path.join(ROOT, "tools", "simboard", "simnode.py")
        if not os.path.exists(self.simnode):
            raise SimError("%s not found" % self.simnode)
        self.rng = random.Random(opts.seed)
        self.start_ms0 = int(opts.start_ms)
        # --duration is the length of the run; simnode wants the absolute end
        self.end_ms = None if opts.duration_s is None else self.start_ms0 + int(round(opts.duration_s * 1000))
        if self.end_ms is not None and self.end_ms <= self.start_ms0:
            raise SimError("--duration must be > 0")
        self.plan = CutPlan(self.rng, int(opts.power_cuts), self.start_ms0, self.end_ms or 0,
                            opts.flash_cut_share, opts.flash_op_max)
        self._tmp = None
        if opts.state:
            os.makedirs(opts.state, exist_ok=True)
            self.state = opts.state
        else:
            self._tmp = tempfile.mkdtemp(prefix="rbmeter-sim-")
            self.state = self._tmp
        self.logdir = tempfile.mkdtemp(prefix="rbmeter-simlog-")
        self.bridge = PtyBridge(monitor=opts.monitor)
        self.console = self.bridge.host_path
        # where rbmeter itself talks to the node: the monitor port when a
        # person may be attached to the console, else the console itself
        self.control = self.bridge.monitor_path or self.console
        self.node = None
        self.state_name = "idle"    # booting, running, off, done, failed
        self.boot_start_ms = self.start_ms0
        self.intervals = []         # powered [start, end) on the virtual axis
        self.reboots = 0
        self.downtime_ms = 0
        self.cuts = []              # (t_ms, "time"/"flash") that happened
        self.boots = 0
        self.done_ms = None
        self.error = None
        self._armed = None
        self._restart_at = 0.0
        self._boot_deadline = 0.0
        self._wall0 = None
        self._anchor = None         # (wall, t_ms) at the last READY
        self.on_boot: "Callable[[int], object] | None" = None   # callback(ready_t_ms), e.g. re-sync a client

    # -- process control -------------------------------------------------------
    def _argv(self, start_ms, cut):
        o = self.o
        a = [o.micropython, "-X", "heapsize=%s" % o.heapsize, self.simnode,
             "--tty", self.bridge.node_path, "--state", self.state,
             "--modules", ",".join("%s:%s" % m for m in self.modules),
             "--seed", str(o.seed), "--start-ms", str(start_ms), "--start-ticks", str(o.start_ticks)]
        if o.profile:
            a += ["--profile", os.path.abspath(o.profile)]
        if o.virtual:
            a.append("--virtual")
        elif o.speed != 1.0:
            a += ["--speed", repr(float(o.speed))]
        if self.end_ms is not None:
            a += ["--duration", "%.3f" % (self.end_ms / 1000.0)]
        if o.window_ms:
            a += ["--window-ms", str(int(o.window_ms))]
        if o.board_uid:
            a += ["--board-uid", o.board_uid]
        if o.secret and self.boots == 1:
            a += ["--config", self._provision_file()]
        if o.i2c_fault_rate:
            a += ["--i2c-fault-rate", repr(float(o.i2c_fault_rate))]
        if cut is not None:
            a += ["--cut-at-ms", str(cut[0])]
            if cut[1] is not None:
                a += ["--cut-at-flash-op", str(cut[1])]
        return a

    def _boot(self):
        cut = self.plan.next_for(self.boot_start_ms, self.end_ms) if self.end_ms is not None else None
        self._armed = cut
        self.boots += 1
        argv = self._argv(self.boot_start_ms, cut)
        self.log("boot %d at t=%d ms%s" % (self.boots, self.boot_start_ms,
                                           "" if cut is None else " (cut armed at t=%d ms%s)"
                                           % (cut[0], "" if cut[1] is None else ", flash op %d" % cut[1])))
        env = node_env()
        if self.o.ble_hci_uart:
            env["MICROPYBTUART"] = os.path.realpath(self.o.ble_hci_uart)
            argv.append("--ble")
        self.node = NodeProc(argv, env, os.path.join(self.logdir, "boot%d.stderr" % self.boots))
        self.state_name = "booting"
        self._boot_deadline = time.monotonic() + self.o.boot_timeout_s

    def _provision_file(self):
        """Factory provisioning of the AUTH secret: a config.json that simnode
        copies onto the flash before the first boot of this invocation (kept in
        the image across cuts). A 0600 temp file: never on a command line."""
        path = os.path.join(self.logdir, "provision.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auth": {"secret": self.o.secret}}, f)
        return path

    def start(self):
        self._wall0 = time.monotonic()
        self._boot()

    @property
    def finished(self):
        return self.state_name in ("done", "failed")

    def _fail(self, msg):
        self.error = msg
        self.state_name = "failed"

    def _cut(self, t_ms):
        """The node reported CUT at t_ms (virtual axis) and exits with 99."""
        node = self.node
        assert node is not None
        rc = node.stop()
        if rc != CUT_RC:
            self._fail("node printed CUT but exited with %s\n%s" % (rc, node.stderr_tail()))
            return
        self.intervals.append((self.boot_start_ms, t_ms))
        kind = "time"
        if self._armed is not None and self._armed[1] is not None and t_ms < self._armed[0]:
            kind = "flash"
        self.cuts.append((t_ms, kind))
        self.plan.consume()
        self.reboots += 1
        down = self.rng.randrange(self.o.max_downtime_ms + 1)
        if self.end_ms is not None:
            down = max(0, min(down, self.end_ms - t_ms))
        self.downtime_ms += down
        self.boot_start_ms = t_ms + down
        self.log("power cut at t=%d ms (%s), off for %d ms" % (t_ms, kind, down))
        self.state_name = "off"
        wait_s = 0.0 if self.o.virtual else down / 1000.0 / max(self.o.speed, 1e-6)
        self._restart_at = time.monotonic() + wait_s

    def step(self, timeout=0.1):
        """Advance supervision by at most `timeout` seconds of waiting."""
        if self.finished:
            return self.state_name
        if self.state_name == "off":
            left = self._restart_at - time.monotonic()
            if left > 0:
                time.sleep(min(left, timeout))
                return self.state_name
            self._boot()
            return self.state_name
        node = self.node
        assert node is not None
        ev = node.next_event(timeout)
        if ev is None:
            if self.state_name == "booting" and time.monotonic() > self._boot_deadline:
                node.stop()
                self._fail("node did not print READY within %.0f s\n%s"
                           % (self.o.boot_timeout_s, node.stderr_tail()))
            return self.state_name
        kind, val = ev
        if kind == "READY":
            self.state_name = "running"
            self._anchor = (time.monotonic(), val)     # node's virtual axis vs wall clock
            self.log("node ready at t=%d ms, console %s" % (val, self.console))
            if self.on_boot:
                self.on_boot(val)
        elif kind == "DONE":
            self.intervals.append((self.boot_start_ms, val))
            self.done_ms = val
            self.state_name = "done"
        elif kind == "CUT":
            self._cut(val)
        elif kind == "EXIT":
            if val == CUT_RC:
                self._fail("node exited with 99 without a CUT line")
            else:
                self._fail("node exited with %s%s" % (val, "\n" + node.stderr_tail() if val else ""))
        if self.o.verbose:
            while node.logs:
                self.log("node: " + node.logs.pop(0))
        return self.state_name

    def run_to_end(self, poll=0.2):
        while not self.finished:
            self.step(poll)

    def stop_clean(self, timeout=30.0):
        """Ctrl-C/SIGTERM: the node stops metering and commits like a clean
        shutdown, then prints DONE (totals read after this are what a next
        run on the same --state starts from). Returns True once DONE came."""
        node = self.node
        if self.state_name not in ("booting", "running") or node is None:
            return self.state_name == "done"
        try:
            node.proc.stdin.write(b"STOP\n")
            node.proc.stdin.flush()
        except (OSError, ValueError, AttributeError):
            return False
        end = time.monotonic() + timeout
        while not self.finished and time.monotonic() < end:
            self.step(0.2)
        return self.state_name == "done"

    def stop_now(self, t=None):
        """Ctrl-C in real time: pull the plug now (counts as the end of the run;
        t = virtual time of the end, default now)."""
        if self.state_name in ("booting", "running") and self.node is not None:
            t = self.now_ms() if t is None else t
            self.node.stop()
            self.intervals.append((self.boot_start_ms, t))
            self.done_ms = t
        self.state_name = "done"

    def now_ms(self):
        """Best estimate of the virtual time (real-time mode only)."""
        if self.done_ms is not None:
            return self.done_ms
        if self._anchor is not None:
            w, t = self._anchor
            return t + int((time.monotonic() - w) * 1000 * self.o.speed)
        if self._wall0 is None:
            return self.start_ms0
        return self.start_ms0 + int((time.monotonic() - self._wall0) * 1000 * self.o.speed)

    # -- results ---------------------------------------------------------------
    def truth(self):
        return truth_channels(load_profile(self.o.profile), self.modules, self.intervals)

    def result(self, channels):
        """The --json summary; `channels` as read from the node (None = unread)."""
        end = self.done_ms if self.done_ms is not None else self.now_ms()
        node_ch = []
        for c in channels or []:
            node_ch.append({"module": c.get("module"), "ch": c.get("ch"),
                            "import_mwh": int(c.get("import_mwh") or 0),
                            "export_mwh": int(c.get("export_mwh") or 0),
                            "gap_ms": int(c.get("gap_ms") or 0)})
        return {"elapsed_ms": end - self.start_ms0, "downtime_ms": self.downtime_ms,
                "reboots": self.reboots, "channels": node_ch, "truth": self.truth()}

    def close(self):
        if self.node is not None:
            self.node.stop()
        self.bridge.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
        shutil.rmtree(self.logdir, ignore_errors=True)


# -- accuracy bounds (docs/rbmeter.md "How close to the truth") ------------------------
# Node defaults (lib/store/policy.py): commit when a channel has >= 1 Wh
# unsaved, at most every 5 s. A cut loses what accrued since the last
# completed commit; a cut during a commit loses that commit too, hence 2x.
SAVE_THRESHOLD_MWH = 1000
SAVE_MIN_MS = 5000
STORE_TICK_MS = 1000         # simnode --store-ms default: save decision latency
BOOT_LATENCY_MS = 2000       # power-up -> first integrated window, per boot
REL_TOL_PPM = 2000           # 0.2 %: window quantisation, module noise
ABS_TOL_MWH = 10


def p_max_mw(profile, ch):
    if ch >= profile.nch:
        return 0
    return max(abs(int(x)) for x in profile.p[ch])


def bounds(res, profile):
    """Per channel and direction the allowed (under, over) deviation in mWh of
    node totals from truth for a --json result. Returns a list of
    (module, ch, key, node, truth, under_max, over_max)."""
    cuts = res["reboots"]
    boots = cuts + 1
    truth = {(t["module"], t["ch"]): t for t in res["truth"]}
    out = []
    for c in res["channels"]:
        t = truth.get((c["module"], c["ch"]))
        if t is None:
            continue
        p = p_max_mw(profile, c["ch"])
        per_cut = 2 * max(SAVE_THRESHOLD_MWH, p * SAVE_MIN_MS // MWMS_PER_MWH) + p * STORE_TICK_MS // MWMS_PER_MWH
        latency = p * BOOT_LATENCY_MS // MWMS_PER_MWH
        gap = p * c.get("gap_ms", 0) // MWMS_PER_MWH
        for key in ("import_mwh", "export_mwh"):
            rel = t[key] * REL_TOL_PPM // 1000000
            under = cuts * per_cut + boots * latency + gap + rel + ABS_TOL_MWH
            over = rel + ABS_TOL_MWH + boots
            out.append((c["module"], c["ch"], key, c[key], t[key], under, over))
    return out


def check_bounds(res, profile):
    """List of human-readable violations (empty = within bounds)."""
    bad = []
    node_keys = set((c["module"], c["ch"]) for c in res["channels"])
    for t in res["truth"]:
        if (t["module"], t["ch"]) not in node_keys:
            bad.append("%s ch %d: not reported by the node" % (t["module"], t["ch"]))
    for mod, ch, key, n, t, under, over in bounds(res, profile):
        if n < t - under or n > t + over:
            bad.append("%s ch %d %s: node %d, truth %d (allowed -%d/+%d)" % (mod, ch, key, n, t, under, over))
    return bad
