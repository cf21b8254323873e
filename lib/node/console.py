"""Console component: moves bytes between a UART-like port and a proto
Engine. poll(now) -> next due; idle_ms bounds the input latency.

Output goes through a bounded TX queue that poll() drains with a byte budget,
so metering never waits on a reader (docs/protocol.md "Reply budget"):
- rp2 `UART.write` with timeout=0 returns a partial count or None when its
  ring is full: the rest stays queued, nothing is dropped;
- ESP32 `UART.write` blocks until every byte is in its driver buffer (and
  rp2's waits up to 1 ms when its ring is full): on a port with `txdone()`
  (both) the queue only writes when the transmitter is idle, and then at most
  `tx_chunk` bytes, what the port takes without waiting (ESP32 128: its FIFO;
  rp2 256: its TX ring).
The engine asks room() before it queues a reply: a reply is queued whole or
replaced by `ERR 503 busy`, never truncated.

A UART break (rp2 and ESP32 report it as `UART.IRQ_BREAK`) resets the engine
at the next poll: session, challenges, partial line and modes end."""
import sys

try:
    from micropython import const
except ImportError:
    def const(__x):
        return __x

_CHUNK = const(128)
TX_CAP = const(8192)       # queued bytes: the reply bound (largest reply fits whole)
TX_BUDGET = const(512)     # bytes offered to the port per poll
TX_CHUNK = const(128)      # per write into an idle transmitter (txdone()): ESP32 HW FIFO
# what an idle transmitter takes without waiting: rp2 TX ring (txbuf default 256)
_CHUNKS = {"rp2": 256}


class Console:
    def __init__(self, port, ticks, idle_ms=20, baud=115200, tx_cap=TX_CAP, budget=TX_BUDGET,
                 tx_chunk=None):
        self.port = port
        self.ticks = ticks
        self.idle_ms = idle_ms
        self.baud = baud
        self.engine = None        # set by the app once proto is wired
        self.buf = bytearray(_CHUNK)
        self.mv = memoryview(self.buf)
        self.tx_cap = tx_cap
        self.budget = budget
        self.tx_chunk = tx_chunk if tx_chunk else _CHUNKS.get(sys.platform, TX_CHUNK)
        self._txdone = getattr(port, "txdone", None)
        self._q = []              # queued bytes objects, oldest first
        self._off = 0             # bytes of _q[0] already written
        self.txq = 0              # bytes queued
        self.tx_peak = 0
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.tx_errors = 0
        self.tx_stalls = 0        # polls that ended with bytes the port would not take
        self.breaks = 0
        self._brk = False
        brk = getattr(port, "IRQ_BREAK", None)
        irq = getattr(port, "irq", None)
        if brk is not None and irq is not None:
            try:
                irq(handler=self._on_break, trigger=brk)
            except Exception:     # a port without break interrupts: no break detection
                pass

    def _on_break(self, _u):
        # IRQ context: only a flag; poll() does the work
        self._brk = True
        # ms until the console must run again whatever the input (engine
        # timers, TX queue); None: only input needs it, so a waker that sees
        # the port (asyncio) sleeps until bytes arrive instead of every idle_ms
        self.timed_ms = None

    def attach(self, engine):
        self.engine = engine

    def room(self):
        """Free TX queue bytes (the engine's reply check)."""
        r = self.tx_cap - self.txq
        return r if r > 0 else 0

    def write(self, b):
        """The engine's writer: queues, never blocks, never raises. The engine
        checked room() first; a status line alone may overshoot the cap."""
        if not b:
            return
        self._q.append(b if isinstance(b, bytes) else bytes(b))
        self.txq += len(b)
        if self.txq > self.tx_peak:
            self.tx_peak = self.txq

    def pending(self):
        return self.txq

    def drain(self, budget):
        """Writes up to budget queued bytes, as far as the port takes them.
        Returns the bytes written."""
        port = self.port
        done = 0
        q = self._q
        if q and self._txdone is not None:
            # a blocking write (ESP32): only into an idle transmitter, and
            # no more than its buffer takes without waiting
            try:
                if not self._txdone():
                    return 0
            except Exception:
                pass
            if budget > self.tx_chunk:
                budget = self.tx_chunk
        while q and done < budget:
            head = q[0]
            start = self._off
            end = start + budget - done
            if end < len(head) and done:
                break                   # whole lines where they fit: the rest next time
            if end > len(head):
                end = len(head)
            try:
                n = port.write(memoryview(head)[start:end])
            except Exception:
                self.tx_errors += 1
                n = 0
            if n is None or n < 0:      # rp2, timeout=0, ring full: nothing taken
                n = 0
            self._off = start + n
            done += n
            self.txq -= n
            self.tx_bytes += n
            if self._off >= len(head):
                q.pop(0)
                self._off = 0
            if n < end - start:
                self.tx_stalls += 1     # the port is full: resume at the next poll
                break
        return done

    def flush(self, ms=2000):
        """Blocking drain for the last words before a reset (REBOOT)."""
        t0 = self.ticks.ticks_ms()
        while self._q and self.ticks.ticks_diff(self.ticks.ticks_ms(), t0) < ms:
            if not self.drain(self.budget):
                sl = getattr(self.ticks, "sleep_ms", None)
                if sl is not None:
                    sl(2)

    def _tx_wait(self):
        # ms until the port has room again: the time one chunk takes on the wire
        b = self.baud if self.baud else 115200
        ms = self.tx_chunk * 10000 // b
        return ms if ms > 1 else 1

    def poll(self, now):
        eng = self.engine
        port = self.port
        budget = self.budget
        if self._q:
            budget -= self.drain(budget)
        if self._brk:
            self._brk = False
            self.breaks += 1
            if eng is not None:
                eng.reset(now)
        for _ in range(32):           # bounded: a flood must not starve sampling
            n = port.readinto(self.buf)
            if not n:
                break
            self.rx_bytes += n
            if eng is not None:
                eng.feed(self.mv[:n], now)
        wait = self.idle_ms
        timed = None
        if eng is not None:
            d = eng.poll(now)
            if d is not None:
                timed = d if d > 0 else 0
                if timed < wait:
                    wait = timed
        if self._q and budget > 0:
            self.drain(budget)
        if self._q:
            t = self._tx_wait()
            if t < wait:
                wait = t
            if timed is None or t < timed:
                timed = t
        self.timed_ms = timed
        return self.ticks.ticks_add(now, wait)
