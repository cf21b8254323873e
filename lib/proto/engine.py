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
IEC_IDENT_MS = const(200)        # reaction time before the identification line
IEC_ACK_WAIT_MS = const(1_500)   # no option select by then: send the block anyway
IEC_DELAY_MS = const(1_000)      # ACK -> data block (the PyPI client reopens its port ~0.75 s after ACK)

_IEC_IDLE = const(0)
_IEC_IDENT = const(1)
_IEC_ACK = const(2)
_IEC_BLOCK = const(3)

# name, arguments, help, needs auth
_CMDS = (
    ("HELP", "[cmd]", "list commands, or help on one", 0),
    ("INFO", "", "node firmware, id, uptime; per module: addr, variant, channels, voltage hw, fw, tier, read mode", 0),
    ("READ", "[module [ch]]", "totals per channel: import/export/net kWh (exact, 6 decimals), gap, live power", 0),
    ("TOTALS", "[module [ch]]", "same as READ", 0),
    ("LIVE", "[ms|OFF]", "stream LIVE lines every ms (200..60000, default 1000); OFF stops", 0),
    ("STATUS", "", "faults, gap/error counters, last save, loss bound, fs health, heap, auth counters", 0),
    ("SAVE", "", "persist totals now", 0),
    ("ECHO", "ON|OFF", "echo typed characters (for terminals without local echo)", 0),
    ("JSON", "ON|OFF", "machine mode: one JSON object per line, each sealed with *CRC16 (CCITT-FALSE, hex)", 0),
    ("CONFIG", "[key]", "show configuration", 0),
    ("AUTH", "[hmac]", "AUTH -> NONCE <hex>; then AUTH <hex HMAC-SHA256(secret, nonce hex)> opens a session", 0),
    ("LOGOUT", "", "end the authenticated session", 0),
    ("SET", "<key> <value>", "change a config value (auth)", 1),
    ("PRESET", "<module> <ch> <import_kwh> <export_kwh>", "set the totals of one channel, exact decimals (auth)", 1),
    ("RESET", "TOTALS|COUNTERS|CONFIG [module [ch]]", "reset totals, counters or config (auth)", 1),
    ("REBOOT", "", "restart the node (auth)", 1),
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
                 iec_mfr="RBM", iec_baud="5"):
        self.node = node
        self._write = write
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
        # counters for STATUS
        self.rx_errors = 0       # garbage/overlong/bad checksum lines
        self.refused = 0         # mutating commands without auth
        self.write_errors = 0
        self.mutations = 0       # mutating calls forwarded to the node

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
        if out:
            self._out(bytes(out))

    def _guarded(self, line):
        try:
            self._on_line(line)
        except Exception:           # last resort: keep the reply framed, never crash
            self._err(500, "internal error")

    def reset(self, now):
        """Transport (re)connected: partial line, LIVE, JSON mode, session and
        pending IEC output are dropped; the AUTH lockout is kept."""
        self._now = now
        self.reader.reset()
        self.live_ms = 0
        self.json = False
        self.echo = False
        self._iec = _IEC_IDLE
        if self.auth.session:
            self._event("logout", "reset")
        self.auth.logout()

    def poll(self, now):
        """Runs due timed output; returns ms until the next timed action or None."""
        self._now = now
        ticks_diff = self.clock.ticks_diff
        wait = None
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
                wait = left if left > 0 else 0
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
        try:
            self._write(b)
        except Exception:
            self.write_errors += 1

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
            if b < 32 and b != 9 or b > 126:
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
        authed = self.auth.active(now)
        if authed:
            self.auth.touch(now)
        if spec[3] and not authed:
            self.refused += 1
            self._event("refused", name)
            self._err(401, "auth required")
            return
        try:
            getattr(self, "_c_" + name.lower())(parts, text)
        except ProtoError as e:
            self._err(e.args[0], e.args[1])
        except ValueError as e:
            self._err(400, str(e) or "bad value")
        except OSError as e:
            self._err(500, ("io error " + " ".join([str(a) for a in e.args])).strip())
        except Exception:
            self._err(500, "internal error")

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

    def _c_live(self, parts, text):
        if len(parts) > 2:
            raise ProtoError(400, "usage: LIVE [ms|OFF]")
        if len(parts) == 2 and parts[1].upper() == "OFF":
            self.live_ms = 0
            self._ok()
            return
        ms = LIVE_DEFAULT_MS
        if len(parts) == 2:
            ms = _uint(parts[1], "period (200..60000 ms)", LIVE_MIN_MS, LIVE_MAX_MS)
        self.live_ms = ms
        self._live_next = self._now      # first LIVE lines at the next poll
        self._ok()

    def _live_tick(self):
        try:
            chans = self.node.channels()
        except Exception:
            return
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

    def _c_status(self, parts, text):
        st = self.node.status()
        a = self.auth
        pr = [(k, st[k]) for k in sorted(st)]
        pr += [("auth_fail", a.fail_total), ("auth_locked_s", (a.locked_ms(self._now) + 999) // 1000),
               ("refused", self.refused), ("rx_errors", self.rx_errors),
               ("session", a.active(self._now)), ("live_ms", self.live_ms)]
        self._rec("status", pr, 4)
        self._ok()

    def _c_save(self, parts, text):
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
        if len(parts) > 1:
            k = parts[1].lower()
            if k not in cfg:
                raise ProtoError(404, "no such key")
            self._rec("config", [(k, cfg[k])])
        else:
            for k in sorted(cfg):
                self._rec("config", [(k, cfg[k])])
        self._ok()

    def _c_auth(self, parts, text):
        a = self.auth
        now = self._now
        if len(parts) > 2:
            raise ProtoError(400, "usage: AUTH [hmac]")
        secret = self.node.secret()
        if not secret:
            raise ProtoError(403, "no secret provisioned")
        left = a.locked_ms(now)
        if left:
            raise ProtoError(429, "locked, retry in %d s" % ((left + 999) // 1000))
        if len(parts) == 1:
            n = a.challenge(now)
            self._rec("nonce", [("nonce", n.decode() if n else "-")])
            self._ok()
            return
        r = a.answer(secret, parts[1], now)
        if r == _auth.OK:
            self._event("auth_ok", "")
            self._ok("authenticated")
        elif r == _auth.NO_CHALLENGE:
            raise ProtoError(409, "no open challenge, send AUTH first")
        else:
            self._event("auth_fail", "fails=%d" % a.fails)
            if a.fails >= 3:
                self._event("auth_lock", "%d ms" % _auth.lock_ms(a.fails))
            raise ProtoError(403, "auth failed, retry in %d s" % ((_auth.lock_ms(a.fails) + 999) // 1000))

    def _c_logout(self, parts, text):
        if self.auth.session:
            self._event("logout", "cmd")
        self.auth.logout()
        self._ok()

    def _audit(self, text):
        self.mutations += 1
        self._event("cmd", text)

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
        self._audit("SET " + key + " " + masked)
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
        self._audit("PRESET %s %d %s %s" % (mod, ch, _num.fmt_kwh(imp), _num.fmt_kwh(exp)))
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
        self._audit(" ".join(["RESET", scope] + parts[2:]))
        self.node.reset(scope, mod, ch)
        self._ok()

    def _c_reboot(self, parts, text):
        fn = getattr(self.node, "reboot", None)
        if fn is None:
            raise ProtoError(501, "reboot not supported")
        self._audit("REBOOT")
        self._ok()
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
            _iec.write_block(self._out, lines)
