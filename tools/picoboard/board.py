"""PicoBoard: the frozen RPI_PICO firmware on an emulated RP2040 (rp2040js),
with rbAmp modules on I2C0, DRDY on its pin and UART0 on a host pty.

    from picoboard import PicoBoard
    b = PicoBoard(modules="0x50:UI2", profile=Profile.constant([1500, -800]))
    b.start()                       # boot (flash image from files / config)
    b.run_for(5.0)                  # 5 s of emulator time (deterministic)
    b.console_cmd("STATUS")         # a command over UART0, the board stepped meanwhile
    b.power_cut(); b.power_on(t)    # RAM and scratch lost, flash kept
    b.close()

Python is the master: a node child (runner.mjs) steps the core and asks for
I2C answers / DRDY levels synchronously, so one seed gives one run. Time axis:
`t_ns` = emulator virtual ns since the first power-up (continuous across
resets and cuts); the simulator's master clock = start_ms + t_ns // 1e6.
Details and limits: docs/pico.md."""
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

from . import lfsimage

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BOOTROM = os.environ.get("PICOBOARD_BOOTROM") or os.path.join(os.path.dirname(ROOT), "shared", "target",
                                                              "rp2040-bootrom-b1.bin")
RUNNER = os.path.join(HERE, "runner.mjs")
FLASH_SIZE = 2 * 1024 * 1024
SCRATCH_FW = "/tmp/pico-scratch/micropython/ports/rp2/build-NODE/firmware.bin"
MS = 1000000
# RPI_PICO lines the board pulls up: UART0 RX (GP1), the safe-mode pin (GP15)
PULLED_UP = (1, 15)


class BoardError(Exception):
    pass


def _tools_path():
    tools = os.path.join(ROOT, "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)


def firmware(stock=False):
    """Path of the frozen (or stock) RPI_PICO firmware.bin: $PICOBOARD_FIRMWARE,
    else `make firmware`'s build (fwbuild, cached), else the scratch build."""
    env = os.environ.get("PICOBOARD_FIRMWARE_STOCK" if stock else "PICOBOARD_FIRMWARE")
    if env:
        return env
    _tools_path()
    try:
        import fwbuild   # noqa: E402
    except ImportError:
        fwbuild = None
    if fwbuild is not None:
        out = fwbuild.rp2_stock() if stock else fwbuild.rp2_firmware()
        return out["bin"]
    if not stock and os.path.exists(SCRATCH_FW):
        return SCRATCH_FW
    raise BoardError("no RPI_PICO firmware (run `make firmware`)")


def board_config():
    """The rp2 board profile (firmware/boards/rp2040.json) as a dict."""
    with open(os.path.join(ROOT, "firmware", "boards", "rp2040.json")) as f:
        return json.load(f)


def default_files(config=True):
    """boot.py, main.py and (config=True) /config.json = the rp2 board profile;
    config may also be a dict or a str (written as is) or None (no file)."""
    files = {}
    for name in ("boot.py", "main.py"):
        with open(os.path.join(ROOT, name), "rb") as f:
            files["/" + name] = f.read()
    if config is True:
        config = board_config()
    if isinstance(config, dict):
        files["/config.json"] = json.dumps(config)
    elif isinstance(config, (str, bytes)):
        files["/config.json"] = config
    return files


class I2CTarget:
    """Byte-level I2C0 target in front of an rbamp_sim.Bus: one snapshot per
    read phase (read-freeze at the address phase), writes applied at the end
    of their phase (repeated START or STOP)."""

    def __init__(self, bus):
        self.bus = bus
        self.wedge_hold = True

    def _mod(self, addr, read):
        try:
            return self.bus._target(addr, read)
        except OSError:
            return None

    def end_phase(self, msg):
        a = msg.get("pa")
        if a is None:
            return
        w = bytes.fromhex(msg.get("pw", ""))
        n = msg.get("pn", 0)
        bus = self.bus
        if a == 0:
            if w:
                try:
                    bus._general_call(w)
                except OSError:
                    pass
            return
        m = None
        for mod in bus.modules:
            if mod.addr == a:
                m = mod
                break
        if m is None:
            return
        t = bus.clock.now_ms()
        if msg.get("prd"):
            bus.n_bytes += n
            if m.auto_increment:
                m.ptr = (m.ptr + n) & 0xFF
            bus._wire(n + 1)
        else:
            bus.n_bytes += len(w)
            if w:
                m.ptr = w[0]
                if len(w) > 1:
                    m.write(w[0], w[1], t)
            bus._wire(len(w) + 1)

    def release(self):
        """The wedged target lets SDA go: the Faults.wedge_at window ends now."""
        f = self.bus.faults
        if f.wedge_at is not None:
            f.wedge_at = (f.wedge_at[0], min(f.wedge_at[1], self.bus.clock.now_ms()))

    def wedged_until(self):
        """End (master ms) of a Faults.wedge_at window covering now, else None."""
        w = self.bus.faults.wedge_at
        t = self.bus.clock.now_ms()
        if self.wedge_hold and w is not None and w[0] <= t < w[1]:
            return w[1]
        return None

    def connect(self, addr, read):
        if addr == 0:
            t = self.bus.clock.now_ms()
            return any(m.acks(t) and m.gc_active for m in self.bus.modules), None
        m = self._mod(addr, read)
        if m is None:
            return False, None
        if not read:
            return True, None
        buf = bytearray(256)
        ptr = m.ptr
        m.read_into(buf)
        m.ptr = ptr
        return True, buf

    def probe(self, addr):
        return self._mod(addr, False) is not None


class PicoBoard:
    def __init__(self, modules="0x50:UI2", profile=None, seed=1, files=None, config=True, flash_image=None,
                 firmware_bin=None, i2c_fault_rate=0.0, faults=None, start_ms=0, line_rate=False,
                 pins_high=PULLED_UP, window_ms=200, flash_events=True, attach_modules=True,
                 pty=True, monitor=False, start_ticks=0, wiring=None, pty1=False, honour_baud=False, log=None):
        """modules: "0x50:UI2,0x51:I3" or a list of rbamp_sim.Module (built on
        the board's clock); profile: rbamp_sim.Profile (default solar-home
        day); files: the LittleFS content (default boot.py, main.py and
        config (see default_files)); flash_image: a 2 MB image to start from
        (e.g. a --state dir's flash.bin) instead of firmware + files;
        line_rate: UARTs take 10 bit-times per byte at the programmed baud
        (TX FIFO fills, RX overruns); pty: bridge UART0 to a PtyBridge."""
        _tools_path()
        import rbamp_sim
        self.rbamp_sim = rbamp_sim
        self.log = log or (lambda m: None)
        self.seed = seed
        self.rng = random.Random(seed)
        self.start_ms = int(start_ms)
        self.clock = rbamp_sim.VirtualClock(start_ms=self.start_ms)
        self.profile = profile if profile is not None else rbamp_sim.Profile.solar_home_day()
        self.modules = []
        self.window_ms = window_ms
        self._pending_modules = []
        if isinstance(modules, str):
            from rbmeter.sim import parse_modules
            for i, (a, v) in enumerate(parse_modules(modules)):
                addr = int(a, 16)
                uid = bytes(((addr * 37 + 11 * j) & 0xFF) for j in range(12))
                self.modules.append(rbamp_sim.Module(addr=addr, variant=v, profile=self.profile, uid=uid,
                                                     seed=seed * 31 + i, window_ms=window_ms))
        else:
            self.modules = list(modules or [])
        self.faults = faults if faults is not None else rbamp_sim.Faults(seed=seed, nack_rate=i2c_fault_rate)
        self.bus = rbamp_sim.Bus([], clock=self.clock, faults=self.faults, freq=50000)
        if attach_modules:
            for m in self.modules:
                self.bus.attach(m)
        self.i2c = I2CTarget(self.bus)
        self.files = files if files is not None else default_files(config)
        self.flash_image = flash_image
        self.firmware_bin = firmware_bin
        self.line_rate = line_rate
        self.pins_high = list(pins_high)
        self.flash_events = flash_events
        self.start_ticks = int(start_ticks)
        # the physical wiring of the emulated board (I2C0 on GP4/GP5, DRDY on
        # GP6, console UART0 on GP0/GP1), whatever /config.json claims
        self.cfg = board_config() if wiring is None else wiring
        self.t_ns = 0
        self.tx = bytearray()            # everything UART0 sent (also goes to the pty)
        self.tx1 = bytearray()
        self.uart_log = []               # (t_ns, uart, baud, bits, parity, stop) as programmed
        self.resets = []                 # (t_ns, kind) incl. resets the firmware asked for
        self.unwedged = []               # (t_ns, why) wedges the target let go (clocks, reset)
        self.cuts = []                   # (t_ns, kind, detail)
        self.flash_ops = []              # (t_ns, op, off, n)
        self.flash_log_max = 10000
        self.powered = []                # [on_ns, off_ns) intervals
        self._on_ns = 0
        self.off = False
        self._rx = bytearray()
        self._rx1 = bytearray()
        self.proc = None
        self._tmp = tempfile.mkdtemp(prefix="picoboard-")
        self.bridge = None
        self._nodefd = -1
        self.pty = pty
        self.monitor = monitor
        self._lock = threading.RLock()
        self._thread = None
        self._stop = False
        self.running_free = False
        self.on_tx = None                # fn(bytes) for every UART0 chunk (tests)
        self._mute = False               # console_cmd's reply stays off the pty
        self.wall_s = 0.0
        if pty:
            # the console exists before power-up, like a USB-serial adapter
            from rbmeter.ptybridge import PtyBridge
            import tty
            self.bridge = PtyBridge(monitor=monitor)
            self._nodefd = os.open(self.bridge.node_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(self._nodefd)
        # UART1 on a second pty (e.g. the IEC optical-head port); honour_baud:
        # bytes pass only while the host side's termios speed matches the rate
        # the firmware last programmed into UART1 (±2 %), else they are lost
        # (counted in baud_drops), like a reader at the wrong rate on a line
        self.bridge1 = None
        self._nodefd1 = -1
        self._hostfd1 = -1
        self.honour_baud = honour_baud
        self.baud_drops = [0, 0]         # (to the host, to the board)
        if pty1:
            from rbmeter.ptybridge import PtyBridge
            import tty
            self.bridge1 = PtyBridge()
            self._nodefd1 = os.open(self.bridge1.node_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(self._nodefd1)
            self._hostfd1 = os.open(self.bridge1.host_path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)

    # ---- lifecycle ---------------------------------------------------------
    @property
    def console(self):
        return self.bridge.host_path if self.bridge else None

    def start(self):
        fw = None
        img = os.path.join(self._tmp, "init.bin")
        if self.flash_image is not None:
            data = self.flash_image if isinstance(self.flash_image, (bytes, bytearray)) else open(self.flash_image, "rb").read()
            with open(img, "wb") as f:
                f.write(data)
        else:
            fw = self.firmware_bin or firmware()
            with open(img, "wb") as f:
                f.write(lfsimage.build(self.files))
        node = os.environ.get("NODE", "node")
        # own session: a terminal's Ctrl-C reaches the master only, which still
        # reads the totals over the console before it stops the board
        self.proc = subprocess.Popen([node, RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     cwd=ROOT, bufsize=0, start_new_session=True)
        init = {"op": "init", "bootrom": BOOTROM, "line_rate": self.line_rate, "pins_high": self.pins_high,
                "sda": self.cfg["i2c"]["sda"], "scl": self.cfg["i2c"]["scl"], "i2c_id": self.cfg["i2c"]["id"],
                "drdy_pin": self.cfg.get("drdy_pin", -1) if self.cfg.get("drdy_pin") is not None else -1,
                "flash_events": self.flash_events, "t0": 0, "start_ticks_ms": self.start_ticks}
        if self.flash_image is not None:
            init["flash_image"] = img
        else:
            init["firmware"] = fw
            init["lfs"] = img
            init["lfs_off"] = lfsimage.LFS_OFFSET
        r = self._cmd(init)
        self.rom = r.get("rom")
        self._on_ns = 0
        return self

    def close(self):
        self.stop_free_run()
        if self.proc is not None:
            try:
                self._send({"op": "quit"})
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self._nodefd >= 0:
            os.close(self._nodefd)
            self._nodefd = -1
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        for fd in (self._nodefd1, self._hostfd1):
            if fd >= 0:
                os.close(fd)
        self._nodefd1 = self._hostfd1 = -1
        if self.bridge1 is not None:
            self.bridge1.close()
            self.bridge1 = None
        import shutil
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # ---- IPC ---------------------------------------------------------------
    def _send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())

    def _recv(self):
        line = self.proc.stdout.readline()
        if not line:
            raise BoardError("runner exited (rc %s)" % self.proc.poll())
        return json.loads(line)

    def _cmd(self, obj):
        """A command whose answer is one `ok` (events before it are handled)."""
        with self._lock:
            self._send(obj)
            return self._pump()

    def _set_clock(self, t_ns):
        t = self.start_ms + t_ns // MS
        if t > self.clock.now_ms():
            self.clock.set(t)

    def _pump(self):
        """Serve the runner's requests until it reports ok/paused."""
        while True:
            m = self._recv()
            ev = m.get("ev")
            t = m.get("t")
            if t is not None:
                self.t_ns = t
                self._set_clock(t)
            if ev == "i2c":
                self.i2c.end_phase(m)
                self._attach_due()
                wu = self.i2c.wedged_until()
                if wu is not None:
                    self._send({"hold": (wu - self.start_ms) * MS, "dn": self._drdy_next(t),
                                "clk": self.bus.faults.wedge_clocks or 0})
                    continue
                ack, snap = self.i2c.connect(m["a"], bool(m["rd"]))
                r = {"ack": 1 if ack else 0, "dn": self._drdy_next(t)}
                if snap is not None:
                    r["d"] = snap.hex()
                self._send(r)
            elif ev == "i2cstop":
                self.i2c.end_phase(m)
            elif ev == "unwedge":
                self.i2c.release()                 # SCL clocked: the target let SDA go
                self.unwedged.append((t, m["why"]))
                self.log("i2c wedge released (%s) at %.3f s" % (m["why"], t / 1e9))
            elif ev == "probe":
                self._attach_due()
                self._send({"ack": 1 if self.i2c.probe(m["a"]) else 0})
            elif ev == "drdy":
                self._attach_due()
                lvl = self.bus.drdy_level(self.clock.now_ms())
                self._send({"lvl": lvl, "dn": self._drdy_next(t, lvl)})
            elif ev == "tx":
                data = bytes.fromhex(m["d"])
                if m["u"] == 0:
                    self.tx += data
                    self._to_host(data)
                else:
                    self.tx1 += data
                    self._to_host1(data)
            elif ev == "uart_cfg":
                rec = (t, m["uart"], m["baud"], m["bits"], m["parity"], m["stop"])
                if m.get("replace"):
                    for i in range(len(self.uart_log) - 1, -1, -1):
                        if self.uart_log[i][1] == m["uart"]:
                            self.uart_log[i] = rec
                            break
                else:
                    self.uart_log.append(rec)
            elif ev == "flash":
                if len(self.flash_ops) < self.flash_log_max:
                    self.flash_ops.append((t, m["op"], m["off"], m["n"]))
            elif ev == "reset":
                self.resets.append((t, m["kind"]))
                if self.bus.faults.wedge_clocks is not None and self.i2c.wedged_until() is not None:
                    self.i2c.release()             # the target's reset is tied to the chip's
                    self.unwedged.append((t, "reset"))
                self.log("reset (%s) at %.3f s" % (m["kind"], t / 1e9))
            elif ev in ("ok", "paused"):
                return m
            elif ev == "error":
                raise BoardError(m.get("msg"))
            else:
                raise BoardError("unexpected runner message %r" % (m,))

    def _drdy_next(self, t_ns, lvl=None):
        now = self.clock.now_ms()
        if lvl is None:
            lvl = self.bus.drdy_level(now)
        if lvl == 0:
            nxt = now + 1
        else:
            cands = [m.next_commit_ms(now) for m in self.bus.modules]
            cands = [c for c in cands if c is not None and c > now]
            nxt = min(cands) if cands else now + 1000
            if self._pending_modules:
                nxt = min(nxt, min(a for a, _ in self._pending_modules))
        return (nxt - self.start_ms) * MS

    def _attach_due(self):
        now = self.clock.now_ms()
        while self._pending_modules and self._pending_modules[0][0] <= now:
            _, m = self._pending_modules.pop(0)
            self.bus.attach(m)
            if m not in self.modules:
                self.modules.append(m)
            self.log("module 0x%02x powered up at %d ms" % (m.addr, now))

    def add_module_at(self, t_ms, module):
        """Power `module` up on the bus at master time t_ms (hot-plug)."""
        self._pending_modules.append((int(t_ms), module))
        self._pending_modules.sort(key=lambda x: x[0])

    # ---- UART0 <-> pty --------------------------------------------------------
    def _to_host(self, data):
        if self.on_tx:
            self.on_tx(data)
        if self._nodefd >= 0 and not self._mute:
            try:
                os.write(self._nodefd, data)
            except OSError:
                pass

    def _from_host(self):
        self._rx += _drain(self._nodefd)
        if self._nodefd1 >= 0:
            d = _drain(self._nodefd1)
            if d and not self._rates_match():
                self.baud_drops[1] += len(d)
                d = b""
            self._rx1 += d

    def _to_host1(self, data):
        if self._nodefd1 < 0:
            return
        if not self._rates_match():
            self.baud_drops[0] += len(data)
            return
        try:
            os.write(self._nodefd1, data)
        except OSError:
            pass

    def host_baud1(self):
        """The speed the host side of the UART1 pty is set to (termios)."""
        import termios
        sp = termios.tcgetattr(self._hostfd1)[5]
        return _SPEEDS.get(sp)

    def _rates_match(self):
        if not self.honour_baud:
            return True
        prog = [x[2] for x in self.uart_log if x[1] == 1]
        host = self.host_baud1()
        return bool(prog) and host is not None and abs(prog[-1] - host) <= host // 50

    @property
    def console1(self):
        """The UART1 pty path (pty1=True)."""
        return self.bridge1.host_path if self.bridge1 else None

    def uart_write(self, data, uart=0):
        """Bytes for the board's UART RX (enter at the next run slice)."""
        with self._lock:
            if uart == 0:
                self._rx += data
            else:
                self._rx1 += data

    # ---- stepping ------------------------------------------------------------
    def run_until(self, t_ns):
        """Step the emulator to virtual t_ns (returns early at a power cut;
        then `self.off` is True and `self.cuts[-1]` tells where)."""
        if self.off:
            raise BoardError("board is off (power_on first)")
        with self._lock:
            self._from_host()
            cmd = {"op": "run", "until": int(t_ns)}
            if self._rx:
                cmd["rx0"] = bytes(self._rx).hex()
                self._rx.clear()
            if self._rx1:
                cmd["rx1"] = bytes(self._rx1).hex()
                self._rx1.clear()
            w0 = time.monotonic()
            self._send(cmd)
            r = self._pump()
            self.wall_s += time.monotonic() - w0
            self.t_ns = r["t"]
            self._set_clock(self.t_ns)
            if "cut" in r:
                c = r["cut"]
                self.cuts.append((c["t"], c["kind"], c))
                self.powered.append((self._on_ns, c["t"]))
                self.off = True
                self.log("power cut at %.3f s (%s)" % (c["t"] / 1e9, c.get("op", "time")))
            return r

    def run_for(self, seconds, slice_s=0.05):
        """Run `seconds` of virtual time in slices (console bytes move per slice)."""
        end = self.t_ns + int(seconds * 1e9)
        while self.t_ns < end and not self.off:
            self.run_until(min(end, self.t_ns + int(slice_s * 1e9)))
        return self

    # ---- power and resets --------------------------------------------------------
    def arm_cut_at(self, t_ns):
        """Cut the power at exactly virtual t_ns (the next run stops there)."""
        self._cmd({"op": "arm", "at": int(t_ns)})

    def arm_cut_in_flash_op(self, nth=0, frac=0.5, by_ns=None):
        """Cut the power inside the nth flash erase/program from now, after
        `frac` of its bytes (and time); at by_ns at the latest if given."""
        c = {"op": "arm", "nth": int(nth), "frac": float(frac)}
        if by_ns is not None:
            c["at"] = int(by_ns)
        self._cmd(c)

    def disarm(self):
        self._cmd({"op": "disarm"})

    def power_cut(self):
        """Pull the plug now (at the current cycle)."""
        if self.off:
            return
        self.arm_cut_at(self.t_ns)
        self.run_until(self.t_ns + 1)

    def power_on(self, t_ns=None, reboot_modules=True):
        """A new chip on the same flash at t_ns (>= the cut): RAM, scratch and
        timers start from reset. The modules share the supply: they reboot too."""
        if not self.off:
            raise BoardError("board is on")
        t_ns = self.t_ns if t_ns is None else int(t_ns)
        self._set_clock(t_ns)
        if reboot_modules:
            for m in self.bus.modules:
                m.reboot(self.clock.now_ms())
        self._cmd({"op": "power_on", "t": t_ns})
        self.t_ns = t_ns
        self._on_ns = t_ns
        self.off = False

    def reset(self, kind="watchdog"):
        """A watchdog ("watchdog": timeout) or soft ("soft": machine.reset())
        reset now: flash and the watchdog scratch registers survive."""
        self._cmd({"op": "reset", "kind": kind})   # its `reset` event lands in self.resets

    def scratch(self):
        return self._cmd({"op": "scratch"})["scratch"]

    # ---- inspection --------------------------------------------------------------
    def stats(self):
        """cycles (all chips), chipCycles, wfeNs (time the core waited), flashOps,
        eraseNs/progNs, resets, rxOverrun, i2cTx, pcSamples, uart_log."""
        return self._cmd({"op": "stats"})

    def flash(self):
        p = os.path.join(self._tmp, "dump.bin")
        self._cmd({"op": "dump", "path": p})
        with open(p, "rb") as f:
            return f.read()

    def files_now(self):
        """The board's LittleFS content now ({path: bytes})."""
        img = self.flash()[lfsimage.LFS_OFFSET:lfsimage.LFS_OFFSET + lfsimage.LFS_BYTES]
        return lfsimage.read_tree(img)

    def pc_sampling(self, every_cycles, clear=True):
        """Record the PC every `every_cycles` executed cycles (0 = off)."""
        self._cmd({"op": "pc_sample", "every": int(every_cycles), "clear": clear})

    def pc_histogram(self):
        """{pc: samples} since pc_sampling()."""
        return {int(k): v for k, v in self._cmd({"op": "pc_hist"})["hist"]}

    def powered_intervals_ms(self):
        """Powered [start, end) on the simulator's master axis (ms)."""
        out = [(self.start_ms + a // MS, self.start_ms + b // MS) for a, b in self.powered]
        if not self.off:
            out.append((self.start_ms + self._on_ns // MS, self.start_ms + self.t_ns // MS))
        return out

    # ---- free running (a console user on the pty) ----------------------------------
    def start_free_run(self, speed=None, slice_s=0.02):
        """Step in a background thread until stop_free_run(): as fast as
        possible (speed None) or paced to `speed` x wall time."""
        if self._thread is not None:
            return
        self._stop = False

        def loop():
            w0 = time.monotonic()
            t0 = self.t_ns
            while not self._stop and not self.off:
                self.run_until(self.t_ns + int(slice_s * 1e9))
                if speed:
                    ahead = (self.t_ns - t0) / 1e9 / speed - (time.monotonic() - w0)
                    if ahead > 0:
                        time.sleep(ahead)
        self._thread = threading.Thread(target=loop, daemon=True, name="picoboard")
        self._thread.start()

    def stop_free_run(self):
        if self._thread is not None:
            self._stop = True
            self._thread.join()
            self._thread = None

    # ---- console convenience (deterministic, no pty) ---------------------------------
    def console_cmd(self, line, timeout_s=5.0, slice_s=0.01, until=None, to_pty=False):
        """Send one command line on UART0 and step until a status line
        (OK/ERR/JSON) or `until(bytes)` is true; returns the reply bytes."""
        start = len(self.tx)
        mute, self._mute = self._mute, not to_pty
        try:
            return self._console_cmd(line, start, timeout_s, slice_s, until)
        finally:
            self._mute = mute

    def _console_cmd(self, line, start, timeout_s, slice_s, until):
        self.uart_write(line.encode() + b"\r\n")
        end = self.t_ns + int(timeout_s * 1e9)
        done = until or _reply_done
        while self.t_ns < end and not self.off:
            self.run_until(self.t_ns + int(slice_s * 1e9))
            if done(bytes(self.tx[start:])):
                break
        return bytes(self.tx[start:])

    def command(self, line, timeout_s=5.0):
        """console_cmd decoded: the reply's lines (str, stripped)."""
        data = self.console_cmd(line, timeout_s=timeout_s)
        return [ln.strip() for ln in data.decode("utf-8", "replace").split("\n") if ln.strip()]

    def totals(self, timeout_s=5.0):
        """TOTALS over UART0 -> rbmeter.client channel dicts (import_mwh, export_mwh, gap_ms, ...)."""
        from rbmeter.client import parse_text_record, norm_channel
        lines = self.command("TOTALS", timeout_s)
        if not lines or lines[-1] != "OK":
            raise BoardError("TOTALS: %r" % (lines[-3:],))
        return [norm_channel(parse_text_record(ln)) for ln in lines if ln.startswith("CH ")]

    def status(self, timeout_s=5.0):
        """STATUS over UART0 -> {key: str}."""
        from rbmeter.client import parse_text_record
        out = {}
        lines = self.command("STATUS", timeout_s)
        if not lines or lines[-1] != "OK":
            raise BoardError("STATUS: %r" % (lines[-3:],))
        for ln in lines:
            if ln.startswith("STATUS "):
                out.update(parse_text_record(ln))
        out.pop("t", None)
        return out

    def truth(self, intervals=None):
        """rbmeter.sim.truth_channels over the powered intervals (default: all so far)."""
        from rbmeter.sim import truth_channels
        mods = [("0x%02x" % m.addr, m.variant) for m in self.modules]
        return truth_channels(self.profile, mods, intervals if intervals is not None else self.powered_intervals_ms())

    def result(self, channels):
        """The `rbmeter sim --json` summary shape for node channels read now."""
        node_ch = [{"module": c.get("module"), "ch": c.get("ch"), "import_mwh": int(c.get("import_mwh") or 0),
                    "export_mwh": int(c.get("export_mwh") or 0), "gap_ms": int(c.get("gap_ms") or 0)}
                   for c in channels or []]
        iv = self.powered_intervals_ms()
        up = sum(b - a for a, b in iv)
        elapsed = self.t_ns // MS
        return {"elapsed_ms": elapsed, "downtime_ms": max(0, elapsed - up), "reboots": len(self.cuts),
                "channels": node_ch, "truth": self.truth(iv)}


def _drain(fd):
    out = b""
    if fd < 0:
        return out
    while True:
        try:
            d = os.read(fd, 4096)
        except OSError:
            return out
        if not d:
            return out
        out += d


def _speeds():
    import termios
    out = {}
    for name in dir(termios):
        if name.startswith("B") and name[1:].isdigit():
            out[getattr(termios, name)] = int(name[1:])
    return out


_SPEEDS = _speeds()


def _reply_done(data):
    for ln in data.split(b"\n")[:-1]:      # complete lines only: the wire may stop mid-"OK\r\n"
        s = ln.strip()
        if s.startswith(b"OK") or s.startswith(b"ERR") or s.startswith(b'{"ok"'):
            return True
    return False
