"""A pty "null-modem cable": two pseudo-terminal pairs bridged by a thread.

`os.openpty()` gives a master without a path, and pyserial / the node want a
device path on both ends, so (like `socat pty,raw pty,raw`) we open two pairs
and copy master A <-> master B. One slave path is handed to the node
(`node_path`), the other to whoever talks to it (`host_path`: pyserial,
miniterm, the rbmeter client).

    with PtyBridge() as br:
        spawn_node("--tty", br.node_path)
        ser = serial.Serial(br.host_path, 115200, timeout=1)

Like a UART with nobody listening, bytes are dropped (and counted) once a
direction has more than `max_pending` bytes queued: the bridge never blocks
one direction because the other end is not reading.

monitor=True adds a third pty (`monitor_path`) for a program that shares the
console with a person at `host_path` (the `rbmeter sim --watch` view): its
command lines are injected only while the person's line is idle (no partial
line, nothing typed for `quiet_s`), and the node's reply up to the status
line (`OK...`/`ERR...`/`{"ok"...`) is routed to the monitor instead of the
person's terminal; LIVE lines always go to the person.
"""
import time
import errno
import os
import select
import threading
import tty


class PtyBridge:
    def __init__(self, max_pending=1 << 16, tap=None, monitor=False, quiet_s=3.0, reply_s=3.0,
                 max_age_s=10.0):
        """tap(direction, data): optional observer, direction is "h2n" or "n2h"."""
        self._ma, self._sa = os.openpty()
        self._mb, self._sb = os.openpty()
        self._mc = self._sc = -1
        if monitor:
            self._mc, self._sc = os.openpty()
        # Raw on all slaves: no echo, no CR/LF mangling, byte-transparent.
        for fd in (self._sa, self._sb, self._sc):
            if fd >= 0:
                tty.setraw(fd)
        for fd in (self._ma, self._mb, self._mc):
            if fd >= 0:
                os.set_blocking(fd, False)
        self.host_path = os.ttyname(self._sa)
        self.node_path = os.ttyname(self._sb)
        self.monitor_path = os.ttyname(self._sc) if monitor else None
        self.quiet_s = quiet_s
        self.reply_s = reply_s
        self._user_t = -1e9          # last byte from the person
        self._user_partial = False   # the person has typed part of a line
        self._mon_in = bytearray()   # monitor command bytes not yet injected
        self._mon_t = 0.0            # when the oldest waiting command arrived
        self.max_age_s = max_age_s
        self._mon_active = False     # a monitor command's reply is in flight
        self._mon_deadline = 0.0
        self._mon_line = bytearray() # node output being split into lines while active
        self.max_pending = max_pending
        self.tap = tap
        self.bytes_h2n = self.bytes_n2h = 0
        self.dropped_h2n = self.dropped_n2h = 0
        self._pend = {self._ma: bytearray(), self._mb: bytearray()}   # bytes waiting to be written to fd
        if monitor:
            self._pend[self._mc] = bytearray()
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="ptybridge", daemon=True)
        self._thread.start()

    # -- lifecycle ---------------------------------------------------------
    def close(self):
        if self._stop:
            return
        self._stop = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(2.0)
        for fd in (self._ma, self._sa, self._mb, self._sb, self._mc, self._sc, self._wake_r, self._wake_w):
            if fd < 0:
                continue
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def user_idle_s(self):
        """Seconds since the person at host_path last sent a byte."""
        return time.monotonic() - self._user_t

    @property
    def alive(self):
        return self._thread.is_alive()

    # -- copy loop -----------------------------------------------------------
    def _other(self, fd):
        return self._mb if fd == self._ma else self._ma

    def _queue(self, src, data, dst=None):
        if dst is None:
            dst = self._other(src)
        h2n = dst == self._mb
        if h2n:
            self.bytes_h2n += len(data)
        else:
            self.bytes_n2h += len(data)
        if self.tap is not None:
            try:
                self.tap("h2n" if h2n else "n2h", data)
            except Exception:
                pass
        pend = self._pend[dst]
        room = self.max_pending - len(pend)
        if room < len(data):
            lost = len(data) - max(room, 0)
            if h2n:
                self.dropped_h2n += lost
            else:
                self.dropped_n2h += lost
            data = data[:max(room, 0)]
        pend += data

    # -- console sharing with the monitor port ------------------------------------
    def _from_user(self, data):
        self._user_t = time.monotonic()
        self._user_partial = data[-1:] not in (b"\r", b"\n")
        self._queue(self._ma, data)

    def _from_node(self, data):
        if not self._mon_active:
            self._queue(self._mb, data, self._ma)
            return
        buf = self._mon_line
        buf += data
        while self._mon_active:
            i = buf.find(b"\n")
            if i < 0:
                break
            line = bytes(buf[:i + 1])
            del buf[:i + 1]
            body = line.strip()
            if body.startswith(b"LIVE ") or body.startswith(b'{"t":"live"'):
                self._queue(self._mb, line, self._ma)
                continue
            self._queue(self._mb, line, self._mc)
            if body == b"OK" or body.startswith(b"OK ") or body.startswith(b"ERR ") or body.startswith(b'{"ok"'):
                self._mon_active = False
        if not self._mon_active and buf:
            rest = bytes(buf)
            del buf[:]
            self._queue(self._mb, rest, self._ma)

    def _mon_tick(self):
        now = time.monotonic()
        if self._mon_active:
            if now < self._mon_deadline:
                return
            self._mon_active = False         # no status line (node cut?): give up the reply
            del self._mon_line[:]
        i = self._mon_in.find(b"\n")
        if i < 0:
            return
        if now - self._mon_t > self.max_age_s:
            del self._mon_in[:]              # its sender gave up long ago
            return
        if self._user_partial or now - self._user_t < self.quiet_s:
            return
        line = bytes(self._mon_in[:i + 1])
        del self._mon_in[:i + 1]
        self._mon_t = now                    # the next waiting line ages from here
        if not line.strip():
            return
        self._mon_active = True
        self._mon_deadline = now + self.reply_s
        self._queue(self._mc, line, self._mb)

    def _run(self):
        # Our own slave fds stay open, so reading a master never sees EIO
        # while the node or the user has not (yet / any more) opened its end.
        p = select.poll()
        masters = tuple(fd for fd in (self._ma, self._mb, self._mc) if fd >= 0)
        mon = self._mc >= 0
        p.register(self._wake_r, select.POLLIN)
        while not self._stop:
            if mon:
                self._mon_tick()
            for fd in masters:
                ev = select.POLLIN
                if self._pend[fd]:
                    ev |= select.POLLOUT
                p.register(fd, ev)      # re-register updates the mask
            try:
                events = p.poll(50 if mon else 500)
            except InterruptedError:
                continue
            for fd, ev in events:
                if fd == self._wake_r:
                    continue
                if ev & select.POLLIN:
                    try:
                        data = os.read(fd, 4096)
                    except BlockingIOError:
                        data = b""
                    except OSError as e:
                        if e.errno != errno.EIO:
                            raise
                        data = b""
                    if data:
                        if not mon:
                            self._queue(fd, data)
                        elif fd == self._ma:
                            self._from_user(data)
                        elif fd == self._mb:
                            self._from_node(data)
                        else:
                            if b"\n" not in self._mon_in:
                                self._mon_t = time.monotonic()
                            self._mon_in += data
                if ev & select.POLLOUT and self._pend[fd]:
                    pend = self._pend[fd]
                    try:
                        n = os.write(fd, bytes(pend[:4096]))
                    except BlockingIOError:
                        n = 0
                    except OSError as e:
                        if e.errno != errno.EIO:
                            raise
                        n = 0
                    del pend[:n]
