"""On-disk state of `rbmeter bridge` (docs/bridge.md): the monotonic guard
and the bounded outbox, one pair of files per node in the state directory.

Pure bookkeeping, no MQTT and no serial I/O, so both are unit-testable.

Guard: the last published import/export (exact mWh) per meter, keyed by the
stable unique id base (node id, module UID, channel) and a generation. A
total lower than the last published one is never published: after a node
reboot a small fall-back (the node's power-cut loss) is held until the node
passes the held value again; any other fall (a preset or reset to a lower
value, without a reboot or larger than the loss bound) starts a new meter
(next generation, new unique ids) and retires the old one.

Outbox: every message goes through a FIFO that is appended to a JSON-lines
file before it is handed to the MQTT client, and leaves it when the broker
acknowledged it (QoS 1). A bridge restart resends what was not acknowledged,
collapsed to the newest message per topic, so a subscriber never sees an
older retained state after a newer one.
"""
import json
import os
import time


def fmt_kwh(mwh):
    """Exact signed kWh string with 6 decimals, the node's format."""
    mwh = int(mwh)
    sign = "-" if mwh < 0 else ""
    k, m = divmod(abs(mwh), 1000000)
    return "%s%d.%06d" % (sign, k, m)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def safe_name(node_id):
    """A node id as a file-name part (ids are short printable tokens)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in node_id) or "_"


# -- monotonic guard --------------------------------------------------------------------

PUBLISH = "publish"
HOLD = "hold"
NEW = "new"


class Guard:
    """Per node. meters[base] = {"gen", "imp", "exp" (published), "ri", "re"
    (last read from the node), "hold" (bool)}; slots["0x50/0"] = current base
    of that module channel (to notice a replaced module); retired = list of
    retired unique-id bases; node = {"uptime_s", "wall"} (reboot detection)."""

    def __init__(self, path, log=None):
        self.path = path
        self.log = log or (lambda msg: None)
        self.meters = {}
        self.slots = {}
        self.retired = []
        self.node = {}
        self.dirty = False
        if path and os.path.exists(path):
            try:
                with open(path, "r", encoding="utf-8") as f:
                    d = json.load(f)
                self.meters = d.get("meters", {})
                self.slots = d.get("slots", {})
                self.retired = d.get("retired", [])
                self.node = d.get("node", {})
            except (OSError, ValueError) as e:
                # never silently forget the guard: keep the broken file for a person
                os.replace(path, path + ".broken")
                self.log("guard file %s unreadable (%s), kept as .broken; starting empty" % (path, e))

    def save(self):
        if self.path and self.dirty:
            write_atomic(self.path, json.dumps({"meters": self.meters, "slots": self.slots,
                                                "retired": self.retired, "node": self.node},
                                               sort_keys=True, indent=1))
            self.dirty = False

    @staticmethod
    def unique_base(base, gen):
        return base if not gen else "%s_g%d" % (base, gen)

    def current(self, base):
        m = self.meters.get(base)
        return self.unique_base(base, m["gen"] if m else 0)

    def slot(self, slot, base):
        """Records that module channel `slot` now has meter `base`; returns the
        unique base of a meter it replaces (module replaced), else None."""
        old = self.slots.get(slot)
        if old == base:
            return None
        self.slots[slot] = base
        self.dirty = True
        if old is None:
            return None
        ub = self.current(old)
        self._retire(ub, "module replaced (%s)" % slot)
        return ub

    def _retire(self, ub, why):
        self.retired.append({"unique_id": ub, "reason": why, "time": int(time.time())})
        del self.retired[:-64]
        self.log("meter %s retired: %s" % (ub, why))

    def step(self, base, imp, exp, fallback):
        """One reading (exact mWh). fallback(drop_mwh) -> bool is asked only
        when the node's own totals fell: True when the node rebooted and the
        fall is within its power-cut loss bound. Returns (action, pub_imp,
        pub_exp, retired unique base or None)."""
        m = self.meters.get(base)
        self.dirty = True
        if m is None:
            self.meters[base] = {"gen": 0, "imp": imp, "exp": exp, "ri": imp, "re": exp, "hold": False}
            return PUBLISH, imp, exp, None
        fell = imp < m["ri"] or exp < m["re"]
        m["ri"], m["re"] = imp, exp
        if fell:
            drop = max(m["imp"] - imp, m["exp"] - exp)
            if fallback(drop):
                if not m["hold"]:
                    self.log("%s: node fell back %d mWh after a reboot; holding %s/%s kWh until it passes"
                             % (self.current(base), drop, fmt_kwh(m["imp"]), fmt_kwh(m["exp"])))
                m["hold"] = True
            else:
                old = self.unique_base(base, m["gen"])
                self._retire(old, "totals fell from %s/%s to %s/%s kWh (preset/reset)"
                             % (fmt_kwh(m["imp"]), fmt_kwh(m["exp"]), fmt_kwh(imp), fmt_kwh(exp)))
                m.update(gen=m["gen"] + 1, imp=imp, exp=exp, hold=False)
                return NEW, imp, exp, old
        if m["hold"]:
            if imp >= m["imp"] and exp >= m["exp"]:
                m["hold"] = False
                self.log("%s: node passed the held totals again" % self.current(base))
            else:
                m["imp"] = max(m["imp"], imp)
                m["exp"] = max(m["exp"], exp)
                return HOLD, m["imp"], m["exp"], None
        m["imp"] = max(m["imp"], imp)
        m["exp"] = max(m["exp"], exp)
        return PUBLISH, m["imp"], m["exp"], None


# -- bounded outbox ---------------------------------------------------------------------

WAITING = 0
HANDED = 1
ACKED = 2


class Entry:
    __slots__ = ("seq", "topic", "payload", "retain", "state", "mid")

    def __init__(self, seq, topic, payload, retain):
        self.seq = seq
        self.topic = topic
        self.payload = payload     # str (UTF-8 on the wire); "" deletes a retained message
        self.retain = retain
        self.state = WAITING
        self.mid = None


class Outbox:
    """FIFO of messages, mirrored in `path` (JSON lines [seq, topic, payload,
    retain]) with the acknowledged prefix in `path.ack`. At most `max_len`
    entries: beyond it, waiting messages superseded by a newer one on the same
    topic are dropped (every topic is retained state: the newest value carries
    the totals), then the oldest waiting ones; both are counted in `dropped`."""

    def __init__(self, path, max_len=100000, ack_every_s=1.0):
        self.path = path
        self.max_len = max(16, int(max_len))
        self.items = []
        self.head = 0           # first entry not yet acknowledged
        self.next = 0           # first entry not yet handed to the client
        self.seq = 0
        self.acked_seq = 0
        self.dropped = 0
        self.sent = 0
        self.ack_every_s = ack_every_s
        self._ack_t = 0.0
        self._file = None
        if path:
            self._load()
            self._rewrite()

    def _load(self):
        try:
            with open(self.path + ".ack", "r") as f:
                self.acked_seq = int(f.read().strip() or 0)
        except (OSError, ValueError):
            self.acked_seq = 0
        pend = []
        try:
            with open(self.path, "r", encoding="utf-8") as f:
                for line in f:
                    try:
                        seq, topic, payload, retain = json.loads(line)
                    except ValueError:
                        continue          # a torn last line
                    self.seq = max(self.seq, seq)
                    if seq > self.acked_seq:
                        pend.append(Entry(seq, topic, payload, bool(retain)))
        except OSError:
            pass
        self.seq = max(self.seq, self.acked_seq)
        # whatever was in flight may have reached subscribers: resend only the
        # newest message per topic, never an older one after a newer one
        last = {}
        for e in pend:
            last[e.topic] = e
        self.items = [e for e in pend if last[e.topic] is e]
        self.dropped += len(pend) - len(self.items)

    def _rewrite(self):
        if self._file is not None:
            self._file.close()
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for e in self.items[self.head:]:
                f.write(json.dumps([e.seq, e.topic, e.payload, e.retain]) + "\n")
        os.replace(tmp, self.path)
        del self.items[:self.head]
        self.next -= self.head
        self.head = 0
        self._file = open(self.path, "a", encoding="utf-8")

    def __len__(self):
        return len(self.items) - self.head

    def waiting(self):
        return len(self.items) - self.next

    def put(self, topic, payload, retain=True):
        self.seq += 1
        e = Entry(self.seq, topic, payload, retain)
        self.items.append(e)
        if self._file is not None:
            self._file.write(json.dumps([e.seq, topic, payload, retain]) + "\n")
        if len(self) > self.max_len:
            self._shrink()
        return e

    def flush(self):
        if self._file is not None:
            self._file.flush()

    def _shrink(self):
        keep = self.items[:self.next]
        tail = self.items[self.next:]
        last = {}
        for e in tail:
            last[e.topic] = e
        newer = [e for e in tail if last[e.topic] is e]
        over = len(keep) - self.head + len(newer) - self.max_len
        if over > 0:
            newer = newer[over:]
        self.dropped += len(tail) - len(newer)
        self.items = keep + newer
        if self.path:
            self._rewrite()

    def take(self, busy_topics):
        """The next waiting entry unless its topic already has one in flight
        (then None: strict order per topic, at most one unacknowledged)."""
        if self.next >= len(self.items):
            return None
        e = self.items[self.next]
        if e.topic in busy_topics:
            return None
        self.next += 1
        e.state = HANDED
        return e

    def acked(self, e):
        e.state = ACKED
        self.sent += 1
        while self.head < self.next and self.items[self.head].state == ACKED:
            self.acked_seq = self.items[self.head].seq
            self.head += 1
        if self.path:
            now = time.monotonic()
            if now - self._ack_t >= self.ack_every_s:
                self.save_ack()
            if self.head > 4096 and 2 * self.head > len(self.items):
                self._rewrite()
        elif self.head > 4096 and 2 * self.head > len(self.items):
            del self.items[:self.head]
            self.next -= self.head
            self.head = 0

    def save_ack(self):
        self._ack_t = time.monotonic()
        self.flush()
        write_atomic(self.path + ".ack", "%d\n" % self.acked_seq)

    def close(self):
        if self.path:
            self.save_ack()
        if self._file is not None:
            self._file.close()
            self._file = None
