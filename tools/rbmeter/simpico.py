"""`rbmeter sim --target pico`: the frozen RPI_PICO firmware on the emulated
RP2040 (tools/picoboard) instead of the unix port.

Same surface as rbmeter.sim.Sim (start/step/finished/result/close, console on
a PtyBridge), so cmd_sim drives either. Differences (docs/pico.md):
- time is always the emulator's cycle clock. Without --virtual the emulator is
  paced to --speed x wall time (it cannot run faster than ~1.3-2.4x real time
  while sampling); --virtual runs it as fast as it goes.
- --power-cuts: seeded cut instants; about half of them aimed inside a flash
  erase/program (random point inside), the rest at the planned cycle.
  --resets N: N watchdog/soft resets at seeded cycles (scratch kept).
- the totals of the --json summary are read over UART0 at the end instant
  (then the board keeps serving its console, paced to real time).
"""
import os
import random
import threading
import time

from rbmeter import sim as _sim

FLASH_NTH_MAX = 4           # a flash-op cut: inside one of the next N erase/program operations after arming


class _Proc:
    """What cmd_sim's --hold looks at (sim.node.proc.poll())."""

    def __init__(self, psim):
        self.psim = psim

    def poll(self):
        b = self.psim.board
        return None if b is not None and b.proc is not None and b.proc.poll() is None else 0


class _Node:
    def __init__(self, psim):
        self.proc = _Proc(psim)


class PicoSim:
    def __init__(self, opts, log=None):
        self.o = opts
        self.log = log or (lambda msg: None)
        self.modules = _sim.parse_modules(opts.modules)
        if opts.power_cuts and opts.duration_s is None:
            raise _sim.SimError("--power-cuts needs --duration")
        if getattr(opts, "resets", 0) and opts.duration_s is None:
            raise _sim.SimError("--resets needs --duration")
        if opts.virtual and opts.duration_s is None:
            raise _sim.SimError("--virtual needs --duration")
        if opts.profile and not os.path.exists(opts.profile):
            raise _sim.SimError("profile %s not found" % opts.profile)
        import picoboard
        self.picoboard = picoboard
        self.rng = random.Random(opts.seed)
        self.start_ms0 = int(opts.start_ms)
        self.end_ms = None if opts.duration_s is None else self.start_ms0 + int(round(opts.duration_s * 1000))
        if self.end_ms is not None and self.end_ms <= self.start_ms0:
            raise _sim.SimError("--duration must be > 0")
        self.plan = _sim.CutPlan(self.rng, int(opts.power_cuts), self.start_ms0, self.end_ms or 0,
                                 opts.flash_cut_share, FLASH_NTH_MAX)
        n_resets = int(getattr(opts, "resets", 0) or 0)
        span = (self.end_ms or 0) - self.start_ms0
        self.reset_plan = sorted((self.start_ms0 + 1 + self.rng.randrange(max(span - 1, 1)),
                                  self.rng.choice(("watchdog", "soft"))) for _ in range(n_resets)) if n_resets else []
        self.state = opts.state
        if self.state:
            os.makedirs(self.state, exist_ok=True)
        self.profile = _sim.load_profile(opts.profile)
        image = None
        if self.state and os.path.exists(os.path.join(self.state, "flash.bin")):
            image = os.path.join(self.state, "flash.bin")
        files = None
        if opts.secret:
            cfg = picoboard.board_config()
            cfg.setdefault("auth", {})["secret"] = opts.secret
            files = picoboard.default_files(cfg)
        try:
            self.board = picoboard.PicoBoard(modules=",".join("%s:%s" % m for m in self.modules), profile=self.profile,
                                             seed=opts.seed, files=files, flash_image=image,
                                             i2c_fault_rate=opts.i2c_fault_rate, start_ms=self.start_ms0,
                                             window_ms=opts.window_ms or 200, monitor=opts.monitor,
                                             start_ticks=opts.start_ticks,
                                             line_rate=bool(getattr(opts, "line_rate", False)),
                                             log=self.log)
        except picoboard.BoardError as e:
            raise _sim.SimError(str(e))
        self.bridge = self.board.bridge
        self.console = self.bridge.host_path
        self.control = self.bridge.monitor_path or self.console
        self.node = _Node(self)
        self.state_name = "idle"
        self.reboots = 0
        self.resets_done = 0
        self.downtime_ms = 0
        self.error = None
        self.done_ms = None
        self.end_channels = None
        self.on_boot = None
        self._thread = None
        self._stop = False
        self._wall0 = None
        self._v0 = 0

    # -- control ----------------------------------------------------------------
    def start(self):
        try:
            self.board.start()
        except Exception as e:
            raise _sim.SimError("emulated Pico: %s" % e)
        self._wall0 = time.monotonic()
        self.state_name = "running"
        self._arm_next()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="picosim")
        self._thread.start()

    def _ns(self, t_ms):
        return (t_ms - self.start_ms0) * 1000000

    def _arm_next(self):
        if self.end_ms is None:
            return
        now_ms = self.start_ms0 + self.board.t_ns // 1000000
        cut = self.plan.next_for(now_ms, self.end_ms)
        self._armed = cut
        if cut is None:
            return
        t, k = cut
        if k is None:
            self.board.arm_cut_at(self._ns(t))
        else:
            # inside one of the next erase/program operations, else at the planned instant
            self.board.arm_cut_in_flash_op(nth=k, frac=self.rng.random(), by_ns=self._ns(t))

    def _pace(self):
        if self.o.virtual and self.done_ms is None:
            return
        speed = self.o.speed if self.done_ms is None else 1.0
        ahead = (self.board.t_ns - self._v0) / 1e9 / speed - (time.monotonic() - self._wall0)
        if ahead > 0:
            time.sleep(min(ahead, 0.1))

    def _loop(self):
        b = self.board
        slice_ns = 20000000
        try:
            while not self._stop:
                limit = b.t_ns + slice_ns
                if self.done_ms is None and self.end_ms is not None:
                    limit = min(limit, self._ns(self.end_ms))
                    if self.reset_plan:
                        limit = min(limit, max(self._ns(self.reset_plan[0][0]), b.t_ns + 1))
                b.run_until(limit)
                if b.off:
                    self._after_cut()
                    continue
                if self.done_ms is None and self.reset_plan and b.t_ns >= self._ns(self.reset_plan[0][0]):
                    _, kind = self.reset_plan.pop(0)
                    b.reset(kind)
                    self.resets_done += 1
                    if self.on_boot:
                        self.on_boot(self.start_ms0 + b.t_ns // 1000000)
                if self.done_ms is None and self.end_ms is not None and b.t_ns >= self._ns(self.end_ms):
                    b.disarm()
                    self._finish()
                self._pace()
        except Exception as e:     # the runner died or the board failed
            self.error = "emulated Pico: %s" % e
            self.state_name = "failed"

    def _after_cut(self):
        b = self.board
        t_cut = self.start_ms0 + b.t_ns // 1000000
        self.plan.consume()
        self.reboots += 1
        down = self.rng.randrange(self.o.max_downtime_ms + 1)
        if self.end_ms is not None:
            down = max(0, min(down, self.end_ms - t_cut))
        self.downtime_ms += down
        kind = b.cuts[-1][1]
        self.log("power cut at t=%d ms (%s), off for %d ms" % (t_cut, kind, down))
        b.power_on(b.t_ns + down * 1000000)
        if not self.o.virtual:
            self._v0 += down * 1000000   # the off time passes at once in the emulator: keep pacing
        self._arm_next()
        if self.on_boot:
            self.on_boot(self.start_ms0 + b.t_ns // 1000000)

    def _finish(self):
        b = self.board
        self.done_ms = self.start_ms0 + b.t_ns // 1000000
        self._end_intervals = b.powered_intervals_ms()
        try:
            self.end_channels = b.totals(timeout_s=5.0)
        except Exception as e:
            self.log("totals at the end: %s" % e)
            self.end_channels = None
        self._wall0 = time.monotonic()
        self._v0 = b.t_ns
        if self.state:
            self.save_state()
        self.state_name = "done"

    def save_state(self):
        with open(os.path.join(self.state, "flash.bin"), "wb") as f:
            f.write(self.board.flash())

    @property
    def finished(self):
        return self.state_name in ("done", "failed")

    def step(self, timeout=0.1):
        time.sleep(timeout)
        return self.state_name

    def run_to_end(self, poll=0.2):
        while not self.finished:
            self.step(poll)

    def stop_now(self, t=None):
        if self.done_ms is None:
            self.done_ms = self.now_ms()
            self._end_intervals = self.board.powered_intervals_ms()
        self.state_name = "done"

    def now_ms(self):
        if self.done_ms is not None:
            return self.done_ms
        return self.start_ms0 + self.board.t_ns // 1000000

    # -- results ------------------------------------------------------------------
    def truth(self):
        iv = getattr(self, "_end_intervals", None) or self.board.powered_intervals_ms()
        return _sim.truth_channels(self.profile, self.modules, iv)

    def result(self, channels):
        """The --json summary. The totals are the ones read at the end instant
        (`channels`, read later over the pty while the board still runs, are
        used only when that end read failed)."""
        chans = self.end_channels if self.end_channels is not None else channels
        end = self.done_ms if self.done_ms is not None else self.now_ms()
        node_ch = [{"module": c.get("module"), "ch": c.get("ch"), "import_mwh": int(c.get("import_mwh") or 0),
                    "export_mwh": int(c.get("export_mwh") or 0), "gap_ms": int(c.get("gap_ms") or 0)}
                   for c in chans or []]
        res = {"elapsed_ms": end - self.start_ms0, "downtime_ms": self.downtime_ms, "reboots": self.reboots,
               "channels": node_ch, "truth": self.truth()}
        return res

    def close(self):
        self._stop = True
        if self._thread is not None:
            self._thread.join(10)
        self.board.close()
