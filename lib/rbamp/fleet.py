"""Several rbAmp modules on one bus."""
from rbamp import regs as R
from rbamp.device import RbAmp
from rbamp.errors import RbAmpError, RbAmpParamError

MAX_MODULES = 16        # bus capacitance / 5 Hz polling budget at 50 kHz


class RbAmpFleet:
    def __init__(self, bus, max_modules=MAX_MODULES, **dev_kw):
        self.bus = bus
        self.max_modules = max_modules
        self.devices = []
        self.excluded = []          # (addr, reason) of answering non-rbAmp / faulty devices
        self._kw = dev_kw
        self._tick = 0

    def scan(self, match_product=True):
        """Probe every ACKing address in 0x08..0x77 with begin(); keeps the
        rbAmp modules (sorted by address) and returns how many were found."""
        self.devices = []
        self.excluded = []
        for a in sorted(self.bus.scan()):
            if not (R.ADDR_MIN <= a <= R.ADDR_MAX):
                continue
            dev = RbAmp(self.bus, a, **self._kw)
            try:
                dev.begin()
            except RbAmpError as e:
                if match_product:
                    self.excluded.append((a, str(e)))
                    continue
                raise
            self.add(dev)
        return len(self.devices)

    def add(self, dev):
        if self.find(dev.address) is not None:
            raise RbAmpParamError("rbAmp fleet: address 0x%02X already in the fleet" % dev.address)
        if len(self.devices) >= self.max_modules:
            raise RbAmpParamError("rbAmp fleet: more than %d modules" % self.max_modules)
        self.devices.append(dev)
        return dev

    def find(self, addr):
        for d in self.devices:
            if d.address == addr:
                return d
        return None

    @property
    def count(self):
        return len(self.devices)

    def __len__(self):
        return len(self.devices)

    def __iter__(self):
        return iter(self.devices)

    def __getitem__(self, i):
        return self.devices[i]

    def enable_gc_all(self, group=0):
        for d in self.devices:
            d.enable_gc(True)
            if group:
                d.set_group_id(group, persist=True)

    def gc_latch(self, group=0, tick=None, settle_ms=50):
        """One general-call latch for the group; returns the tick used."""
        if tick is None:
            self._tick = self._tick % 0xFFFE + 1      # 1..0xFFFE (0xFFFF = "none")
            tick = self._tick
        RbAmp.broadcast_latch_group(self.bus, group, tick)
        if settle_ms and self.devices:
            self.devices[0]._delay(settle_ms)
        return tick

    def check_sync(self, tick):
        """[(addr, True if the module saw this GC tick)]"""
        out = []
        for d in self.devices:
            try:
                ok = d.read_gc_tick() == tick
            except RbAmpError:
                ok = False
            out.append((d.address, ok))
        return out

    def total_power(self):
        """Sum of signed real power over every channel of every module (W)."""
        s = 0.0
        for d in self.devices:
            if d.has_voltage_hw:
                for ch in range(d.channels):
                    s += d.read_power(ch)
        return s

    def total_energy_wh(self):
        s = 0.0
        for d in self.devices:
            for ch in range(d.channels):
                s += d.energy.wh(ch)
        return s

    def poll_errors(self):
        out = {}
        for d in self.devices:
            try:
                out[d.address] = d.has_error()
            except RbAmpError:
                out[d.address] = True
        return out
