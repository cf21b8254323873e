"""Lightweight nodes on ptys for bridge tests and benchmarks.

Each FakeNode is the real console engine (lib/proto, CPython) in front of a
small meter model instead of the MicroPython node: many of them fit in one
host process (one thread, one poll loop over all ptys), where 50 MicroPython
sim nodes would not fit on 2 cores. They speak exactly the documented
protocol because it is the same engine.

The meter: every `window_ms` (a "sample", like the module's RT window) each
channel integrates its power exactly in mWh. Power may follow the wall
clock so a subscriber can tell when a value was sampled (latency benchmark:
`stamp_power=True`, p_mw = sample wall time in ms mod 1,000,000).

Misbehaviour for tests: `garbage` (every reply is noise), `corrupt_rate`
(that share of reply lines has a damaged checksum), `reboot(lose_mwh)` (session,
JSON mode and uptime lost; totals fall back as after a power cut),
`preset()` (totals set lower without a reboot).
"""
import os
import random
import select
import threading
import time
import tty

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_MASK = (1 << 30) - 1


def _lib():
    import sys
    lib = os.path.join(ROOT, "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)


class _Clock:
    @staticmethod
    def ticks_ms():
        return int(time.monotonic() * 1000) & _MASK

    @staticmethod
    def ticks_diff(a, b):
        return ((a - b + (1 << 29)) & _MASK) - (1 << 29)

    @staticmethod
    def ticks_add(t, d):
        return (t + d) & _MASK


class FakeNode:
    """The node interface (docs/protocol.md) over a simple exact meter."""

    def __init__(self, node_id, modules=(("0x50", 2),), power_mw=(1500000, -800000), window_ms=200,
                 stamp_power=False, uid_seed=0):
        self.id = node_id
        self.modules = [(a, n, "".join("%02x" % ((k * 41 + i * 7 + uid_seed * 13) & 0xFF) for i in range(12)))
                        for k, (a, n) in enumerate(modules)]
        self.chans = []
        for a, n, _ in self.modules:
            for ch in range(n):
                p = power_mw[len(self.chans) % len(power_mw)]
                self.chans.append({"module": a, "ch": ch, "imp": 0, "exp": 0, "rem_i": 0, "rem_e": 0, "p": p})
        self.window_ms = window_ms
        self.stamp_power = stamp_power
        self.t_boot = time.monotonic()
        self.t_sample = time.monotonic()
        self.sample_wall_ms = int(time.time() * 1000)
        self.lock = threading.Lock()
        self.loss_bound_mwh = 50000     # as a node saving every 5 s at 36 kW would state

    def sample(self):
        """Integrates whole windows up to now (exact, mW*ms remainders kept)."""
        now = time.monotonic()
        n = int((now - self.t_sample) * 1000 // self.window_ms)
        if n <= 0:
            return
        dt = n * self.window_ms
        self.t_sample += dt / 1000.0
        self.sample_wall_ms = int(time.time() * 1000 - (now - self.t_sample) * 1000)
        for c in self.chans:
            p = c["p"]
            if self.stamp_power:
                p = self.sample_wall_ms % 1000000
                c["p"] = p
            if p >= 0:
                e = c["rem_i"] + p * dt
                c["imp"] += e // 3600000
                c["rem_i"] = e % 3600000
            else:
                e = c["rem_e"] - p * dt
                c["exp"] += e // 3600000
                c["rem_e"] = e % 3600000

    # -- node interface -------------------------------------------------------------
    def info(self):
        return {"fw": "0.1.0", "node_id": self.id, "uptime_s": int(time.monotonic() - self.t_boot),
                "modules": [{"addr": a, "variant": "UI%d" % n, "channels": n, "voltage_hw": True, "fw": "1.2",
                             "fw_version": 3, "tier": "basic", "read_mode": "burst", "mode": "", "ok": True,
                             "uid": uid} for a, n, uid in self.modules]}

    def channels(self):
        with self.lock:
            self.sample()
            return [{"module": c["module"], "ch": c["ch"], "import_mwh": c["imp"], "export_mwh": c["exp"],
                     "gap_ms": 0, "p_mw": c["p"], "enabled": True} for c in self.chans]

    def status(self):
        return {"faults": [], "uptime_s": int(time.monotonic() - self.t_boot), "loss_bound_mwh": self.loss_bound_mwh,
                "fs": "ok"}

    def save(self):
        return None

    def preset(self, module, ch, imp, exp):
        with self.lock:
            for c in self.chans:
                if c["module"] == module and c["ch"] == ch:
                    c["imp"], c["exp"] = imp, exp
                    return
        raise ValueError("no such channel")

    def reset(self, scope, module=None, ch=None):
        raise ValueError("not supported by the fake node")

    def set(self, key, value):
        raise ValueError("unknown key " + key)

    def get_config(self):
        return {}

    def secret(self):
        return None

    def node_id(self):
        return self.id

    def event(self, kind, detail):
        pass


class _Port:
    def __init__(self, node):
        _lib()
        import proto
        self.node = node
        self.master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(slave)
        self._slave = slave             # kept open: the pty lives while the fleet runs
        self.garbage = False
        self.corrupt_rate = 0.0         # share of reply lines with a damaged checksum (seeded)
        self.rng = random.Random(len(self.path))
        self.lines = 0
        self.engine = proto.Engine(node, self._write, _Clock(), os.urandom)

    def _write(self, data):
        self.lines += 1
        if self.garbage:
            data = b"\x00garbage{" + os.urandom(8).hex().encode() + b"}*ZZZZ\r\n"
        elif self.corrupt_rate and self.rng.random() < self.corrupt_rate and len(data) > 8:
            b = bytearray(data)
            b[2] ^= 0x01                # a flipped bit: the CRC no longer matches
            data = bytes(b)
        try:
            os.write(self.master, data)
        except OSError:
            pass                        # nobody reading: like a UART, drop


class FakeFleet:
    """n FakeNodes, each on its own pty (`paths`), served by one thread."""

    def __init__(self, n=0, prefix="fa4e", **node_kw):
        self.ports = []
        self._stop = False
        for i in range(n):
            self.add(FakeNode("%s%04x" % (prefix, i), uid_seed=i, **node_kw))
        self._thread = threading.Thread(target=self._run, name="fakefleet", daemon=True)
        self._thread.start()

    def add(self, node):
        p = _Port(node)
        self.ports.append(p)
        return p

    @property
    def paths(self):
        return [p.path for p in self.ports]

    def port(self, i):
        return self.ports[i]

    def reboot(self, i, lose_mwh=0):
        """As after a power cut: engine state and uptime lost, totals fall back."""
        p = self.ports[i]
        n = p.node
        with n.lock:
            n.sample()
            for c in n.chans:
                c["imp"] = max(0, c["imp"] - (lose_mwh if c["imp"] else 0))
                c["exp"] = max(0, c["exp"] - (lose_mwh if c["exp"] else 0))
            n.t_boot = time.monotonic()
        p.engine.reset(_Clock.ticks_ms())

    def _run(self):
        poller = select.poll()
        known = 0
        while not self._stop:
            while known < len(self.ports):
                poller.register(self.ports[known].master, select.POLLIN)
                known += 1
            by_fd = {p.master: p for p in self.ports}
            for fd, ev in poller.poll(50):
                p = by_fd.get(fd)
                if p is None:
                    continue
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data:
                    p.engine.feed(data, _Clock.ticks_ms())
            now = _Clock.ticks_ms()
            for p in self.ports:
                p.engine.poll(now)

    def close(self):
        self._stop = True
        self._thread.join(2)
        for p in self.ports:
            for fd in (p.master, p._slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
