"""Console component: moves bytes between a UART-like port and a proto
Engine. poll(now) -> next due; idle_ms bounds the input latency."""
try:
    from micropython import const
except ImportError:
    def const(__x):
        return __x

_CHUNK = const(128)


class Console:
    def __init__(self, port, ticks, idle_ms=20):
        self.port = port
        self.ticks = ticks
        self.idle_ms = idle_ms
        self.engine = None        # set by the app once proto is wired
        self.buf = bytearray(_CHUNK)
        self.mv = memoryview(self.buf)
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.tx_errors = 0

    def attach(self, engine):
        self.engine = engine

    def write(self, b):
        # the engine's writer: must never raise
        try:
            n = self.port.write(b)
            self.tx_bytes += len(b) if n is None else n
        except Exception:
            self.tx_errors += 1

    def poll(self, now):
        eng = self.engine
        port = self.port
        for _ in range(32):           # bounded: a flood must not starve sampling
            n = port.readinto(self.buf)
            if not n:
                break
            self.rx_bytes += n
            if eng is not None:
                eng.feed(self.mv[:n], now)
        wait = self.idle_ms
        if eng is not None:
            d = eng.poll(now)
            if d is not None and d < wait:
                wait = d if d > 0 else 0
        return self.ticks.ticks_add(now, wait)
