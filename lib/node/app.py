"""Node application: wires modules, sampler, store and console from config
and implements the node interface that proto.Engine calls (docs/protocol.md).

Everything here is per-instance state of Node; the components it hands to
node.sched are timestamp driven (poll(now) -> next due), so the same object
runs under asyncio on a board and in virtual time on the laptop."""
import gc
import json

import rbamp
import energy
from node import VERSION
from node.sched import Scheduler

# node timing (not user config): the module publishes an RT window every 200 ms
TIMING = {
    "window_ms": 200,      # module RT window (the sampler locks onto it)
    "retry_ms": 10000,     # each missing module is probed about this often
    "probe_min_ms": 250,   # ... but the probes of several are spread at least this far apart
    "store_ms": 1000,      # store policy / fast-state tick
    "commit_files": 1,     # channel files per store tick of a policy commit (2 lost windows: docs/pico.md) ...
    "commit_gap_ms": 20,   # ... and the pause between two such ticks (sampling runs between)
    "console_ms": 20,      # console input poll (bounds the reply latency)
    "console_quiet_ms": 1000,  # asyncio: an idle console waits this long for input (woken by it)
    "wdt_ms": 8000,        # hardware watchdog (RP2040 max 8388)
    "settle_ms": 300,      # modules ACK ~10 ms after power-up; retry budget 300 ms
    "wedge_ms": 3000,      # every transfer timing out this long: bus clear (then again as often)
    "wedge_reset_ms": 45000,   # still wedged this long: watchdog starved, the chip resets ...
    "wedge_rearm_s": 600,  # ... but after such a reset not again before this much uptime
}
CONFIG_FILE = "config.json"
# fast-state fields of energy.Meter.state() for small retained RAM (RP2's
# 28 scratch bytes): import kWh, import mWh, export kWh, export mWh
FAST_ENERGY = (1, 2, 4, 5)
_FAST_CH_ALL = 23          # bytes per channel to carry the whole state (1 + 11 fields x 2)
# energy.Sampler per-module counters summed into STATUS
_SAMPLER_SUMS = ("reads", "windows", "missed", "stale", "invalid", "io_errors", "reboots",
                 "seq_jumps", "outages")


def _rt(dev, reg, nd):
    """A float from the module's last RT window, for people (None when the
    module is down or the value is not finite/plausible)."""
    if dev is None:
        return None
    try:
        x = dev.rt_float(reg)
    except (rbamp.RbAmpError, ValueError):
        return None
    if x != x or not -1e6 < x < 1e6:
        return None
    return round(x, nd)


def default_config():
    from store import config
    from node import profile
    return config.defaults(profile.config_defaults())


class NoBus:
    """Stands in for an I2C bus the port refused to build (bad id or pins):
    every transfer fails with ENODEV, so the modules show as missing in
    STATUS and the console still serves."""

    def scan(self):
        return []

    def _no(self, *a, **k):
        raise OSError(19)

    readfrom_mem_into = readfrom_mem = writeto_mem = readfrom_into = readfrom = writeto = _no


class Module:
    """One expected or found rbAmp address and its state."""

    def __init__(self, addr):
        self.addr = addr
        self.name = "0x%02x" % addr
        self.dev = None          # rbamp.RbAmp once begin() succeeded
        self.ok = False          # identified and being sampled
        self.error = ""          # last identification problem
        self.meter = None
        self.nch = 0
        self.idx = -1            # index in the energy sampler
        self.begins = 0


class SamplerTask:
    """energy.Sampler as a scheduler component (it answers ms-to-wait)."""

    def __init__(self, sampler, ticks):
        self.s = sampler
        self.ticks = ticks

    def poll(self, now):
        return self.ticks.ticks_add(now, self.s.poll(now))


class Supervisor:
    """Finds modules missing at boot (Node.probe: one short probe per poll,
    never blocking the loop) and keeps the uptime counter current (a ticks
    difference is only valid < 2**29 ms)."""

    def __init__(self, node):
        self.node = node
        self.first = True

    def poll(self, now):
        nd = self.node
        nd.uptime_s()
        if self.first:
            self.first = False          # boot() just probed everything
            return nd.ticks.ticks_add(now, nd.tm["retry_ms"])
        return nd.ticks.ticks_add(now, nd.probe(now))


class StoreTask:
    def __init__(self, node):
        self.node = node

    def poll(self, now):
        nd = self.node
        st = nd.store
        if st is not None:
            st.tick(now)
            if st.pending():
                return nd.ticks.ticks_add(now, nd.tm["commit_gap_ms"])
        return nd.ticks.ticks_add(now, nd.tm["store_ms"])


class BusGuard:
    """Recovers a wedged I2C bus (a target holding SDA low: every transfer
    times out, none NACKs). Seen from the sampler's and the probes' bus
    counters once a second: after wedge_ms of nothing but timeouts, the
    board's bus clear (9 SCL clocks, STOP, I2C rebuilt), repeated every
    wedge_ms; after wedge_reset_ms the Watchdog stops feeding so the chip
    resets (totals: fast state + journal). A board that came up from a
    watchdog reset forces the next one only after wedge_rearm_s of uptime:
    at most one forced reset per 10 minutes, never a reset loop."""

    def __init__(self, node, clear, wdt_boot=False):
        self.node = node
        self.clear = clear             # () -> (i2c, clocks, released), or None
        self.wdt_boot = wdt_boot
        self.since = None              # ticks of the first timeout with nothing since
        self.next_clear = None
        self.last = (0, 0)
        self.recoveries = 0            # bus clears done
        self.released = 0              # ... after which SDA read high
        self.starving = False          # the watchdog is not fed: reset coming

    def poll(self, now):
        nd = self.node
        tk = nd.ticks
        s = nd.sampler
        ok = s.bus_ok + s.bus_other + nd.bus_ok
        to = s.bus_to + nd.bus_to
        if ok != self.last[0]:
            self.since = None          # something went through (or NACKed): the bus is free
            self.starving = False
        elif to != self.last[1] and self.since is None:
            self.since = now
            self.next_clear = tk.ticks_add(now, nd.tm["wedge_ms"])
        self.last = (ok, to)
        if self.since is not None:
            if tk.ticks_diff(now, self.next_clear) >= 0:
                self.next_clear = tk.ticks_add(now, nd.tm["wedge_ms"])
                self.recover()
            if tk.ticks_diff(now, self.since) >= nd.tm["wedge_reset_ms"] and not self.starving \
                    and nd.wdt is not None and (not self.wdt_boot or nd.uptime_s() >= nd.tm["wedge_rearm_s"]):
                self.starving = True
                nd._problem("i2c bus wedged: watchdog reset")
                try:
                    nd.save()          # totals to flash before the reset
                except Exception:
                    pass
        return tk.ticks_add(now, 1000)

    def recover(self):
        nd = self.node
        if self.clear is None:
            return
        self.recoveries += 1
        try:
            bus, _n, free = self.clear()
        except Exception as e:
            nd._problem("i2c bus clear: %s: %s" % (type(e).__name__, e))
            return
        if free:
            self.released += 1
        nd.i2c = bus
        for m in nd.modules:
            if m.dev is not None:
                m.dev.i2c = bus


class Watchdog:
    """Feeds the hardware WDT only while the sampler keeps running, so a hung
    sampler (not just a hung loop) resets the board."""

    def __init__(self, node, wdt, period):
        self.node = node
        self.wdt = wdt
        self.period = period
        self.feeds = 0

    def poll(self, now):
        nd = self.node
        s = nd.sched.slot("sampler")
        g = nd.bus_guard
        if s is not None and s.due is not None and nd.ticks.ticks_diff(now, s.due) < self.period * 2 \
                and (g is None or not g.starving):
            self.wdt.feed()
            self.feeds += 1
        return nd.ticks.ticks_add(now, self.period)


class Node:
    def __init__(self, ticks, i2c, root="/", cfg=None, delay_ms=None, port=None, wdt=None,
                 fast=None, node_id="", reboot=None, sim=False, timing=None, auto=False, drdy=False,
                 powered_ms=0, bus_clear=None, wdt_boot=False):
        """cfg: validated store.config dict (None = defaults); auto: also
        scan the bus for modules not listed in cfg (no config file yet)."""
        self.ticks = ticks
        self.i2c = i2c
        self.root = None if root is None else root.rstrip("/")   # None: no persistence
        self.delay_ms = delay_ms
        self.problems = []               # boot findings and faults, for STATUS
        self.cfg = cfg if cfg is not None else default_config()
        self.auto = auto
        self.drdy = drdy                 # sampler anchored on DRDY edges (board IRQ)
        self.tm = dict(TIMING)
        if timing:
            self.tm.update(timing)
        # ms the board (and its modules) had been powered when this node
        # started: the bus settle time counts from power-up
        self.boot_ticks = ticks.ticks_add(ticks.ticks_ms(), -powered_ms)
        self.up_s = 0                    # uptime carried in s + ms (ticks wrap)
        self.up_ms = 0
        self._up_last = ticks.ticks_ms()
        self.modules = []
        self.store = None
        self.fast = fast
        self._id = node_id
        self._reboot = reboot
        self.sim = sim
        self.events = []                 # audit ring (kind, detail)
        self.events_n = 0
        self.saves = 0
        self.last_save = None
        self.sched = Scheduler(ticks)
        self.engine = None
        self.console = None
        self.ble = None                  # ble.radio.Ble when ble.enabled (attach_ble)
        from energy.sampler import Sampler
        self.sampler = Sampler(clock=ticks)
        self.sched.add("supervisor", Supervisor(self))
        self.sched.add("sampler", SamplerTask(self.sampler, ticks))
        self.sched.add("store", StoreTask(self))
        self.bus_ok = 0                  # probe transfers that went through or NACKed ...
        self.bus_to = 0                  # ... or timed out (BusGuard)
        self.bus_guard = None
        if bus_clear is not None:
            self.bus_guard = BusGuard(self, bus_clear, wdt_boot)
            self.sched.add("bus", self.bus_guard)
        self._rr = 0                     # round-robin position of probe()
        self._scan_due = None
        self._b1 = bytearray(1)
        self.probes = 0                  # single-transaction probes of missing modules
        self.powerfails = 0
        self.iec = None                  # node.iecport.IecPort when iec.uart is configured
        self.wdt = None
        if wdt is not None:
            self.arm_watchdog(wdt)
        if port is not None:
            self.attach_console(port)

    # ---- wiring ------------------------------------------------------------
    def arm_watchdog(self, wdt):
        """Feed `wdt` from now on. The app arms it only once it has decided
        to run (never in safe mode, never before boot() finished): on rp2 a
        started watchdog cannot be stopped through machine.WDT."""
        if wdt is not None and self.wdt is None:
            self.wdt = wdt
            self.sched.add("watchdog", Watchdog(self, wdt, self.tm["wdt_ms"] // 4))

    def powerfail(self):
        """Power-fail input edge (supercap boards): commit now, ignoring
        the minimum interval. Runs from micropython.schedule."""
        self.powerfails += 1
        st = self.store
        if st is not None:
            try:
                st.powerfail()
            except Exception as e:
                self._problem("powerfail commit: %s" % (e,))
    def attach_console(self, port):
        import proto
        from node.console import Console
        baud = self.cfg.get("uart", {}).get("baud", 115200)
        con = Console(port, self.ticks, self.tm["console_ms"], baud=baud)
        eng = proto.Engine(self, con.write, clock=self.ticks, urandom=_urandom, room=con.room, baud=baud)
        con.attach(eng)
        self.console = con
        self.engine = eng
        self.sched.add("console", con)
        return con

    def attach_ble(self):
        """Optional BLE (config ble.*): one protocol engine per connection.
        A port without `bluetooth` or a radio that will not start is a
        STATUS problem; metering goes on."""
        import proto
        try:
            from ble.radio import Ble

            def engine(write, room):
                return proto.Engine(self, write, clock=self.ticks, urandom=_urandom, room=room, baud=200000)
            self.ble = Ble(self, self.ticks, self.cfg["ble"], engine)
        except Exception as e:
            self._problem("ble: %s: %s" % (type(e).__name__, e))
            return None
        self.sched.add("ble", self.ble)
        return self.ble

    def _path(self, name):
        return (self.root or "") + "/" + name

    def _scan(self):
        try:
            return [a for a in self.i2c.scan() if 0x08 <= a <= 0x77]
        except OSError as e:
            self._problem("i2c scan failed: %s" % (e,))
            return []

    def _expected(self):
        want = [m["addr"] for m in self.cfg["modules"]]
        if self.auto:
            # No module list configured: whatever answers. Modules powered up
            # with the board NACK for their first ~10 ms, so let the bus
            # settle before the boot scan; later ones are found by probe().
            left = self.tm["settle_ms"] - self.ticks.ticks_diff(self.ticks.ticks_ms(), self.boot_ticks)
            if left > 0 and self.delay_ms is not None:
                self.delay_ms(left)
            found = self._scan()
            if found:
                want = found
        return want

    def boot(self):
        """Identify modules and restore totals. Never raises for a module or
        flash problem: they are reported in STATUS instead."""
        for a in self._expected():
            self.modules.append(Module(a))
        tk = self.ticks
        for m in self.modules:
            # a module that powered up with the board NACKs for ~10 ms: the
            # full begin() (300 ms ACK budget) only while the bus settles or
            # once it answered; the others are left to probe()
            if self.auto or tk.ticks_diff(tk.ticks_ms(), self.boot_ticks) < self.tm["settle_ms"] \
                    or self._acks(m.addr):
                self._begin(m)
            else:
                m.error = "no ACK"
        self._rebuild_store()
        return self

    def _problem(self, msg):
        if msg not in self.problems:
            self.problems.append(msg)
            if len(self.problems) > 16:
                self.problems.pop(0)

    def _mcfg(self, addr):
        for mc in self.cfg["modules"]:
            if mc["addr"] == addr:
                return mc
        return None

    def _begin(self, m):
        m.begins += 1
        dev = rbamp.RbAmp(self.i2c, m.addr, delay_ms=self.delay_ms, ticks=self.ticks)
        try:
            dev.begin()
        except (rbamp.RbAmpError, OSError) as e:
            m.ok = False
            m.error = "%s: %s" % (type(e).__name__, e)
            return False
        m.dev = dev
        m.nch = dev.channels
        m.meter = energy.Meter(m.nch)
        m.idx = self.sampler.add_module(dev, drdy=self.drdy, meter=m.meter, window_ms=self.tm["window_ms"])
        mc = self._mcfg(m.addr)
        if mc is not None:
            for ch in range(m.nch):
                c = mc["ch"][ch]
                self.sampler.set_channel(m.idx, ch, invert=c["invert"], enabled=not c["disable"],
                                         no_load_mw=c["noload_w"] * 1000)
        m.ok = True
        m.error = ""
        return True

    def probe(self, now):
        """Look for modules that never answered (missing at boot); returns
        ms until the next call. One call costs at most one short register
        read (no retries, no waiting): the next missing module in turn, so
        each is tried about every retry_ms and sampling of the present ones
        never stalls. Only a module that ACKed gets the full begin().
        Once a module is in the sampler, outages are the sampler's
        business (gap accounting, reboot detection); they show in STATUS."""
        tk = self.ticks
        retry = self.tm["retry_ms"]
        if self.auto and (self._scan_due is None or tk.ticks_diff(now, self._scan_due) >= 0):
            # auto mode: pick up modules that appeared since (hot-plug, late boot)
            self._scan_due = tk.ticks_add(now, retry)
            known = [m.addr for m in self.modules]
            for a in self._scan():
                if a not in known:
                    self.modules.append(Module(a))
        missing = [m for m in self.modules if m.dev is None]
        if not missing:
            return retry
        self._rr = (self._rr + 1) % len(missing)
        m = missing[self._rr]
        if self._acks(m.addr):
            if self._begin(m):
                self._rebuild_store()
        elif not m.error:
            m.error = "no ACK"
        step = retry // len(missing)
        return step if step > self.tm["probe_min_ms"] else self.tm["probe_min_ms"]

    def _acks(self, addr):
        self.probes += 1
        try:
            self.i2c.readfrom_mem_into(addr, rbamp.regs.PRODUCT_ID, self._b1)
            self.bus_ok += 1
            return True
        except OSError as e:
            if e.args and (e.args[0] == 110 or e.args[0] == 116):
                self.bus_to += 1
            else:
                self.bus_ok += 1
            return False

    def _rebuild_store(self):
        """(Re)create the store over the modules that have meters. Totals in
        RAM are committed first, so recovery reads back what RAM held."""
        if self.root is None:
            return
        try:
            from store.persist import Store, MeterSource
            from store.journal import Journal
        except ImportError:
            return
        old = self.store
        if old is not None:
            try:
                old.commit(force=True)
            except Exception as e:
                self._problem("store commit before rebuild: %s" % (e,))
        pairs = []
        mods = []
        for m in self.modules:
            if m.meter is None:
                continue
            uid = m.dev.uid if m.dev is not None else None
            mods.append((uid or None, m.addr, m.nch))
            for ch in range(m.nch):
                pairs.append((m.meter, ch))
        if not mods:
            self.store = None
            return
        from store.policy import Policy
        sv = self.cfg["save"]
        pol = Policy(threshold_mwh=sv["threshold_mwh"], min_ms=sv["min_interval_s"] * 1000,
                     max_ms=sv["max_interval_s"] * 1000)
        jr = Journal(self.root + self.cfg["store"]["dir"], pattern=sv["pattern"])
        # small retained RAM (RP2 scratch: 28 B) carries the energy fields
        # only; the rest (sub-mWh carry, times) comes back from flash
        cap = getattr(self.fast, "capacity", 0) if self.fast is not None else 0
        ff = None if cap >= 4 + len(pairs) * _FAST_CH_ALL else FAST_ENERGY
        st = Store(MeterSource(pairs), mods, journal=jr, fast=self.fast, policy=pol,
                   ticks=self.ticks, fast_fields=ff, fast_ms=sv["fast_ms"],
                   files_per_tick=self.tm["commit_files"], prefill=True)
        try:
            rep = st.boot()
        except Exception as e:
            self._problem("store boot failed: %s" % (e,))
            rep = []
        for r in rep:
            self._problem("store: " + r)
        self.store = st

    # ---- helpers -------------------------------------------------------------
    def uptime_s(self):
        now = self.ticks.ticks_ms()
        d = self.ticks.ticks_diff(now, self._up_last)
        if d > 0:
            self._up_last = now
            ms = self.up_ms + d
            self.up_s += ms // 1000
            self.up_ms = ms % 1000
        return self.up_s

    def _module(self, name):
        for m in self.modules:
            if m.name == name:
                return m
        try:
            a = int(name, 0)
        except (ValueError, TypeError):
            raise ValueError("no module %s" % (name,))
        for m in self.modules:
            if m.addr == a:
                return m
        raise ValueError("no module %s" % (name,))

    def _chan(self, module, ch):
        m = self._module(module)
        if m.meter is None or not 0 <= ch < m.nch:
            raise ValueError("no channel %s %s" % (module, ch))
        return m

    # ---- node interface (docs/protocol.md) -----------------------------------
    def node_id(self):
        return self.cfg.get("name") or self._id or "rbmeter"

    def info(self):
        mods = []
        for m in self.modules:
            d = m.dev
            mods.append({
                "addr": m.name, "variant": d.variant_name if d else "", "channels": m.nch,
                "voltage_hw": bool(d.has_voltage_hw) if d else False,
                "fw": _fw_str(d.version) if d else "",
                "fw_version": d.version if d else 0, "tier": d.tier_name.lower() if d else "",
                "read_mode": d.read_mode if d else "", "mode": "", "ok": m.ok,
                # module identity for hosts (a replaced module is a new meter)
                "uid": "".join("%02x" % b for b in d.uid) if d is not None and d.uid else ""})
        return {"fw": VERSION, "node_id": self.node_id(), "uptime_s": self.uptime_s(), "modules": mods}

    def channels(self):
        out = []
        for m in self.modules:
            mt = m.meter
            if mt is None:
                continue
            sm = self.sampler.mods[m.idx] if m.idx >= 0 else None
            dev = m.dev if m.ok else None
            uhw = dev is not None and dev.has_voltage_hw
            u = _rt(dev, rbamp.regs.U_RMS, 1) if uhw else None
            for ch in range(m.nch):
                # last good power as integrated (sign/no-load applied)
                p = sm.hold[ch] if sm is not None else rbamp.BAD
                pf = _rt(dev, rbamp.regs.PF0 + 4 * ch, 3) if uhw else None
                if pf is not None and sm is not None and sm.sign[ch] < 0:
                    pf = -pf                    # reversed CT: PF sign follows P
                out.append({"module": m.name, "ch": ch,
                            "import_mwh": mt.import_total_mwh(ch), "export_mwh": mt.export_total_mwh(ch),
                            "gap_ms": mt.gap_time_ms(ch),
                            "p_mw": None if p == rbamp.BAD else p,
                            "u_v": u, "i_a": _rt(dev, rbamp.regs.I_RMS0 + 4 * ch, 3), "pf": pf,
                            "enabled": sm.enabled[ch] if sm is not None else True})
        return out

    def status(self):
        faults = []
        for m in self.modules:
            if not m.ok:
                faults.append("%s:%s" % (m.name, m.error or "down"))
        st = self.store
        ss = None
        if st is not None:
            try:
                ss = st.status()
            except Exception:
                ss = None
        if ss is not None:
            for k in ss.get("faults", {}):
                faults.append("store:%s" % k)
        if st is None and self.root is not None:
            faults.append("store:none")
        tasks = []
        for s in self.sched.slots:
            if s.errors:
                tasks.append("%s:%d:%s" % (s.name, s.errors, s.last_error))
                faults.append("task:%s" % s.name)
        d = {
            "faults": faults,
            "problems": list(self.problems),
            "task_errors": self.sched.errors(),
            "tasks": tasks,
        }
        tot = {}
        for m in self.modules:
            if m.idx < 0:
                continue
            ms = self.sampler.status(m.idx)
            for k in _SAMPLER_SUMS:
                tot[k] = tot.get(k, 0) + ms[k]
            tot["gap_events"] = tot.get("gap_events", 0) + sum(ms["gap_events"])
            tot["bad_values"] = tot.get("bad_values", 0) + sum(ms["bad"])
            if ms["note"]:
                self._problem("%s: %s" % (m.name, ms["note"]))
        for k in tot:
            d[k] = tot[k]
        d["i2c_retries"] = sum(m.dev.retry_count_total for m in self.modules if m.dev is not None)
        g = self.bus_guard
        if g is not None:
            d["bus_recoveries"] = g.recoveries
            d["bus_released"] = g.released
            d["bus_wedged"] = 1 if g.since is not None else 0
        if hasattr(gc, "mem_alloc"):
            gc.collect()                 # heap figures mean little without a collection first
        d.update({
            "saves": self.saves,
            "last_save_s": self._since_save(),
            "uptime_s": self.uptime_s(),
            "heap_free": gc.mem_free() if hasattr(gc, "mem_free") else -1,
            "heap_used": gc.mem_alloc() if hasattr(gc, "mem_alloc") else -1,
        })
        if self.ble is not None:
            d.update(self.ble.status())
        if st is not None and ss is not None:
            d["commits"] = ss.get("commits", 0)
            d["commit_fails"] = ss.get("fails", 0)
            d["fs"] = "err" if ss.get("ram_only") else "ok"
            try:
                d["loss_bound_mwh"] = st.pol.loss_bound_mwh(self._max_p())
            except Exception:
                pass
        else:
            d["fs"] = "none"
        return d

    def _max_p(self):
        mx = 0
        for m in self.modules:
            if m.ok and m.dev is not None:
                for ch in range(m.nch):
                    v = m.dev.p_mw[ch]
                    if v != rbamp.BAD:
                        v = v if v > 0 else -v
                        if v > mx:
                            mx = v
        return mx

    def _since_save(self):
        if self.last_save is None:
            return None
        return self.ticks.ticks_diff(self.ticks.ticks_ms(), self.last_save) // 1000

    def save(self):
        """Signed SAVE: commits the channels with unsaved changes (a no-op
        without flash writes when there are none)."""
        st = self.store
        if st is None:
            raise OSError(19, "no store")
        ok, n = st.save()
        if not ok:
            raise OSError(5, "commit failed")
        if not n:
            return "nothing unsaved"
        self.saves += 1
        self.last_save = self.ticks.ticks_ms()
        return "saved %d channel(s)" % n

    def shutdown(self):
        """Clean stop (sim end, before a reset): commit like a power-down warning."""
        if self.store is not None:
            self.store.shutdown()

    def preset(self, module, ch, import_mwh, export_mwh):
        m = self._chan(module, ch)
        st = self.store
        if st is None:
            m.meter.preset(ch, import_mwh, export_mwh)
            return None
        ok, why = st.preset(m.addr, ch, import_mwh, export_mwh)
        if not ok:
            raise OSError(5, why)
        return None

    def reset(self, scope, module=None, ch=None):
        if scope == "totals":
            targets = []
            for m in self.modules:
                if m.meter is None or (module is not None and m is not self._module(module)):
                    continue
                for c in range(m.nch):
                    if ch is None or c == ch:
                        targets.append((m, c))
            if module is not None and not targets:
                raise ValueError("no channel %s %s" % (module, ch))
            for m, c in targets:
                if self.store is not None:
                    ok, why = self.store.reset(m.addr, c)
                    if not ok:
                        raise OSError(5, why)
                else:
                    m.meter.preset(c, 0, 0)
            return None
        if scope == "counters":
            for sm in self.sampler.mods:
                for k in _SAMPLER_SUMS:
                    setattr(sm, k, 0)
                for ch in range(sm.nch):
                    sm.gap_events[ch] = 0
                    sm.bad[ch] = 0
            for s in self.sched.slots:
                s.errors = 0
                s.last_error = ""
            self.problems = []
            return None
        if scope == "config":
            keep = self.cfg.get("auth", {}).get("secret", "")
            self.cfg = default_config()
            self.cfg["auth"]["secret"] = keep
            self._write_config()
            return None
        raise ValueError("unknown reset scope %s" % (scope,))

    def set(self, key, value):
        from store import config
        if key.startswith("auth."):
            raise ValueError("secret is provisioned, not set over the console")
        new = json.loads(json.dumps(self.cfg))        # deep copy: apply only if valid
        ok, msg = config.set_key(new, key, value)
        if not ok:
            raise ValueError(msg)
        err = config.save(new, self._path(CONFIG_FILE))
        if err:
            raise OSError(5, err)
        self.cfg = new
        v = config.get_key(new, key)
        return "%s=%s (applies at reboot)" % (key, v) if _RESTART_KEY(key) else "%s=%s" % (key, v)

    def get_config(self):
        out = {}
        _flatten(out, "", self.cfg)
        for k in list(out):
            if k.startswith("auth.") or k == "ble.bthome_key":
                out[k] = "***" if out[k] else ""
        return out

    def session_config(self):
        """Config shown only inside an authenticated session: the BTHome
        bind key (the AUTH secret is never shown)."""
        return {"ble.bthome_key": self.cfg.get("ble", {}).get("bthome_key", "")}

    def _write_config(self):
        from store import config
        err = config.save(self.cfg, self._path(CONFIG_FILE))
        if err:
            raise OSError(5, err)

    def secret(self):
        from proto import auth
        s = self.cfg.get("auth", {}).get("secret", "")
        if not s or auth.secret_problem(s):
            return None          # too short / malformed: refused (STATUS problem at boot)
        return auth.secret_bytes(s)

    def set_secret(self, key):
        """KEY: the new secret (bytes), journalled in /config.json before it applies."""
        from store import config
        new = json.loads(json.dumps(self.cfg))
        new["auth"]["secret"] = "hex:" + "".join("%02x" % b for b in key)
        err = config.save(new, self._path(CONFIG_FILE))
        if err:
            raise OSError(5, err)
        self.cfg = new

    def reboot(self):
        if self._reboot is None:
            raise OSError(95, "reboot not supported")
        if self.store is not None:
            self.store.shutdown()         # totals on flash before the reset
        if self.console is not None:
            self.console.flush()          # the OK reaches the reader first
        self._reboot()

    def event(self, kind, detail):
        """Audit ring (RAM, last 32). Records of signed commands ("cmd") also
        go to <store dir>/audit.log: only a key holder can cause flash writes."""
        try:
            self.events_n += 1
            rec = (self.events_n, self.uptime_s(), kind, detail)
            self.events.append(rec)
            if len(self.events) > 32:
                self.events.pop(0)
            if kind == "cmd" and self.root is not None:
                self._audit_file(rec)
        except Exception:
            pass

    def _audit_file(self, rec):
        import os
        p = self.root + self.cfg["store"]["dir"] + "/audit.log"
        try:
            if os.stat(p)[6] > 4096:
                os.rename(p, p[:-4] + ".old")
        except OSError:
            pass
        try:
            with open(p, "a") as f:
                f.write("%d %d %s %s\n" % rec)
        except OSError:
            pass

    def audit(self, n):
        """Last n audit records (seq, uptime_s, kind, detail), oldest first."""
        return self.events[-n:]


def _urandom(n):
    import os
    return os.urandom(n)


def _fw_str(v):
    # VERSION register: 0x03 = firmware v1.2, 0x04 = v1.3 (rbamp-protocol.md)
    return "1.%d" % (v - 1) if 0x03 <= v <= 0x09 else "0x%02x" % v


def _RESTART_KEY(key):
    return key.startswith("i2c.") or key.startswith("uart.") or key.startswith("modules") \
        or key == "drdy_pin" or key.startswith("store.") or key.startswith("save.") \
        or key.startswith("iec.") or key.startswith("powerfail.")


def _flatten(out, pre, v):
    if isinstance(v, dict):
        for k in v:
            _flatten(out, pre + k + ".", v[k])
    elif isinstance(v, list):
        for i in range(len(v)):
            _flatten(out, pre + str(i) + ".", v[i])
    else:
        out[pre[:-1]] = v


def load_config(root, profile=None):
    """(validated config, problems, auto) from root/config.json; auto when
    the file does not list modules (then the bus is scanned). profile:
    board-profile defaults (node.profile.config_defaults())."""
    from store import config
    path = root.rstrip("/") + "/" + CONFIG_FILE
    cfg, errs = config.load(path, profile=profile)
    auto = True
    try:
        with open(path) as f:
            auto = "modules" not in json.loads(f.read())
    except (OSError, ValueError):
        pass
    return cfg, errs, auto


def _try(probs, what, fn, *a):
    # a port that rejects an id or pin raises ValueError (rp2: "bad SCL pin"),
    # a missing peripheral OSError: either becomes a STATUS problem
    try:
        return fn(*a)
    except Exception as e:
        probs.append("%s: %s: %s" % (what, type(e).__name__, e))
        return None


def wire(cfg, probs, board):
    """(i2c, console port) from the config; a part the port rejects falls
    back to the board profile's default, then to nothing (NoBus / no
    console), each step reported in probs. Never raises."""
    i2c = _try(probs, "i2c", board.i2c, cfg)
    if i2c is None:
        d = default_config()
        if (d["i2c"]["id"], d["i2c"]["scl"], d["i2c"]["sda"]) != (cfg["i2c"]["id"], cfg["i2c"]["scl"], cfg["i2c"]["sda"]):
            d["i2c"]["freq"] = cfg["i2c"]["freq"]
            i2c = _try(probs, "i2c default", board.i2c, d)
            if i2c is not None:
                probs.append("i2c: using the board default I2C(%d) pins" % d["i2c"]["id"])
    if i2c is None:
        i2c = NoBus()
    port = _try(probs, "console uart", board.uart, cfg)
    if port is None:
        d = default_config()
        u, du = cfg["uart"], d["uart"]
        if (du["id"], du["tx"], du["rx"]) != (u["id"], u["tx"], u["rx"]):
            for k in ("baud", "bits", "parity", "stop"):
                du[k] = u[k]
            port = _try(probs, "console uart default", board.uart, d)
            if port is not None:
                probs.append("console: using the board default UART(%d)" % du["id"])
    return i2c, port


def start(ticks, root="/", sim=False, timing=None, delay_ms=None, drdy=False):
    """Wire the node from config.json and the board (machine) and boot it.
    Returns the Node; the caller runs node.sched (asyncio or virtual) and
    arms the watchdog (main()). Never raises for config or wiring faults."""
    from node import board, layout, profile
    moved = layout.migrate(root)           # before the store opens its directory
    cfg, probs, auto = load_config(root, profile.config_defaults())
    for m in moved:
        probs.append("store: " + m)
    i2c, port = wire(cfg, probs, board)
    tm = dict(TIMING)
    if timing:
        tm.update(timing)
    fast = None
    if not sim:
        try:
            from store import rtcmem
            fast = rtcmem.detect()
        except Exception:
            fast = None
    if delay_ms is None:
        import time
        delay_ms = getattr(time, "sleep_ms", None)
    nid = _try(probs, "node id", board.node_id) or ""
    # on a board ticks_ms() counts from reset: modules powered up with it
    # have long settled by now (boot.py, imports)
    up = 0 if sim else min(ticks.ticks_ms(), 60000)
    wdt_boot = _try(probs, "reset cause", board.wdt_was_reset) is True

    def clear():
        return board.bus_clear(cfg)
    n = Node(ticks, i2c, root=root, cfg=cfg, delay_ms=delay_ms, port=port, fast=fast,
             node_id=nid, reboot=board.reboot, sim=sim, timing=tm, auto=auto, drdy=drdy, powered_ms=up,
             bus_clear=None if isinstance(i2c, NoBus) else clear, wdt_boot=wdt_boot)
    for p in probs:
        n._problem(p)                      # incl. "/config.json: missing ...; using defaults"
    pf = cfg["powerfail"]
    if pf["pin"] is not None:
        probs = []
        pin = _try(probs, "powerfail pin", board.input_pin, pf["pin"])
        if pin is not None:
            _try(probs, "powerfail irq", board.edge_irq, pin, n.powerfail, pf["active_low"])
        for p in probs:
            n._problem(p)
    iu = cfg["iec"]["uart"]
    if iu["id"] is not None:
        probs = []
        n.iec = _try(probs, "iec uart", attach_iec, n, board, iu, cfg["iec"]["baud"])
        for p in probs:
            n._problem(p)
    n.boot()
    if cfg.get("ble", {}).get("enabled"):
        n.attach_ble()                     # optional: a failure is a STATUS problem
    return n


def attach_iec(n, board, iu, max_baud):
    """The optical-head port (node.iecport) on its own UART, 300 Bd 7E1."""
    from node.iecport import IecPort, INIT_BAUD
    port = board.uart_open(iu["id"], iu["tx"], iu["rx"], INIT_BAUD, 7, "E", 1)
    ip = IecPort(port, n, n.ticks, board.uart_reinit, max_baud=max_baud)
    n.sched.add("iec", ip)
    return ip


def _readable(s):
    # suspend until s is readable, reading nothing (what StreamReader does
    # before each read): a timeout then cannot swallow bytes
    import asyncio
    yield asyncio.core._io_queue.queue_read(s)  # type: ignore


def waker(node, flag=None, stream=None, scale=1.0):
    """The asyncio wait between two polls of a component: the sampler wakes
    early on a DRDY edge (flag: ThreadSafeFlag set by the pin IRQ), the
    console as soon as bytes arrive (stream: the UART, or the tty file in
    the simulation), everything else sleeps. scale: wall ms per node ms."""
    import asyncio
    quiet = node.tm.get("console_quiet_ms", 1000)

    async def wake(slot, ms):
        w = int(ms * scale) if slot.name != "console" else ms
        try:
            if slot.name == "sampler" and flag is not None:
                await asyncio.wait_for_ms(flag.wait(), w)
            elif slot.name == "console" and stream is not None:
                # input wakes it; on time only for its own timers (TX queue,
                # LIVE, IEC): a wake-up every idle_ms allocates, and GC follows
                # (most of the idle CPU on the Pico, docs/pico.md "Measured")
                t = slot.comp.timed_ms
                await asyncio.wait_for_ms(_readable(stream), quiet if t is None or t > quiet else t)  # type: ignore
            else:
                await asyncio.sleep_ms(w)
        except asyncio.TimeoutError:
            pass

    return wake


def main():
    """Board entry (main.py): real time, asyncio; returns only on Ctrl-C.
    With a DRDY pin configured the sampler is woken by its falling edge
    (IRQ -> ThreadSafeFlag) and anchors windows at the edge; else it polls
    on time. The console task wakes on UART input. The hardware watchdog
    is armed only here, after boot, and released again on Ctrl-C where the
    port can (rp2), so `mpremote cp` after an interrupt is not reset."""
    from node import layout
    layout.fix_path()                   # frozen `store` before any '/store' on the filesystem
    import time
    import asyncio
    from node import board
    from node.sched import run_asyncio
    from node import profile
    cfg, _, _ = load_config("/", profile.config_defaults())
    probs = []
    pin = _try(probs, "drdy pin", board.drdy_pin, cfg)
    n = start(time, "/", drdy=pin is not None)
    for p in probs:
        n._problem(p)
    flag = None
    if pin is not None:
        flag = asyncio.ThreadSafeFlag()
        on_drdy = n.sampler.on_drdy

        def irq(_p):
            on_drdy(-1)
            flag.set()

        board.drdy_irq(pin, irq)
    port = n.console.port if n.console is not None else None
    try:
        n.arm_watchdog(board.wdt(n.tm["wdt_ms"]))
    except Exception as e:
        n._problem("watchdog: %s" % (e,))
    try:
        run_asyncio(n.sched, wake=waker(n, flag, port))
    except KeyboardInterrupt:
        stop(n, board)


def stop(n, board):
    """Clean stop (Ctrl-C): totals to flash, watchdog released if the port
    can; reports what it did on the REPL."""
    if n.store is not None:
        try:
            n.store.shutdown()
        except Exception:
            pass
    rel = False
    if n.wdt is not None:
        try:
            rel = board.wdt_release()
        except Exception:
            rel = False
    print("rbmeter: stopped; totals saved; watchdog %s" % (
        "not armed" if n.wdt is None else ("released" if rel else "STILL ARMED: reset in safe mode to deploy")))
