"""Transport-independent console engine: bytes in via feed(data, now), lines
out via write(bytes), timed output via poll(now). See docs/protocol.md."""
from proto import auth as _auth
from proto import crc as _crc
from proto import iec as _iec
from proto import num as _num
from proto.lines import LineReader

try:
    from micropython import const
except ImportError:  # CPython
    def const(__x):
        return __x

LIVE_MIN_MS = const(200)
LIVE_MAX_MS = const(60_000)
LIVE_DEFAULT_MS = const(1_000)
LIVE_LINE_BYTES = const(120)     # worst LIVE line (JSON, u/i/pf, seal, CR LF)
LIVE_SHARE = const(2)            # LIVE may use at most 1/LIVE_SHARE of the line
IEC_IDENT_MS = const(200)        # reaction time before the identification line
IEC_ACK_WAIT_MS = const(1_500)   # no option select by then: send the block anyway
IEC_DELAY_MS = const(1_000)      # ACK -> data block (the PyPI client reopens its port ~0.75 s after ACK)
MUT_RESERVE = const(256)         # TX room a mutating command needs before it runs
MAX_LATE = const(8)              # held-back (failed AUTH) replies

_IEC_IDLE = const(0)
_IEC_IDENT = const(1)
_IEC_ACK = const(2)
_IEC_BLOCK = const(3)

# name, arguments, help, needs a signature
_CMDS = (
    ("HELP", "[cmd]", "list commands, or help on one", 0),
    ("INFO", "", "node firmware, id, uptime; per module: addr, variant, channels, voltage hw, fw, tier, read mode", 0),
    ("READ", "[module [ch]]", "totals per channel: import/export/net kWh (exact, 6 decimals), gap, live power", 0),
    ("TOTALS", "[module [ch]]", "same as READ", 0),
    ("LIVE", "[ms|OFF]", "stream LIVE lines every ms (min scales with channels and baud, max 60000, default 1000); OFF stops", 0),
    ("STATUS", "", "faults, gap/error counters, last save, loss bound, fs health, heap, auth and TX counters", 0),
    ("ECHO", "ON|OFF", "echo typed characters (for terminals without local echo)", 0),
    ("JSON", "ON|OFF", "machine mode: one JSON object per line, each sealed with *CRC16 (CCITT-FALSE, hex)", 0),
    ("CONFIG", "[key]", "show configuration", 0),
    ("AUDIT", "[n]", "last n audit records (default 10)", 0),
    ("AUTH", "[nonce hmac]", "AUTH -> NONCE; AUTH <nonce> <hex HMAC-SHA256(secret, auth/1|id|nonce)> opens a session", 0),
    ("LOGOUT", "", "end the authenticated session", 0),
    ("SAVE", "", "commit unsaved energy now (signed)", 1),
    ("SET", "<key> <value>", "change a config value (signed)", 1),
    ("PRESET", "<module> <ch> <import_kwh> <export_kwh>", "set the totals of one channel, exact decimals (signed)", 1),
    ("RESET", "TOTALS|COUNTERS|CONFIG [module [ch]]", "reset totals, counters or config (signed)", 1),
    ("REBOOT", "", "restart the node (signed)", 1),
    ("KEY", "<hex>", "new secret XOR key/1 keystream (signed)", 1),
)


class ProtoError(Exception):
    """A request error: ProtoError(code, message) -> ERR code message."""


def _jstr(s):
    out = '"'
    for c in s:
        o = ord(c)
        if c == '"' or c == "\\":
            out += "\\" + c
        elif o < 32 or o > 126:
            out += "\\u%04x" % (o & 0xFFFF)
        else:
            out += c
    return out + '"'


def _num_str(v):
    if v != v or v in (float("inf"), float("-inf")):
        return None
    return "%.6g" % v


def jval(v):
    """Small deterministic JSON encoder (sorted keys, ASCII only, no floats
    beyond 6 significant digits; NaN/Inf -> null)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        s = _num_str(v)
        return "null" if s is None else s
    if isinstance(v, str):
        return _jstr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join([jval(x) for x in v]) + "]"
    if isinstance(v, dict):
        return "{" + ",".join([_jstr(str(k)) + ":" + jval(v[k]) for k in sorted(v)]) + "}"
    return _jstr(str(v))


def tval(v):
    """Value for a text-mode key=value pair."""
    if v is None:
        return "-"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float):
        s = _num_str(v)
        return "-" if s is None else s
    if isinstance(v, (list, tuple)):
        s = ",".join([str(x) for x in v])
        if not s:
            return "-"
    else:
        s = str(v)
        if not s:
            return '""'
    for c in s:                    # blanks, '=', quotes or control chars: quote + escape
        if c <= " " or c > "~" or c == "=" or c == '"':
            return _jstr(s)
    return s


def _clean(s):
    """Free text (node messages) on one printable line: a CR/LF from a
    ValueError message must not fake a status line."""
    s = str(s)
    for c in s:
        if c < " " or c > "~":
            return "".join([c if " " <= c <= "~" else "?" for c in s])
    return s


def _module(s, modules=None):
    """Module argument -> '0x50': hex '0x50'/'0X50', a decimal I2C address
    (8..119), or a position 0..7 in INFO's module list (modules: callable
    returning that list of addresses, asked only for a position)."""
    t = s.lower()
    try:
        if t.startswith("0x") and 3 <= len(t) <= 4:
            v = int(t[2:], 16)
        elif t.isdigit() and len(t) <= 3:
            v = int(t)
            if v < 8:
                addrs = modules() if modules is not None else []
                if v >= len(addrs):
                    raise ProtoError(404, "no module #%d" % v)
                return addrs[v]
        else:
            raise ValueError
    except ValueError:
        raise ProtoError(400, "module must be like 0x50, 80 or an INFO position 0..7")
    if not 0x08 <= v <= 0x77:
        raise ProtoError(400, "module address must be 0x08..0x77")
    return "0x%02x" % v


def _uint(s, what, lo, hi):
    if not s.isdigit() or len(s) > 6:
        raise ProtoError(400, "bad " + what)
    v = int(s)
    if not lo <= v <= hi:
        raise ProtoError(400, "bad " + what)
    return v


class Engine:
    def __init__(self, node, write, clock, urandom, max_line=128,
                 iec_mfr="RBM", iec_baud="5", room=None, baud=115200):
        """write(bytes): the transport's writer (must not raise). room():
        free bytes in the transport's TX queue (None: unbounded, e.g. tests).
        baud: line speed in bit/s, for the LIVE minimum period."""
        self.node = node
        self._write = write
        self._room = room
        self.baud = baud
        self.clock = clock
        self.auth = _auth.Auth(clock, urandom)
        self.reader = LineReader(max_line)
        self.max_line = max_line
        self.iec_mfr = iec_mfr
        self.iec_baud = iec_baud
        self.json = False
        self.echo = False
        self._ecr = False
        self.live_ms = 0
        self._live_next = 0
        self._iec = _IEC_IDLE
        self._iec_t = 0
        self._now = 0
        self._stage = None       # reply being built (list of bytes) while a line runs
        self._hold = False       # this reply is held back FAIL_DELAY_MS
        self._late = []          # [due ticks, [bytes...]] held-back replies
        self._sig_n = 0          # counter of the signed command now running
        self._adetail = None     # audit text of the mutating command now running
        # counters for STATUS
        self.rx_errors = 0       # garbage/overlong/bad checksum lines
        self.refused = 0         # mutating commands without a valid signature
        self.write_errors = 0
        self.busy = 0            # replies refused with ERR 503 (TX queue full)
        self.live_skipped = 0    # LIVE batches not sent for lack of TX room
        self.mutations = 0       # signed mutating commands that ran

    # ---------------------------------------------------------------- I/O
    @property
    def authenticated(self):
        return self.auth.active(self._now)

    def feed(self, data, now):
        self._now = now
        if not self.echo:
            self.reader.feed(data, self._guarded)
            return
        # echo for terminals without local echo: each line is echoed before its reply
        start = 0
        n = len(data)
        for i in range(n):
            if data[i] == 10 or data[i] == 13 or i == n - 1:
                seg = data[start:i + 1]
                self._echo(seg)
                self.reader.feed(seg, self._guarded)
                start = i + 1

    def _echo(self, seg):
        out = bytearray()
        for b in seg:
            if b == 13 or b == 10:
                if not (b == 10 and self._ecr):     # LF of CRLF: already echoed
                    out += b"\r\n"
                self._ecr = b == 13
                continue
            self._ecr = False
            if b == 8 or b == 127:
                out += b"\x08 \x08"
            elif 32 <= b <= 126:
                out.append(b)
        if out and len(out) <= self.room():     # cosmetic: dropped when the queue is full
            self._out(bytes(out))

    def _guarded(self, line):
        """One input line -> one reply, staged and then queued whole (or
        replaced by ERR 503 when the TX queue cannot take it)."""
        self._stage = []
        self._hold = False
        try:
            try:
                self._on_line(line)
            except Exception:       # last resort: keep the reply framed, never crash
                self._err(500, "internal error")
        finally:
            self._flush_reply()

    def _flush_reply(self):
        st = self._stage
        self._stage = None
        if not st:
            return
        if self._hold and len(self._late) < MAX_LATE:
            self._late.append([self.clock.ticks_add(self._now, _auth.FAIL_DELAY_MS), st])
            return
        if self._hold or not self._fits(st):
            self.busy += 1
            if self.room() > 0:         # a full queue nobody drains: not even this line
                self._err(503, "busy")
            return
        for b in st:
            self._out(b)

    def _fits(self, lines):
        if self._room is None:
            return True
        n = 0
        for b in lines:
            n += len(b)
        return n <= self._room()

    def room(self):
        return 0x3FFFFFFF if self._room is None else self._room()   # a small int on 32-bit ports

    def reset(self, now):
        """Transport (re)connected, UART break or BLE disconnect: partial line,
        LIVE, JSON/ECHO mode, session, open challenges, held replies and
        pending IEC output are dropped."""
        self._now = now
        self.reader.reset()
        self.live_ms = 0
        self.json = False
        self.echo = False
        self._iec = _IEC_IDLE
        self._late = []
        if self.auth.session:
            self._event("logout", "reset")
        self.auth.reset()

    def poll(self, now):
        """Runs due timed output; returns ms until the next timed action or None."""
        self._now = now
        ticks_diff = self.clock.ticks_diff
        wait = None
        if self._late:
            keep = []
            for e in self._late:
                left = ticks_diff(e[0], now)
                if left <= 0:
                    if self._fits(e[1]):
                        for b in e[1]:
                            self._out(b)
                else:
                    keep.append(e)
                    if wait is None or left < wait:
                        wait = left
            self._late = keep
        if self._iec != _IEC_IDLE:
            left = ticks_diff(self._iec_t, now)
            if left <= 0:
                try:
                    self._iec_step(now)
                except Exception:       # a broken node value must not stop the loop
                    self._iec = _IEC_IDLE
                if self._iec != _IEC_IDLE:
                    left = ticks_diff(self._iec_t, now)
            if self._iec != _IEC_IDLE:
                left = left if left > 0 else 0
                if wait is None or left < wait:
                    wait = left
        if self.live_ms:
            left = ticks_diff(self._live_next, now)
            if left <= 0:
                try:
                    self._live_tick()
                except Exception:
                    pass
                nxt = self.clock.ticks_add(self._live_next, self.live_ms)
                if ticks_diff(nxt, now) <= 0:   # fell behind: no burst of catch-up lines
                    nxt = self.clock.ticks_add(now, self.live_ms)
                self._live_next = nxt
                left = ticks_diff(nxt, now)
            if wait is None or left < wait:
                wait = left
        if self.auth.session and not self.auth.active(now):
            self._event("logout", "idle")
        return wait

    def _out(self, b):
        if self._stage is not None:
            self._stage.append(b)
            return
        try:
            self._write(b)
        except Exception:
            self.write_errors += 1

    def _batch(self, fn):
        """Timed output (LIVE, IEC) built whole, queued only if it fits."""
        self._stage = []
        try:
            fn()
        finally:
            st = self._stage
            self._stage = None
        if not self._fits(st):
            return False
        for b in st:
            self._out(b)
        return True

    def _line(self, s):
        b = s.encode()
        if self.json:
            b += _crc.suffix(_crc.crc16(b))
        self._out(b + b"\r\n")

    def _rec(self, tag, pairs, per_line=0):
        """One record: text 'TAG k=v ...' (wrapped after per_line pairs) or a
        JSON object {"t": tag, k: v, ...} on one line."""
        if self.json:
            parts = ['"t":' + _jstr(tag)]
            for k, v in pairs:
                if k == "t" or k == "ok":      # reserved: record type / status line
                    k = "_" + k
                parts.append(_jstr(k) + ":" + jval(v))
            self._line("{" + ",".join(parts) + "}")
            return
        head = tag.upper()
        s = head
        n = 0
        for k, v in pairs:
            if per_line and n == per_line:
                self._line(s)
                s = head
                n = 0
            s += " " + k + "=" + tval(v)
            n += 1
        self._line(s)

    def _ok(self, msg=None):
        if self.json:
            self._line('{"ok":true}' if msg is None else '{"ok":true,"msg":' + _jstr(msg) + "}")
        else:
            self._line("OK" if msg is None else "OK " + _clean(msg))

    def _err(self, code, msg):
        if self.json:
            self._line('{"ok":false,"err":%d,"msg":%s}' % (code, _jstr(msg)))
        else:
            self._line("ERR %d %s" % (code, _clean(msg)))

    def _event(self, kind, detail):
        try:
            self.node.event(kind, detail)
        except Exception:
            pass

    # ------------------------------------------------------------ dispatch
    def _on_line(self, line):
        now = self._now
        if line is None:
            self.rx_errors += 1
            self._err(414, "line too long (max %d)" % self.max_line)
            return
        if self._iec == _IEC_ACK:
            ack = _iec.parse_ack(line)
            if ack is not None:
                if ack[0] == "0" and ack[2] == "0":   # normal protocol, readout
                    self._iec = _IEC_BLOCK
                    self._iec_t = self.clock.ticks_add(now, IEC_DELAY_MS)
                else:                                 # programming etc.: not offered
                    self._iec = _IEC_IDLE
                return
        if not line:
            return
        addr = _iec.parse_request(line)
        if addr is not None:
            self._iec_request(addr, now)
            return
        for b in line:
            if b < 32 and b != 9 or b > 126:      # NUL, CR/LF fragments, ESC, UTF-8...
                self.rx_errors += 1
                self._err(400, "bad character")
                return
        if self._iec != _IEC_IDLE:       # a typed command cancels a pending readout
            self._iec = _IEC_IDLE
        if self.json and len(line) > 5 and line[len(line) - 5] == 42:
            p = _crc.verify(line)
            if p is None:
                self.rx_errors += 1
                self._err(400, "bad checksum")
                return
            line = p
        self._command(line.decode(), now)

    def _command(self, text, now):
        sig = _auth.split_signed(text)
        if sig is not None:
            text = sig[0]
        parts = text.split()
        if not parts:
            return
        name = parts[0].upper()
        spec = None
        for c in _CMDS:
            if c[0] == name:
                spec = c
                break
        if spec is None:
            self.rx_errors += 1
            self._err(404, "unknown command, try HELP")
            return
        self._sig_n = 0
        if sig is not None:
            if not self.auth.verify(sig[0], sig[1], sig[2], now):
                self.refused += 1
                self._event("refused", name + " bad signature")
                self._err(401, "bad signature")
                return
            self._sig_n = sig[1]
        elif spec[3]:
            self.refused += 1
            self._event("refused", name)
            self._err(401, "auth required")
            return
        if spec[3] and self.room() < MUT_RESERVE:
            self.busy += 1                  # nothing runs that could not be answered
            self._err(503, "busy")
            return
        self._adetail = None
        code = 0
        try:
            getattr(self, "_c_" + name.lower())(parts, text)
        except ProtoError as e:
            code = e.args[0]
            self._err(code, e.args[1])
        except ValueError as e:
            code = 400
            self._err(code, str(e) or "bad value")
        except OSError as e:
            code = 500
            self._err(code, ("io error " + " ".join([str(a) for a in e.args])).strip())
        except Exception:
            code = 500
            self._err(code, "internal error")
        self._done(code)

    def _done(self, code):
        """Audit record of a mutating command, written after it ran: the
        command (secrets masked) and whether it was applied."""
        d = self._adetail
        if d is None:
            return
        self._adetail = None
        if not code:
            self.mutations += 1
        self._event("cmd", d + (" -> ok" if not code else " -> failed %d" % code))

    # ------------------------------------------------------------ commands
    def _c_help(self, parts, text):
        if len(parts) > 1:
            name = parts[1].upper()
            for c in _CMDS:
                if c[0] == name:
                    if self.json:
                        self._rec("help", [("cmd", c[0]), ("args", c[1]), ("text", c[2]), ("auth", bool(c[3]))])
                    else:
                        self._line((c[0] + " " + c[1]).strip())
                        self._line("  " + c[2])
                    self._ok()
                    return
            raise ProtoError(404, "unknown command")
        for c in _CMDS:
            if self.json:
                self._rec("help", [("cmd", c[0]), ("args", c[1])])
            else:
                self._line((c[0] + " " + c[1]).strip())
        self._ok()

    def _c_info(self, parts, text):
        i = self.node.info()
        self._rec("node", [("fw", i.get("fw")), ("id", i.get("node_id")), ("uptime_s", i.get("uptime_s"))])
        for m in i.get("modules", ()):
            pr = [(k, m.get(k)) for k in (
                "addr", "variant", "channels", "voltage_hw", "fw", "fw_version",
                "tier", "read_mode", "mode")]
            if m.get("uid"):
                pr.append(("uid", m.get("uid")))   # hex; only when the node knows it
            pr.append(("online", m.get("ok")))   # "ok" is reserved for status lines
            self._rec("module", pr)
        self._ok()

    def _select(self, parts):
        mod = _module(parts[1], self._module_addrs) if len(parts) > 1 else None
        ch = _uint(parts[2], "channel", 0, 255) if len(parts) > 2 else None
        if len(parts) > 3:
            raise ProtoError(400, "too many arguments")
        out = []
        for c in self.node.channels():
            if mod is not None and c.get("module") != mod:
                continue
            if ch is not None and c.get("ch") != ch:
                continue
            out.append(c)
        if (mod is not None or ch is not None) and not out:
            raise ProtoError(404, "no such module/channel")
        return out

    def _c_read(self, parts, text):
        for c in self._select(parts):
            imp = c.get("import_mwh", 0)
            exp = c.get("export_mwh", 0)
            p = c.get("p_mw")
            pr = [("module", c.get("module")), ("ch", c.get("ch")),
                  ("import_kwh", _num.fmt_kwh(imp)), ("export_kwh", _num.fmt_kwh(exp)),
                  ("net_kwh", _num.fmt_kwh(imp - exp)),
                  ("gap_s", _num.fmt_fixed(c.get("gap_ms", 0) or 0, 3)),
                  ("p_w", None if p is None else _num.fmt_fixed(p, 3))]
            if self.json:
                pr += [("import_mwh", imp), ("export_mwh", exp), ("gap_ms", c.get("gap_ms", 0)),
                       ("p_mw", p), ("enabled", c.get("enabled", True))]
            elif not c.get("enabled", True):
                pr.append(("enabled", False))
            self._rec("ch", pr)
        self._ok()

    _c_totals = _c_read

    def _module_addrs(self):
        return [m.get("addr") for m in self.node.info().get("modules", [])]

    def live_min_ms(self, nch):
        """Shortest LIVE period: one batch (nch lines of at most LIVE_LINE_BYTES,
        10 bits per byte on the wire) may use 1/LIVE_SHARE of the line."""
        baud = self.baud if self.baud else 115200
        ms = (nch * LIVE_LINE_BYTES * 10 * 1000 * LIVE_SHARE + baud - 1) // baud
        if ms < LIVE_MIN_MS:
            ms = LIVE_MIN_MS
        return ms if ms < LIVE_MAX_MS else LIVE_MAX_MS

    def _c_live(self, parts, text):
        if len(parts) > 2:
            raise ProtoError(400, "usage: LIVE [ms|OFF]")
        if len(parts) == 2 and parts[1].upper() == "OFF":
            self.live_ms = 0
            self._ok()
            return
        ms = LIVE_DEFAULT_MS
        if len(parts) == 2:
            ms = _uint(parts[1], "period (ms, max 60000)", 1, LIVE_MAX_MS)
        lo = self.live_min_ms(len(self.node.channels()))
        if ms < lo:
            ms = lo                      # clamped: the reply says what applies
        self.live_ms = ms
        self._live_next = self._now      # first LIVE lines at the next poll
        self._ok("live_ms=%d" % ms)

    def _live_tick(self):
        try:
            chans = self.node.channels()
        except Exception:
            return

        def lines():
            for c in chans:
                p = c.get("p_mw")
                pr = [("module", c.get("module")), ("ch", c.get("ch"))]
                if self.json:
                    pr.append(("p_mw", p))
                else:
                    pr.append(("p_w", None if p is None else _num.fmt_fixed(p, 3)))
                for k in ("u_v", "i_a", "pf"):
                    if c.get(k) is not None:
                        pr.append((k, c.get(k)))
                self._rec("live", pr)
        if not self._batch(lines):
            self.live_skipped += 1       # a slow reader loses LIVE batches, never replies

    def _c_status(self, parts, text):
        st = self.node.status()
        a = self.auth
        pr = [(k, st[k]) for k in sorted(st)]
        pr += [("auth_fail", a.fail_total), ("auth_open", a.open_challenges(self._now)),
               ("refused", self.refused), ("rx_errors", self.rx_errors), ("busy", self.busy),
               ("live_skipped", self.live_skipped),
               ("session", a.active(self._now)), ("live_ms", self.live_ms)]
        self._rec("status", pr, 4)
        self._ok()

    def _c_save(self, parts, text):
        if len(parts) != 1:
            raise ProtoError(400, "usage: SAVE")
        self._adetail = "SAVE"
        r = self.node.save()
        self._ok(r if isinstance(r, str) else None)

    def _c_echo(self, parts, text):
        if len(parts) != 2 or parts[1].upper() not in ("ON", "OFF"):
            raise ProtoError(400, "usage: ECHO ON|OFF")
        self.echo = parts[1].upper() == "ON"
        self._ok()

    def _c_json(self, parts, text):
        if len(parts) != 2 or parts[1].upper() not in ("ON", "OFF"):
            raise ProtoError(400, "usage: JSON ON|OFF")
        self.json = parts[1].upper() == "ON"
        self._ok()

    def _c_config(self, parts, text):
        cfg = self.node.get_config()
        more = getattr(self.node, "session_config", None)
        if more is not None and self.authenticated:
            cfg.update(more())       # shown inside a session only (the BTHome bind key)
        if len(parts) > 1:
            k = parts[1].lower()
            if k not in cfg:
                raise ProtoError(404, "no such key")
            self._rec("config", [(k, cfg[k])])
        else:
            for k in sorted(cfg):
                self._rec("config", [(k, cfg[k])])
        self._ok()

    def _c_audit(self, parts, text):
        if len(parts) > 2:
            raise ProtoError(400, "usage: AUDIT [n]")
        n = _uint(parts[1], "count", 1, 64) if len(parts) == 2 else 10
        fn = getattr(self.node, "audit", None)
        if fn is None:
            raise ProtoError(501, "no audit log")
        for r in fn(n):
            self._rec("audit", [("seq", r[0]), ("uptime_s", r[1]), ("kind", r[2]), ("detail", r[3])])
        self._ok()

    def _node_id(self):
        try:
            return self.node.node_id()
        except Exception:
            return ""

    def _c_auth(self, parts, text):
        a = self.auth
        now = self._now
        secret = self.node.secret()
        if not secret:
            raise ProtoError(403, "no secret provisioned")
        if len(parts) == 1:
            n = a.challenge(now)
            self._rec("nonce", [("nonce", _auth.hexs(n))])
            self._ok()
            return
        self._hold = True                # every failed answer is answered ~100 ms later
        if len(parts) != 3:
            raise ProtoError(400, "usage: AUTH, then AUTH <nonce> <hmac>")
        r = a.answer(secret, self._node_id(), parts[1], parts[2], now)
        if r == _auth.OK:
            self._hold = False
            self._event("auth_ok", "")
            self._ok("authenticated")
        elif r == _auth.NO_CHALLENGE:
            raise ProtoError(409, "no such open challenge, send AUTH first")
        else:
            self._event("auth_fail", "")
            raise ProtoError(403, "auth failed")

    def _c_logout(self, parts, text):
        if self.auth.session:
            self._event("logout", "cmd")
        self.auth.logout()
        self._ok()

    def _c_set(self, parts, text):
        p = text.split(None, 2)
        if len(p) < 3:
            raise ProtoError(400, "usage: SET <key> <value>")
        key = p[1].lower()
        val = p[2].strip()
        masked = val
        for w in ("secret", "key", "pass", "token"):
            if w in key:
                masked = "***"
        self._adetail = "SET " + key + " " + masked
        r = self.node.set(key, val)
        self._ok(r if isinstance(r, str) else None)

    def _c_preset(self, parts, text):
        if len(parts) != 5:
            raise ProtoError(400, "usage: PRESET <module> <ch> <import_kwh> <export_kwh>")
        mod = _module(parts[1], self._module_addrs)
        ch = _uint(parts[2], "channel", 0, 255)
        try:
            imp = _num.parse_fixed(parts[3], 6, 10)
            exp = _num.parse_fixed(parts[4], 6, 10)
        except ValueError as e:
            raise ProtoError(400, "kwh: " + str(e))
        lim = 1_000_000_000 * 1_000_000
        if imp > lim or exp > lim:
            raise ProtoError(400, "kwh: number too large")
        self._adetail = "PRESET %s %d %s %s" % (mod, ch, _num.fmt_kwh(imp), _num.fmt_kwh(exp))
        self.node.preset(mod, ch, imp, exp)
        self._ok()

    def _c_reset(self, parts, text):
        if len(parts) < 2 or len(parts) > 4:
            raise ProtoError(400, "usage: RESET TOTALS|COUNTERS|CONFIG [module [ch]]")
        scope = parts[1].lower()
        if scope not in ("totals", "counters", "config"):
            raise ProtoError(400, "scope: TOTALS, COUNTERS or CONFIG")
        mod = _module(parts[2], self._module_addrs) if len(parts) > 2 else None
        ch = _uint(parts[3], "channel", 0, 255) if len(parts) > 3 else None
        if scope != "totals" and mod is not None:
            raise ProtoError(400, "module/ch only with TOTALS")
        self._adetail = " ".join(["RESET", scope] + parts[2:])
        self.node.reset(scope, mod, ch)
        self._ok()

    def _c_key(self, parts, text):
        if len(parts) != 2:
            raise ProtoError(400, "usage: KEY <hex>")
        ct = _auth.unhex(parts[1])
        if ct is None or not _auth.SECRET_MIN <= len(ct) <= _auth.SECRET_MAX:
            raise ProtoError(400, "key must be %d..%d bytes in hex" % (_auth.SECRET_MIN, _auth.SECRET_MAX))
        fn = getattr(self.node, "set_secret", None)
        if fn is None:
            raise ProtoError(501, "key change not supported")
        self._adetail = "KEY (%d bytes)" % len(ct)
        fn(_auth.xor(ct, _auth.key_pad(self.auth.ks, self._sig_n, len(ct))))
        self._ok("key changed")

    def _c_reboot(self, parts, text):
        fn = getattr(self.node, "reboot", None)
        if fn is None:
            raise ProtoError(501, "reboot not supported")
        self._adetail = "REBOOT"
        self._ok()
        self._done(0)               # audited before the node goes down
        self._flush_reply()         # the OK goes to the transport before the reset
        try:                        # OK is already out: keep the reply framed
            fn()
        except Exception:
            pass

    # ---------------------------------------------------------------- IEC
    def _iec_request(self, addr, now):
        if addr:
            try:
                mine = self.node.node_id()
            except Exception:
                mine = ""
            if addr != mine:
                return              # another device on the bus: stay silent
        self.live_ms = 0            # nothing may interleave with the IEC frames
        self._iec = _IEC_IDENT
        self._iec_t = self.clock.ticks_add(now, IEC_IDENT_MS)

    def _iec_step(self, now):
        st = self._iec
        if st == _IEC_IDENT:
            try:
                nid = self.node.node_id()
            except Exception:
                nid = ""
            self._out(_iec.ident_line(self.iec_mfr, self.iec_baud, "-" + _iec.clean_id(nid, 15)))
            self._iec = _IEC_ACK
            self._iec_t = self.clock.ticks_add(now, IEC_ACK_WAIT_MS)
        else:                       # ACK seen (and delay over) or ACK wait expired
            self._iec = _IEC_IDLE
            try:                    # all lines first: never a half block on the wire
                lines = list(_iec.data_lines(self.node.node_id(), self.node.channels()))
            except Exception:
                return
            if not self._batch(lambda: _iec.write_block(self._out, lines)):
                self._iec = _IEC_BLOCK      # TX queue full: the whole block a bit later
                self._iec_t = self.clock.ticks_add(now, 100)
