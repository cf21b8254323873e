"""The node's Bluetooth LE side on the built-in `bluetooth` module (the raw
API: smaller on the heap than aioble, docs/ble.md):

- a Nordic-UART-compatible service carrying the console protocol, one
  proto.Engine (own session and auth state) per connection;
- a binary totals characteristic (read + notify, ble/totals.py);
- the Device Information Service;
- advertising: short name + BTHome v2 service data (ble/bthome.py) in the
  advertisement, complete name in the scan response.

A scheduler component: poll(now) -> next due. The stack's IRQ only records
events and received bytes; everything else runs in poll(), bounded, so BLE
never holds up metering. A failing radio is counted and restarted."""
import bluetooth

from ble import bthome, ccm, totals
from ble.adv import short_name

try:
    from micropython import const
except ImportError:
    def const(__x):
        return __x

_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_MTU_EXCHANGED = const(21)

_F_READ = const(0x0002)
_F_WRITE_NR = const(0x0004)
_F_WRITE = const(0x0008)
_F_NOTIFY = const(0x0010)

NUS = bluetooth.UUID("6E400001-B5A3-F393-E0A9-E50E24DCCA9E")
NUS_RX = bluetooth.UUID("6E400002-B5A3-F393-E0A9-E50E24DCCA9E")
NUS_TX = bluetooth.UUID("6E400003-B5A3-F393-E0A9-E50E24DCCA9E")
# rbmeter totals service / characteristic (own 128-bit base)
TOT_SVC = bluetooth.UUID("7B6D0001-5E1A-4C2B-9A4E-52424D455452")
TOT_CHR = bluetooth.UUID("7B6D0002-5E1A-4C2B-9A4E-52424D455452")
DIS = bluetooth.UUID(0x180A)
_DIS_MODEL = bluetooth.UUID(0x2A24)
_DIS_SERIAL = bluetooth.UUID(0x2A25)
_DIS_FW = bluetooth.UUID(0x2A26)
_DIS_MFR = bluetooth.UUID(0x2A29)

RX_BUF = const(512)        # stack-side RX attribute buffer (append mode)
RX_MAX = const(1024)       # bytes held per connection before poll() feeds them
TX_CAP = const(8192)       # queued reply bytes per connection (the console's reply bound)
POLL_MS = const(10)        # while a connection is up
IDLE_MS = const(100)       # advertising only
CHUNKS = const(8)          # notifications offered per connection per poll
ADV_US = const(200_000)    # advertising interval
STUCK_MS = const(20_000)   # a notification refused this long: the link is dead, drop it
RETRY_MS = const(10_000)   # a failed radio is started again after this, doubling ...
RETRY_MAX_MS = const(600_000)  # ... up to this
MODEL = "rbAmp metering node"
MFR = "rbmeter"


class Conn:
    """One central: its protocol engine and TX queue."""

    def __init__(self, handle):
        self.handle = handle
        self.mtu = 23
        self.rx = bytearray()
        self.q = []              # queued reply bytes objects
        self.qn = 0              # bytes in q
        self.off = 0             # sent part of q[0]
        self.chunk = bytearray(244)
        self.clen = 0            # pending (congested) chunk length
        self.engine = None
        self.dropped = 0
        self.stuck = None        # ticks of the first refused try of the pending chunk

    def write(self, b):
        # the engine's writer: never raises, never blocks
        if self.qn + len(b) > TX_CAP:
            self.dropped += 1
            return
        self.q.append(bytes(b))
        self.qn += len(b)

    def room(self):
        return TX_CAP - self.qn

    def fill(self):
        """Next notification payload into self.chunk (up to MTU - 3)."""
        cap = self.mtu - 3
        if cap > len(self.chunk):
            cap = len(self.chunk)
        n = 0
        q = self.q
        while q and n < cap:
            b = q[0]
            k = len(b) - self.off
            if k > cap - n:
                k = cap - n
            self.chunk[n:n + k] = memoryview(b)[self.off:self.off + k]
            n += k
            self.off += k
            self.qn -= k
            if self.off == len(b):
                q.pop(0)
                self.off = 0
        self.clen = n
        return n


class Ble:
    def __init__(self, node, ticks, cfg, engine_factory, mac_hint=None):
        """cfg: the config's "ble" dict; engine_factory(write, room) -> a
        proto.Engine bound to the node."""
        self.node = node
        self.ticks = ticks
        self.cfg = cfg
        self.make_engine = engine_factory
        self.ble = bluetooth.BLE()   # the port's singleton; restart = active off/on
        self.on = False
        self.conns = {}
        self.errors = 0          # failures of the stack (counted in STATUS)
        self.restarts = 0
        self.refused = 0         # connections over the limit
        self.connects = 0
        self.rx_drop = 0
        self.notify_retry = 0    # congested notifications retried
        self.last_error = ""
        self._retry = 0          # ticks at which a failed radio is started again
        self._backoff = RETRY_MS
        self.mac = b""
        self.addr_type = 0
        self._adv_next = 0
        self._adv_conn = None    # advertising connectable? (None: not advertising)
        self._tot_next = 0
        self._tot = b""
        self._tot_q = None       # frames still to notify ([] = restore the set next)
        self._tot_t = 0
        self._counter = 0        # BTHome encryption counter (per payload)
        self._ecb = None
        self._last_svc = None
        key = cfg.get("bthome_key") or ""
        if key:
            self._ecb = ccm.aes_ecb(bytes.fromhex(key))
        self.name = cfg.get("name") or ("rbmeter-" + node.node_id())
        try:
            self.start()
        except Exception as e:       # no controller yet: retried from poll()
            self._failed(ticks.ticks_ms(), e)

    # ---- radio life cycle ----------------------------------------------------
    def start(self):
        b = self.ble
        b.active(True)
        self.on = True
        try:
            b.config(gap_name=self.name)
        except (OSError, ValueError):
            b.config(gap_name=self.name[:20])
        b.config(mtu=self.cfg.get("mtu", 247))
        self.addr_type, mac = b.config("mac")
        self.mac = bytes(mac)
        b.irq(self._irq)
        nus = (NUS, ((NUS_TX, _F_NOTIFY), (NUS_RX, _F_WRITE | _F_WRITE_NR)))
        tot = (TOT_SVC, ((TOT_CHR, _F_READ | _F_NOTIFY),))
        dis = (DIS, ((_DIS_MODEL, _F_READ), (_DIS_SERIAL, _F_READ), (_DIS_FW, _F_READ),
                     (_DIS_MFR, _F_READ)))
        ((self.h_tx, self.h_rx), (self.h_tot,), (hm, hs, hf, hmf)) = b.gatts_register_services((nus, tot, dis))
        b.gatts_set_buffer(self.h_rx, RX_BUF, True)
        b.gatts_set_buffer(self.h_tot, totals.SIZE * 24)
        from node import VERSION
        b.gatts_write(hm, MODEL.encode())
        b.gatts_write(hs, self.node.node_id().encode())
        b.gatts_write(hf, VERSION.encode())
        b.gatts_write(hmf, MFR.encode())
        self.conns = {}
        self._adv_conn = None
        self._adv_next = 0
        self._tot_next = 0
        self._scan_resp = True      # set once per start (refreshing it fails, docs/ble.md)

    def stop(self):
        self.on = False
        for c in self.conns.values():
            self._end(c)
        self.conns = {}
        try:
            self.ble.active(False)
        except Exception:
            pass

    def _failed(self, now, e):
        """A stack call failed (on the unix H4 port a dead controller makes
        each HCI command time out after ~6 s): count it, switch the radio
        off and start it again after a growing back-off. Metering goes on."""
        self.errors += 1
        self.last_error = ("%s: %s" % (type(e).__name__, e))[:40]
        self.stop()
        self._retry = self.ticks.ticks_add(now, self._backoff)
        self._backoff = min(self._backoff * 2, RETRY_MAX_MS)

    # ---- IRQ: connection bookkeeping and received bytes only ------------------
    def _irq(self, event, data):
        if event == _IRQ_GATTS_WRITE:
            ch, attr = data
            c = self.conns.get(ch)
            if attr == self.h_rx and c is not None:
                v = self.ble.gatts_read(attr)
                if len(c.rx) + len(v) > RX_MAX:
                    self.rx_drop += 1          # flood beyond what poll() takes: counted
                else:
                    c.rx += v
        elif event == _IRQ_CENTRAL_CONNECT:
            # here, not in poll(): a write may follow before the next poll,
            # and the stack reuses the handle of a closed connection
            self._connect(data[0], self.ticks.ticks_ms())
        elif event == _IRQ_CENTRAL_DISCONNECT:
            c = self.conns.pop(data[0], None)
            if c is not None:
                self._end(c)
            self._adv_conn = None           # room again: connectable advertising
        elif event == _IRQ_MTU_EXCHANGED:
            c = self.conns.get(data[0])
            if c is not None:
                c.mtu = data[1]

    # ---- the component ---------------------------------------------------------
    def poll(self, now):
        if not self.on:
            if self.ticks.ticks_diff(now, self._retry) < 0:
                return self._retry
            self.restarts += 1
            try:
                self.start()
            except Exception as e:
                self._failed(now, e)
                return self._retry
        try:
            return self._poll(now)
        except Exception as e:
            self._failed(now, e)
            return self._retry

    def _poll(self, now):
        wait = IDLE_MS
        for c in list(self.conns.values()):
            d = self._serve(c, now)
            if d < wait:
                wait = d
        if self._tot_q is not None:
            self._tot_step(now)
        elif self.ticks.ticks_diff(self._tot_next, now) <= 0:
            self._totals(now)
        if self.ticks.ticks_diff(self._adv_next, now) <= 0 or self._adv_conn is None:
            self._advertise(now)
        if self.conns and wait > POLL_MS:
            wait = POLL_MS
        return self.ticks.ticks_add(now, wait)

    def _connect(self, h, now):
        self.connects += 1
        if len(self.conns) >= self.cfg.get("max_conn", 2):
            self.refused += 1
            try:
                self.ble.gap_disconnect(h)
            except OSError:
                pass
            return
        c = Conn(h)
        c.engine = self.make_engine(c.write, c.room)
        c.engine.reset(now)
        self.conns[h] = c
        self._adv_conn = None       # the stack stopped advertising: start again

    def _end(self, c, now=None):
        # the session ends with the connection; queued replies go with it
        try:
            c.engine.reset(self.ticks.ticks_ms() if now is None else now)
        except Exception:
            pass
        c.q = []
        c.qn = 0

    def _serve(self, c, now):
        """Feed received bytes, run timed output, send notifications."""
        eng = c.engine
        if c.rx:
            data = c.rx             # swap first: the IRQ may append meanwhile
            c.rx = bytearray()
            eng.feed(data, now)
        d = eng.poll(now)
        wait = IDLE_MS if d is None else d
        b = self.ble
        for _ in range(CHUNKS):
            if not c.clen and not c.fill():
                break
            try:
                # (the stubs lack gatts_notify's conn_handle argument)
                b.gatts_notify(c.handle, self.h_tx, memoryview(c.chunk)[:c.clen])  # type: ignore
            except OSError:
                # congested (no buffers) or the link is going: retried at the
                # next poll; dropped when the disconnect arrives
                self.notify_retry += 1
                if c.stuck is None:
                    c.stuck = now
                elif self.ticks.ticks_diff(now, c.stuck) > STUCK_MS:
                    self._stuck(c)
                return 2
            c.clen = 0
            c.stuck = None
        if c.q or c.clen:
            return 0
        return wait if wait > 0 else 0

    def _stuck(self, c):
        """No notification got through for STUCK_MS: an error; end the link
        (a failing disconnect raises, and the scheduler restarts the radio)."""
        self.errors += 1
        self.conns.pop(c.handle, None)
        self._end(c)
        self._adv_conn = None
        self.ble.gap_disconnect(c.handle)

    # ---- totals characteristic -------------------------------------------------
    def _totals(self, now):
        period = self.cfg.get("totals_ms", 1000)
        self._tot_next = self.ticks.ticks_add(now, period)
        try:
            chans = self.node.channels()
        except Exception:
            return
        data = totals.pack(chans[:24])
        self._tot = data
        if self.conns:
            # subscribers get one 20-byte frame per notification (fits MTU 23);
            # _tot_step() sends them one per poll, then restores the set
            self._tot_q = [data[i:i + totals.SIZE] for i in range(0, len(data), totals.SIZE)]
        else:
            self.ble.gatts_write(self.h_tot, data)

    def _tot_step(self, now):
        """The stack sends a notification after poll() returns, reading the
        value then: so one frame per poll, POLL_MS apart, and the whole set
        (what a read returns) is restored after the last one went out."""
        if self.ticks.ticks_diff(now, self._tot_t) < POLL_MS:
            return
        self._tot_t = now
        q = self._tot_q
        if q:
            self.ble.gatts_write(self.h_tot, q.pop(0), True)   # [] after the last: restore next
        else:
            self.ble.gatts_write(self.h_tot, self._tot)
            self._tot_q = None

    # ---- advertising -----------------------------------------------------------
    def bthome_channel(self, chans):
        want_m = self.cfg.get("bthome_module", 0)
        want_c = self.cfg.get("bthome_ch", 0)
        mods = []
        for c in chans:
            if c.get("module") not in mods:
                mods.append(c.get("module"))
        if want_m >= len(mods):
            return None
        for c in chans:
            if c.get("module") == mods[want_m] and c.get("ch") == want_c:
                return c
        return None

    def adv_payload(self, chans):
        adv = bytearray(b"\x02\x01\x06")
        if self.cfg.get("bthome", True):
            c = self.bthome_channel(chans)
            if c is not None:
                objs = bthome.objects(c.get("import_mwh", 0), c.get("export_mwh", 0), c.get("p_mw"))
                if self._ecb is not None:
                    if objs != self._last_svc:
                        self._counter += 1      # a new nonce for every new payload
                        self._last_svc = objs
                    svc = bthome.service_data(objs, self._ecb, self.mac, self._counter)
                else:
                    svc = bthome.service_data(objs)
                adv += bthome.ad(svc)
        room = 31 - len(adv) - 2
        if room > 0:
            sn = short_name(self.name, self.node.node_id(), room)
            adv += bytes((len(sn) + 1, 0x08)) + sn
        return bytes(adv)

    def _advertise(self, now):
        self._adv_next = self.ticks.ticks_add(now, self.cfg.get("bthome_s", 5) * 1000)
        try:
            chans = self.node.channels()
        except Exception:
            chans = []
        adv = self.adv_payload(chans)
        conn = len(self.conns) < self.cfg.get("max_conn", 2)
        resp = None
        if self._scan_resp:
            nm = self.name.encode()[:29]
            resp = bytes((len(nm) + 1, 0x09)) + nm
        self._adv_conn = conn            # a failure raises: _failed() restarts the radio
        self.ble.gap_advertise(ADV_US, adv, resp_data=resp, connectable=conn)
        self._scan_resp = False
        self._backoff = RETRY_MS         # the radio works

    def status(self):
        n = 0
        for c in self.conns.values():
            n += c.dropped
        return {"ble_radio": "on" if self.on else "off", "ble_conns": len(self.conns),
                "ble_errors": self.errors, "ble_last_error": self.last_error, "ble_restarts": self.restarts, "ble_refused": self.refused, "ble_rx_drop": self.rx_drop,
                "ble_tx_drop": n, "ble_notify_retry": self.notify_retry}

