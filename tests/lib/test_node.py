import mptest
from clock import Ticks, PERIOD
from node.sched import Scheduler, VirtualLoop, BACKOFF_MS


class Every:
    def __init__(self, ticks, period, log, name):
        self.ticks = ticks
        self.period = period
        self.log = log
        self.name = name

    def poll(self, now):
        self.log.append((self.name, now))
        return self.ticks.ticks_add(now, self.period)


class Boom:
    def __init__(self, ticks, fail_times):
        self.ticks = ticks
        self.left = fail_times
        self.restarts = 0
        self.ok = 0

    def poll(self, now):
        if self.left > 0:
            self.left -= 1
            raise ValueError("bad %d" % self.left)
        self.ok += 1
        return self.ticks.ticks_add(now, 100)

    def restart(self):
        self.restarts += 1


def _loop(start=0):
    t = Ticks(start=start)
    s = Scheduler(t)
    return t, s, VirtualLoop(s, t.advance)


def test_time_order_and_periods():
    t, s, loop = _loop()
    log = []
    s.add("a", Every(t, 200, log, "a"))
    s.add("b", Every(t, 500, log, "b"))
    assert loop.run(1000)
    assert t.ticks_ms() == 1000
    a = [n for (k, n) in log if k == "a"]
    b = [n for (k, n) in log if k == "b"]
    assert a == [0, 200, 400, 600, 800, 1000]
    assert b == [0, 500, 1000]
    times = [n for (_, n) in log]
    assert times == sorted(times)


def test_crosses_tick_wrap():
    t, s, loop = _loop(PERIOD - 450)
    log = []
    s.add("a", Every(t, 200, log, "a"))
    loop.run(1000)
    got = [n for (_, n) in log]
    exp = [(PERIOD - 450 + 200 * i) % PERIOD for i in range(6)]
    assert got == exp, got
    for n in got:
        mptest.small(n)


def test_exception_counted_and_restarted():
    t, s, loop = _loop()
    b = Boom(t, 3)
    slot = s.add("boom", b)
    loop.run(5000)
    assert slot.errors == 3
    assert b.restarts == 3
    assert slot.restarts == 3
    assert slot.last_error.startswith("ValueError: bad")
    # 3 failures back off BACKOFF_MS each, then every 100 ms
    first_ok = 3 * BACKOFF_MS
    assert b.ok == (5000 - first_ok) // 100 + 1
    assert s.errors() == 3


def test_hook_stops_and_caps_steps():
    t, s, loop = _loop()
    seen = []

    def hook(now):
        seen.append(now)
        return now >= 3000

    loop.hook = hook
    s.add("slow", Every(t, 10000, [], "s"))
    assert loop.run(20000, max_step_ms=1000) is False
    assert seen == [1000, 2000, 3000]


def test_none_due_means_backoff():
    class Lazy:
        def poll(self, now):
            return None
    t, s, loop = _loop()
    slot = s.add("lazy", Lazy())
    loop.run(3 * BACKOFF_MS)
    assert slot.runs == 4


# ---- the node application against the register-level simulator ----------

def _node(late_ms=0, variant="UI2"):
    from rbamp_sim import Bus, Module, Profile, VirtualClock
    from node.app import Node, default_config
    clk = VirtualClock(0)
    prof = Profile.constant([1500.0, -800.0], u_v=230.0)
    bus = Bus([Module(addr=0x50, variant=variant, profile=prof, seed=3)], clock=clk)

    class LateI2C:
        # the module is not on the bus until late_ms (unplugged at boot)
        def _chk(self, addr):
            if clk.now_ms() < late_ms:
                raise OSError(19)

        def scan(self):
            return [] if clk.now_ms() < late_ms else bus.scan()

        def readfrom_mem_into(self, addr, reg, buf):
            self._chk(addr)
            return bus.readfrom_mem_into(addr, reg, buf)

        def readfrom_mem(self, addr, reg, n):
            self._chk(addr)
            return bus.readfrom_mem(addr, reg, n)

        def writeto_mem(self, addr, reg, buf):
            self._chk(addr)
            return bus.writeto_mem(addr, reg, buf)

        def readfrom_into(self, addr, buf):
            self._chk(addr)
            return bus.readfrom_into(addr, buf)

        def writeto(self, addr, buf):
            self._chk(addr)
            return bus.writeto(addr, buf)

    tk = Ticks(PERIOD - 7000, source=clk.now_ms)     # crosses the wrap early on
    cfg = default_config()
    n = Node(tk, LateI2C(), root=None, cfg=cfg, delay_ms=clk.advance)
    n.boot()
    return n, clk, VirtualLoop(n.sched, clk.advance)


def test_node_integrates_module_energy():
    n, clk, loop = _node()
    assert n.modules[0].ok and n.modules[0].nch == 2
    t0 = clk.now_ms()
    loop.run(60000)
    ch = n.channels()
    assert len(ch) == 2
    dt = clk.now_ms() - t0
    imp = 1500000 * dt // 3600000       # 1500 W import on ch0 (mWh)
    exp = 800000 * dt // 3600000        # 800 W export on ch1
    tol0 = 1500000 * 400 // 3600000 + 1  # two windows (the first has no interval)
    assert abs(ch[0]["import_mwh"] - imp) <= tol0, (ch[0], imp)
    assert ch[0]["export_mwh"] == 0
    assert abs(ch[1]["export_mwh"] - exp) <= 800000 * 400 // 3600000 + 1, (ch[1], exp)
    assert ch[0]["p_mw"] == 1500000 and ch[1]["p_mw"] == -800000
    st = n.status()
    assert st["windows"] >= 295 and st["io_errors"] == 0 and st["task_errors"] == 0
    info = n.info()
    assert info["modules"][0]["variant"] == "UI2" and info["modules"][0]["ok"]
    assert info["uptime_s"] == 60


def _litter(n, size):
    # garbage made in a frame that is gone (no stale stack reference)
    junk = [bytearray(size) for _ in range(n)]
    return len(junk)


def test_status_heap_after_collect():
    # STATUS heap figures come after a gc.collect(): garbage left behind
    # by a burst of allocation is not counted as in use (docs/pico.md)
    import gc
    n, clk, loop = _node()
    loop.run(1000)
    st = n.status()
    if not hasattr(gc, "mem_alloc"):           # CPython: no MicroPython heap
        assert st["heap_used"] == -1
        return
    thr = gc.threshold()
    gc.threshold(-1)                           # no automatic collection meanwhile
    try:
        gc.collect()
        base = gc.mem_alloc()
        _litter(100, 1000)                     # ~100 KB of garbage
        st = n.status()
        _litter(100, 1000)
        gc.collect()
        reclaims = gc.mem_alloc() < base + 50000
    finally:
        gc.threshold(thr)
    assert st["heap_used"] > 0 and st["heap_free"] > 0
    if reclaims:                               # wasm32: gc.collect() from Python frees nothing
        assert st["heap_used"] < base + 50000, (st["heap_used"], base)


def test_module_missing_at_boot_is_retried():
    n, clk, loop = _node(late_ms=15000)
    m = n.modules[0]
    assert not m.ok and m.error                 # reported, not fatal
    assert "0x50:" in n.status()["faults"][0]
    loop.run(12000)
    assert not m.ok                             # first retry at 10 s: still absent
    loop.run(20000)
    assert m.ok and m.begins == 2               # found by the probe at 20 s (begin only after an ACK)
    assert n.status()["faults"] == []
    assert n.channels()[0]["import_mwh"] > 0


def test_failing_task_is_caught_counted_and_restarted():
    n, clk, loop = _node()
    slot = n.sched.slot("sampler")
    real = slot.comp.poll
    left = [2]

    def flaky(now):
        if left[0] > 0:
            left[0] -= 1
            raise RuntimeError("boom")
        return real(now)

    slot.comp.poll = flaky
    loop.run(10000)
    st = n.status()
    assert st["task_errors"] == 2
    assert "task:sampler" in st["faults"]
    assert st["tasks"][0].startswith("sampler:2:RuntimeError")
    assert n.channels()[0]["import_mwh"] > 0    # kept sampling afterwards
    n.reset("counters")
    assert n.status()["task_errors"] == 0


def test_node_interface_errors_and_preset_without_store():
    n, clk, loop = _node()
    loop.run(2000)
    mptest.raises(ValueError, n.preset, "0x51", 0, 1, 1)
    mptest.raises(ValueError, n.preset, "0x50", 5, 1, 1)
    mptest.raises(ValueError, n.reset, "bogus")
    mptest.raises(OSError, n.save)              # no store on this node
    n.preset("0x50", 1, 123456789012, 7)
    ch = n.channels()[1]
    assert ch["import_mwh"] == 123456789012 and ch["export_mwh"] == 7
    n.reset("totals", "0x50", 1)
    assert n.channels()[1]["import_mwh"] == 0
    assert n.secret() is None
    assert "auth.secret" in n.get_config() and n.get_config()["auth.secret"] == ""
