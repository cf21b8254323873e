"""`rbmeter bridge`: nodes -> MQTT broker -> Home Assistant (docs/bridge.md).

One worker thread per node reads it through a *node source*: any object with
the read API of rbmeter.client.Client -- `info()`, `channels()`, `status()`,
`close()` and optionally `sync()` (a fresh protocol session). Serial ports
give a Client; a BLE transport only has to give the same methods
(NodeConf.open).

Each node gets its own MQTT connection (client id `rbmeter-bridge-<node_id>`)
whose last will sets `rbmeter/<node_id>/availability` to `offline`. Every
message goes through the node's Outbox (bridge_store): appended to disk, handed
to paho at QoS 1 with at most one unacknowledged message per topic, removed
when acknowledged. Totals pass the Guard (bridge_store) first: a published
total never decreases for a unique id.
"""
import json
import os
import signal
import socket
import sys
import threading
import time

from rbmeter import __version__
from rbmeter import client as _client
from rbmeter.bridge_config import (BridgeError, NodeConf, Settings, load_config,  # noqa: F401 (API)
                                   settings_from_args)
from rbmeter.bridge_mqtt import WINDOW, Link, node_topic
from rbmeter.bridge_store import NEW, Guard, Outbox, fmt_kwh, safe_name

OFFLINE_AFTER = 3           # failed polls in a row before the node is shown offline

# (key, entity name, device_class, state_class, unit, JSON field, display precision)
SENSORS = (
    ("import", "import", "energy", "total_increasing", "kWh", "import_kwh", 3),
    ("export", "export", "energy", "total_increasing", "kWh", "export_kwh", 3),
    ("net", "net", "energy", "total", "kWh", "net_kwh", 3),
    ("power", "power", "power", "measurement", "W", "power_w", 1),
)


# -- topics and payloads ----------------------------------------------------------------

def state_topic(node_id, module, ch):
    return "rbmeter/%s/%s/%s/state" % (node_id, module, ch)


def meter_base(node_id, uid, module, ch):
    """Stable unique id base of one channel: node id, module UID (the address
    when the node does not report a UID), channel."""
    ident = uid if uid else "a" + module.replace("0x", "")
    return "rbmeter_%s_%s_%s" % (safe_name(node_id), ident, ch)


def device_block(info, conf):
    node = info["node"]
    nid = str(node.get("id"))
    mods = ", ".join("%s %s" % (m.get("addr"), m.get("variant")) for m in info["modules"])
    dev = {"identifiers": ["rbmeter_" + nid], "name": conf.name or "rbmeter %s" % nid,
           "manufacturer": "rbAmp", "model": "rbmeter node (%s)" % (mods or "no modules"),
           "sw_version": str(node.get("fw")), "serial_number": nid}
    if conf.area:
        dev["suggested_area"] = conf.area
    return dev


def discovery_configs(prefix, node_id, device, module, ch, unique_base):
    """[(topic, payload dict)] for the four sensors of one channel."""
    out = []
    for key, name, dclass, sclass, unit, field, prec in SENSORS:
        uid = "%s_%s" % (unique_base, key)
        cfg = {
            "name": "%s ch%s %s" % (module, ch, name),
            "unique_id": uid,
            "state_topic": state_topic(node_id, module, ch),
            "value_template": "{{ value_json.%s }}" % field,
            "device_class": dclass,
            "state_class": sclass,
            "unit_of_measurement": unit,
            "suggested_display_precision": prec,
            "availability_topic": node_topic(node_id, "availability"),
            "payload_available": "online",
            "payload_not_available": "offline",
            "json_attributes_topic": state_topic(node_id, module, ch) if key == "import" else None,
            "device": device,
            "origin": {"name": "rbmeter bridge", "sw_version": __version__},
        }
        if cfg["json_attributes_topic"] is None:
            del cfg["json_attributes_topic"]
        out.append(("%s/sensor/%s/config" % (prefix, uid), cfg))
    return out


def _num(text):
    if text is None:
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def state_payload(ch, imp, exp, held):
    """The retained channel state. kWh are the node's exact strings (the held
    value's exact string while the guard holds)."""
    if held:
        si, se, sn = fmt_kwh(imp), fmt_kwh(exp), fmt_kwh(imp - exp)
    else:
        si = ch.get("import_kwh") or fmt_kwh(imp)
        se = ch.get("export_kwh") or fmt_kwh(exp)
        sn = ch.get("net_kwh") or fmt_kwh(imp - exp)
    p = ch.get("p_mw")
    power = p / 1000.0 if isinstance(p, int) else _num(ch.get("p_w"))
    gap = ch.get("gap_ms")
    gap_s = gap / 1000.0 if isinstance(gap, int) else (_num(ch.get("gap_s")) or 0.0)
    now = time.time()
    stamp = "%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)), int(now * 1000) % 1000)
    return {"import_kwh": si, "export_kwh": se, "net_kwh": sn, "power_w": power, "gap_s": gap_s,
            "held": bool(held), "time": stamp}


# -- one node ---------------------------------------------------------------------------

class Worker(threading.Thread):
    def __init__(self, bridge, conf):
        threading.Thread.__init__(self, name="node " + conf.where, daemon=True)
        self.b = bridge
        self.s = bridge.s
        self.conf = conf
        self.src = None
        self.info = None
        self.node_id = None
        self.link = None
        self.box = None
        self.guard = None
        self.uids = {}              # module addr -> uid hex
        self.known = set()          # (module addr, ch) announced from INFO
        self.handed = {}            # mid -> Entry
        self.busy = set()           # topics with an unacknowledged message
        self.online = None          # last published availability (True/False)
        self.fails = 0
        self.need_sync = False
        self.need_info = True
        self.state = "starting"
        self.error = None
        self.t_status = 0.0
        self.t_info = 0.0
        self.crc_seen = 0
        self.loss_mwh = 0
        self.rebooted = False
        self._connects_seen = 0
        self._announced = None
        self._device = None
        # counters (status topic, progress line)
        self.polls = 0
        self.errors = 0
        self.malformed = 0
        self.held = 0
        self.new_meters = 0
        self.published = 0

    # -- node side --------------------------------------------------------------
    def _open(self):
        try:
            self.src = self.conf.open()
        except Exception as e:          # serial.SerialException, OSError, BLE errors
            self.src = None
            msg = getattr(e, "strerror", None) or str(e)
            raise OSError("cannot open %s: %s" % (self.conf.where, msg))
        self.need_sync = False
        self.need_info = True

    def _close_src(self):
        if self.src is not None:
            try:
                self.src.close()
            except Exception:
                pass
        self.src = None

    def _count_malformed(self):
        n = getattr(self.src, "crc_errors", 0) or 0
        if n > self.crc_seen:
            self.malformed += n - self.crc_seen
        self.crc_seen = n

    def _read_info(self):
        inf = self.src.info()
        nid = inf.get("node", {}).get("id")
        if not nid:
            raise _client.ClientError("INFO without a node id")
        nid = str(nid)
        if self.node_id is not None and nid != self.node_id:
            self.b.log("%s: node id changed %s -> %s (another board on this port)" % (self.conf.where, self.node_id, nid))
            self._detach()
        self.info = inf
        self.uids = {m.get("addr"): (m.get("uid") or "") for m in inf.get("modules", [])}
        # channels INFO knows of: a module listed but not yet identified has none
        self.known = {(m.get("addr"), ch) for m in inf.get("modules", [])
                      for ch in range(int(m.get("channels") or 0))}
        if self.node_id is None:
            self._attach(nid)
        self._uptime(inf["node"].get("uptime_s"))
        self.need_info = False
        self.t_info = time.monotonic()
        self._announce()

    def _uptime(self, up):
        """A fresh uptime from INFO/STATUS: smaller than the last one, or than
        the time since then, means the node rebooted in between (kept until
        the next complete poll; the baseline is on disk for a bridge restart)."""
        if not isinstance(up, int) or self.guard is None:
            return
        base = self.guard.node
        if base:
            elapsed = time.time() - base.get("wall", 0)
            # slack: 2 s of rounding plus 0.1 % for a node crystal that runs slow
            if up < base.get("uptime_s", 0) or up + 2 + elapsed / 1000 < base.get("uptime_s", 0) + elapsed:
                self.rebooted = True
        self.guard.node = {"uptime_s": up, "wall": time.time()}
        self.guard.dirty = True

    def _attach(self, nid):
        """First contact with node `nid`: its guard, outbox and broker link."""
        if not self.b.claim(nid, self):
            raise OSError("node id %s is already bridged from another port" % nid)
        os.makedirs(self.s.state_dir, exist_ok=True)
        base = os.path.join(self.s.state_dir, safe_name(nid))
        self.guard = Guard(base + ".guard.json", log=lambda m: self.b.log("%s: %s" % (nid, m)))
        self.box = Outbox(base + ".queue.jsonl", self.s.queue_max)
        self.node_id = nid
        self.link = Link(self.s, nid, self.b.log)

    def _detach(self):
        if self.link is not None:
            self._set_online(False)
            self.link.close()
        if self.box is not None:
            self.box.close()
        if self.guard is not None:
            self.guard.save()
        self.b.release(self.node_id, self)
        self.link = self.box = self.guard = None
        self.node_id = None
        self.handed = {}
        self.busy = set()
        self.online = None
        self._announced = None

    def _announce(self, force=False):
        """Discovery configs of every channel (module replacements retire the
        old meter first); again only when the node's modules changed or Home
        Assistant restarted (force)."""
        dev = device_block(self.info, self.conf)
        sig = json.dumps([dev, sorted(self.uids.items())], sort_keys=True)
        if sig == self._announced and not force:
            return
        self._announced = sig
        self._device = dev
        for m in self.info.get("modules", []):
            addr = m.get("addr")
            for ch in range(int(m.get("channels") or 0)):
                base = meter_base(self.node_id, self.uids.get(addr), addr, ch)
                old = self.guard.slot("%s/%s" % (addr, ch), base)
                if old:
                    self._retire(old)
                self._discover(addr, ch, self.guard.current(base))

    def _discover(self, module, ch, ubase):
        for topic, cfg in discovery_configs(self.s.prefix, self.node_id, self._device, module, ch, ubase):
            self.box.put(topic, json.dumps(cfg, sort_keys=True))

    def _retire(self, ubase):
        """Home Assistant drops the retired meter's entities (empty retained
        configs); their recorded statistics stay in its database."""
        for key, *_ in SENSORS:
            self.box.put("%s/sensor/%s_%s/config" % (self.s.prefix, ubase, key), "")
        self.new_meters += 1

    def _rebooted(self):
        """Did the node restart since the bridge last knew its uptime? (asked
        when its totals fell; a fresh STATUS unless INFO already told)"""
        if not self.rebooted:
            try:
                st = self.src.status()
            except (_client.ClientError, _client.NodeError):
                return False
            self.loss_mwh = max(st.get("loss_bound_mwh") or 0, self.loss_mwh or 0)
            self._uptime(st.get("uptime_s"))
        return self.rebooted

    def _poll(self):
        if self.src is None:
            self._open()
        if self.need_sync:
            sync = getattr(self.src, "sync", None)
            if sync:
                sync()
            self.need_sync = False
        if self.need_info or time.monotonic() - self.t_info >= self.s.info_every:
            self._read_info()
        chans = self.src.channels()
        self.polls += 1
        if any((c.get("module"), c.get("ch")) not in self.known for c in chans):
            self._read_info()          # a module identified since (late boot, rescan)
        reboot = []

        def fallback(drop):
            """A fall of the node's totals: held only after a reboot and within
            3x its stated loss bound (read after the reboot), else a new meter."""
            if not reboot:
                reboot.append(self._rebooted())
            tol = max(int(self.s.hold_min_kwh * 1000000), 3 * int(self.loss_mwh or 0))
            return reboot[0] and drop <= tol
        for c in chans:
            mod, ch = c.get("module"), c.get("ch")
            imp, exp = c.get("import_mwh"), c.get("export_mwh")
            if not isinstance(imp, int) or not isinstance(exp, int) or imp < 0 or exp < 0:
                self.malformed += 1
                continue
            base = meter_base(self.node_id, self.uids.get(mod), mod, ch)
            act, pi, pe, retired = self.guard.step(base, imp, exp, fallback)
            if act == NEW:
                self._retire(retired)
                self._discover(mod, ch, self.guard.current(base))
            elif act == "hold":
                self.held += 1
            self.box.put(state_topic(self.node_id, mod, ch),
                         json.dumps(state_payload(c, pi, pe, act == "hold")))
        self.rebooted = False
        self.guard.save()              # before anything is handed to the broker
        self.box.flush()
        self.fails = 0
        self.state = "ok"
        self.error = None
        self._set_online(True)
        if time.monotonic() - self.t_status >= self.s.status_every:
            self._publish_status()

    def _publish_status(self):
        self.t_status = time.monotonic()
        try:
            st = self.src.status()
        except (_client.ClientError, _client.NodeError) as e:
            st = {"error": str(e)}
        self.loss_mwh = st.get("loss_bound_mwh") or self.loss_mwh
        self._uptime(st.get("uptime_s"))
        st["bridge"] = self.counters()
        st["port"] = self.conf.where
        self.box.put(node_topic(self.node_id, "status"), json.dumps(st, sort_keys=True))

    def counters(self):
        return {"polls": self.polls, "errors": self.errors, "malformed": self.malformed, "held": self.held,
                "new_meters": self.new_meters, "published": self.published,
                "queued": len(self.box) if self.box else 0, "dropped": self.box.dropped if self.box else 0}

    def _set_online(self, on):
        if self.link is None or self.online == on:
            return
        self.online = on
        self.box.put(self.link.avail_topic, "online" if on else "offline")

    # -- broker side ------------------------------------------------------------
    def _pump(self):
        link = self.link
        if link is None:
            return
        while link.acks:
            e = self.handed.pop(link.acks.popleft(), None)
            if e is not None:
                self.busy.discard(e.topic)
                self.box.acked(e)
                self.published += 1
        if link.ha_birth:
            link.ha_birth = False
            if self.info is not None:
                self._announce(force=True)
        if not link.connected:
            return
        if link.connects != self._connects_seen:
            # fresh session: the will may have said offline; say where we are now
            self._connects_seen = link.connects
            link.publish(link.avail_topic, "online" if self.online else "offline")
        while len(self.handed) < WINDOW:
            e = self.box.take(self.busy)
            if e is None:
                break
            info = link.publish(e.topic, e.payload, e.retain)
            e.mid = info.mid
            self.handed[info.mid] = e
            self.busy.add(e.topic)

    # -- thread -----------------------------------------------------------------
    def run(self):
        backoff = self.s.interval
        nxt = time.monotonic()
        while not self.b.stopping.is_set():
            now = time.monotonic()
            if now >= nxt:
                try:
                    self._poll()
                    backoff = self.s.interval
                except (_client.ClientError, _client.NodeError) as e:
                    self._failed("no valid reply: %s" % e)
                    self.need_sync = True      # a new session (the node may have rebooted) ...
                    self.need_info = True      # ... and its modules again (one may be replaced)
                except OSError as e:       # port gone (USB unplugged), cannot open
                    self._failed(str(e))
                    self._close_src()
                    backoff = min(max(backoff * 2, 1.0), 30.0)
                    nxt = time.monotonic() + backoff - self.s.interval
                except Exception as e:     # a bug must not end this node's bridging silently
                    import traceback
                    self.b.log("%s: internal error, continuing: %s" % (self.conf.where, traceback.format_exc(limit=3)))
                    self._failed("internal error: %r" % (e,))
                    self.need_sync = self.need_info = True
                if self.src is not None:
                    self._count_malformed()
                nxt += self.s.interval
                if nxt < time.monotonic():
                    nxt = time.monotonic() + self.s.interval   # late: skip, do not burst
            if self.link is not None:
                if self.link.fatal:
                    self.b.fail(self.link.fatal)
                    break
                self._pump()
                self.link.wake.clear()
                self._pump()           # an ack that raced the clear
                self.link.wake.wait(max(0.0, min(nxt - time.monotonic(), 1.0)))
            else:
                self.b.stopping.wait(max(0.0, min(nxt - time.monotonic(), 1.0)))
        self._shutdown()

    def _failed(self, msg):
        self.errors += 1
        self.fails += 1
        if msg != self.error:
            self.b.log("%s: %s" % (self.node_id or self.conf.where, msg))
        self.error = msg
        self.state = "error"
        if self.fails >= OFFLINE_AFTER:
            self._set_online(False)

    def _shutdown(self):
        if self.link is not None:
            end = time.monotonic() + 2.0
            while (self.box.waiting() or self.handed) and self.link.connected and time.monotonic() < end:
                self._pump()
                self.link.wake.wait(0.05)
                self.link.wake.clear()
            self._pump()
            self.link.close(offline=True)
        if self.box is not None:
            self.box.close()
        if self.guard is not None:
            self.guard.save()
        self._close_src()


# -- the bridge -------------------------------------------------------------------------

class Bridge:
    def __init__(self, settings, log=None, out=None):
        self.s = settings
        self.out = out or sys.stderr
        self._log = log
        self.stopping = threading.Event()
        self.fatal = None
        self._lock = threading.Lock()
        self._ids = {}
        self.workers = [Worker(self, n) for n in settings.nodes]

    def log(self, msg):
        if self._log:
            self._log(msg)
        else:
            self.out.write("\r\x1b[K" if self._tty() else "")
            self.out.write("%s rbmeter bridge: %s\n" % (time.strftime("%H:%M:%S"), msg))
            self.out.flush()

    def _tty(self):
        try:
            return self.out.isatty()
        except (AttributeError, ValueError):
            return False

    def claim(self, nid, w):
        with self._lock:
            if self._ids.get(nid, w) is not w:
                return False
            self._ids[nid] = w
            return True

    def release(self, nid, w):
        with self._lock:
            if self._ids.get(nid) is w:
                del self._ids[nid]

    def fail(self, msg):
        self.fatal = msg
        self.stopping.set()

    def check_broker(self):
        """A clear first message when the broker is not reachable or its TLS
        certificate is not trusted (the bridge keeps running, queueing on disk,
        and reconnects with backoff)."""
        try:
            sock = socket.create_connection((self.s.host, self.s.mqtt_port), timeout=3)
            if self.s.tls:
                import ssl
                ctx = ssl.create_default_context(cafile=self.s.cafile)
                try:
                    sock = ctx.wrap_socket(sock, server_hostname=self.s.host)
                except ssl.SSLError as e:
                    sock.close()
                    self.log("TLS with MQTT broker %s:%d failed: %s (--cafile?); the bridge keeps retrying"
                             % (self.s.host, self.s.mqtt_port, getattr(e, "verify_message", None) or e))
                    return False
            sock.close()
            return True
        except OSError as e:
            self.log("cannot reach MQTT broker %s:%d: %s; readings are queued on disk (%s) and the bridge "
                     "keeps retrying with backoff" % (self.s.host, self.s.mqtt_port, e.strerror or e, self.s.state_dir))
            return False

    def status_line(self):
        ws = self.workers
        ok = sum(1 for w in ws if w.state == "ok")
        links = [w.link for w in ws if w.link is not None]
        conn = sum(1 for l in links if l.connected)
        q = sum(len(w.box) for w in ws if w.box is not None)
        errs = sum(w.errors for w in ws)
        bad = sum(w.malformed for w in ws)
        pub = sum(w.published for w in ws)
        held = sum(w.held for w in ws)
        broker = "broker %s:%d %s" % (self.s.host, self.s.mqtt_port,
                                      "connected" if links and conn == len(links) else
                                      ("%d/%d connected" % (conn, len(links)) if links else "-"))
        line = "nodes %d/%d ok, %s, published %d, queued %d, held %d, errors %d, malformed %d" % (
            ok, len(ws), broker, pub, q, held, errs, bad)
        waiting = [w for w in ws if w.state != "ok" and w.error]
        if waiting:
            line += "; %s: %s" % (waiting[0].conf.where, waiting[0].error)
        return line

    def run(self):
        for w in self.workers:
            w.start()
        t0 = time.monotonic()
        tty = self._tty()
        every = self.s.progress if self.s.progress is not None else (1.0 if tty else 30.0)
        t_prog = 0.0
        last = None
        try:
            while not self.stopping.is_set():
                if self.s.duration is not None and time.monotonic() - t0 >= self.s.duration:
                    break
                if all(not w.is_alive() for w in self.workers):
                    break
                now = time.monotonic()
                if every and now - t_prog >= every:
                    t_prog = now
                    line = self.status_line()
                    if tty:
                        self.out.write("\r\x1b[K" + line)
                        self.out.flush()
                    elif line != last:
                        self.out.write("%s rbmeter bridge: %s\n" % (time.strftime("%H:%M:%S"), line))
                        self.out.flush()
                    last = line
                self.stopping.wait(0.2)
        except KeyboardInterrupt:
            pass                        # Ctrl-C / SIGTERM: a clean stop (offline, queue kept)
        finally:
            self.stopping.set()
            for w in self.workers:
                w.join(10)
            if tty:
                self.out.write("\n")
            self.out.write("rbmeter bridge: stopped; %s\n" % self.status_line())
            self.out.flush()
        return self.fatal


def run(settings):
    """`rbmeter bridge` after option parsing: 0 ok (also after Ctrl-C/SIGTERM),
    2 configuration error."""
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        raise BridgeError("paho-mqtt is not installed (pip install -r tools/requirements-dev.txt)")
    b = Bridge(settings)

    def stop(signum, frame):
        b.stopping.set()               # a clean stop (offline, queue kept), not an exception
    old = [(sig, signal.signal(sig, stop)) for sig in (signal.SIGTERM, signal.SIGINT)]
    try:
        return _run(b, settings)
    finally:
        for sig, h in old:
            signal.signal(sig, h)


def _run(b, settings):
    b.check_broker()
    # unreachable ports: say so now (the workers keep retrying them)
    bad = []
    for n in settings.nodes:
        if n._open is None and not os.path.exists(n.where):
            bad.append(n.where)
            b.log("cannot open %s: no such device (will retry)" % n.where)
    if bad and len(bad) == len(settings.nodes):
        raise BridgeError("none of the ports exists: %s" % ", ".join(bad))
    fatal = b.run()
    if fatal:
        raise BridgeError(fatal)
    return 0
