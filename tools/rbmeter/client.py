"""Serial client for the node's console line protocol (docs/protocol.md).

Framing: a reply is every line up to the status line (text `OK ...` /
`ERR <code> <msg>`, JSON `{"ok": ...}`). The client works in JSON mode:
every line it receives carries a `*XXXX` CRC-16/CCITT-FALSE suffix and is
verified; commands are sealed the same way so the node rejects a corrupted
command (`ERR 400 bad checksum`). A corrupted, incomplete or timed-out reply
is retried after re-synchronising the line. Asynchronous LIVE lines are
routed to `on_live` and never mistaken for a reply.

    with Client("/dev/ttyUSB0") as c:
        for ch in c.channels():
            print(ch["module"], ch["ch"], ch["import_mwh"])
        c.auth(b"a secret of 16+ bytes")
        c.preset("0x50", 0, 1234567, 0)      # signed with the session key
        c.logout()

Authentication (docs/protocol.md): AUTH -> nonce; the answer is HMAC-SHA256
(secret, "rbmeter/auth/1" || node_id || nonce); every mutating command is sent
signed, '<line> @<n> <tag>', with the session key. The secret never crosses
the link. Values containing CR, LF or NUL are refused before anything is sent.
"""
import hashlib
import hmac
import json
import time

# -- CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), own host implementation ---------


def crc16(data, crc=0xFFFF):
    if isinstance(data, str):
        data = data.encode()
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def seal(payload):
    """bytes/str -> payload + b'*XXXX'."""
    if isinstance(payload, str):
        payload = payload.encode()
    return payload + b"*%04X" % crc16(payload)


def unseal(line):
    """Sealed line (no terminator) -> payload bytes, or None when the suffix is
    missing or does not match."""
    if len(line) < 5 or line[-5:-4] != b"*":
        return None
    try:
        want = int(line[-4:], 16)
    except ValueError:
        return None
    payload = line[:-5]
    return payload if crc16(payload) == want else None


def _hmac(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def auth_answer(secret, node_id, nonce_hex):
    """hex HMAC-SHA256(secret, "rbmeter/auth/1" || node_id || nonce) with the
    nonce as its 16 raw bytes (the printed hex decoded)."""
    return _hmac(secret, b"rbmeter/auth/1" + node_id.encode() + bytes.fromhex(nonce_hex)).hex()


def session_key(secret, node_id, nonce_hex):
    """Ks = HMAC-SHA256(secret, "rbmeter/session/1" || node_id || nonce)."""
    return _hmac(secret, b"rbmeter/session/1" + node_id.encode() + bytes.fromhex(nonce_hex))


def sign(ks, n, line):
    """'<line> @<n> <tag>': tag = first 16 bytes of HMAC-SHA256(Ks,
    "rbmeter/cmd/1" || n as 4-byte big-endian || line), hex."""
    tag = _hmac(ks, b"rbmeter/cmd/1" + n.to_bytes(4, "big") + line.encode())[:16]
    return "%s @%d %s" % (line, n, tag.hex())


def key_pad(ks, n, length):
    """KEY keystream: HMAC(Ks, "rbmeter/key/1" || n4), then HMAC(Ks, .. || n4 || i4) for i = 1, 2..."""
    out = _hmac(ks, b"rbmeter/key/1" + n.to_bytes(4, "big"))
    i = 1
    while len(out) < length:
        out += _hmac(ks, b"rbmeter/key/1" + n.to_bytes(4, "big") + i.to_bytes(4, "big"))
        i += 1
    return out[:length]


def check_value(text):
    """Refuses text that would end the command line early (CR, LF) or that the
    node refuses anyway (NUL): no injected second command."""
    for c in ("\r", "\n", "\x00"):
        if c in text:
            raise ValueError("refused: the value contains %s" % {"\r": "CR", "\n": "LF", "\x00": "NUL"}[c])


# -- errors ---------------------------------------------------------------------


class ClientError(Exception):
    """Transport/framing failure after all retries."""


class NodeError(Exception):
    """The node answered ERR <code> <msg>."""

    def __init__(self, code, msg):
        Exception.__init__(self, "ERR %s %s" % (code, msg))
        self.code = code
        self.msg = msg


class AuthError(NodeError):
    pass


# -- text-mode helpers (records `TAG k=v k="quoted value"`) -----------------------


def parse_text_record(line):
    """'CH module=0x50 ch=0 p_w=-' -> {"t": "ch", "module": "0x50", ...}
    (values stay strings; '-' -> None; JSON-quoted strings are decoded)."""
    s = line
    out = {}
    i = s.find(" ")
    out["t"] = (s if i < 0 else s[:i]).lower()
    if i < 0:
        return out
    i += 1
    n = len(s)
    while i < n:
        while i < n and s[i] == " ":
            i += 1
        eq = s.find("=", i)
        if eq < 0:
            break
        key = s[i:eq]
        j = eq + 1
        if j < n and s[j] == '"':
            k = j + 1
            while k < n and s[k] != '"':
                k += 2 if s[k] == "\\" else 1
            try:
                val = json.loads(s[j:k + 1])
            except ValueError:
                val = s[j + 1:k]
            i = k + 1
        else:
            k = s.find(" ", j)
            k = n if k < 0 else k
            val = s[j:k]
            if val == "-":
                val = None
            i = k
        out[key] = val
    return out


class Reply:
    def __init__(self, ok, records, code=0, msg=None, lines=None):
        self.ok = ok
        self.records = records      # list of dicts, each with "t"
        self.code = code
        self.msg = msg
        self.lines = lines or []    # raw payload lines (str), for --raw/debugging

    def of(self, tag):
        return [r for r in self.records if r.get("t") == tag]

    def __repr__(self):
        return "Reply(ok=%r, code=%r, msg=%r, records=%r)" % (self.ok, self.code, self.msg, self.records)


class _Corrupt(Exception):
    pass


class Client:
    """`port` is a device path (opened with pyserial) or an already open
    serial-like object (read/write/in_waiting/reset_input_buffer)."""

    def __init__(self, port, baud=115200, timeout=2.0, retries=3, on_live=None, json_mode: "bool | None" = True):
        if isinstance(port, str):
            import serial   # pyserial; imported here so the module loads without it
            self.ser = serial.Serial(port, baud, timeout=0.05, write_timeout=timeout)
            self._own = True
        else:
            self.ser = port
            self._own = False
        self.port = port if isinstance(port, str) else getattr(port, "port", "?")
        self.timeout = timeout
        self.retries = retries
        self.on_live = on_live
        self.json_mode = json_mode
        self._buf = bytearray()
        self._synced = False
        # counters (tests and `rbmeter ... -v`)
        self.crc_errors = 0
        self.timeouts = 0
        self.resends = 0
        self.bad_cmd_crc = 0
        # session (AUTH): key, last counter used, the secret to re-authenticate
        self._ks = None
        self._n = 0
        self._secret = None
        self._node_id = None

    # -- lifecycle -------------------------------------------------------------------
    def close(self):
        if self._own:
            try:
                self.ser.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- raw line I/O ---------------------------------------------------------------
    def _write(self, data):
        self.ser.write(data)

    def _readline(self, deadline):
        """One line (terminator stripped, bytes) or None at the deadline.
        Partial data stays buffered for the next call."""
        while True:
            for i, b in enumerate(self._buf):
                if b == 10 or b == 13:
                    line = bytes(self._buf[:i])
                    j = i + 1
                    if b == 13 and j < len(self._buf) and self._buf[j] == 10:
                        j += 1
                    del self._buf[:j]
                    if not line:      # empty line / lone LF of a CRLF split over reads
                        break
                    return line
            else:
                if time.monotonic() >= deadline:
                    return None
                n = getattr(self.ser, "in_waiting", 0) or 1
                data = self.ser.read(n)
                if data:
                    self._buf += data
                continue

    def drain(self, quiet=0.05, limit=1.0):
        """Discards input until the line has been quiet for `quiet` s."""
        end = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < end:
            n = getattr(self.ser, "in_waiting", 0)
            data = self.ser.read(n or 1)
            if data:
                last = time.monotonic()
            elif time.monotonic() - last >= quiet:
                break
        self._buf = bytearray()

    def _skip_pending(self):
        """Before a command: complete lines already received are not replies
        to it (another client's on a shared line, or late ones): LIVE lines go
        to on_live, the rest is dropped. A partial line stays buffered."""
        n = getattr(self.ser, "in_waiting", 0)
        if n:
            self._buf += self.ser.read(n)
        buf = self._buf
        while True:
            i = -1
            for j, b in enumerate(buf):
                if b == 10 or b == 13:
                    i = j
                    break
            if i < 0:
                return
            line = bytes(buf[:i])
            del buf[:i + 1]
            if not line:
                continue
            try:
                obj = self._decode(line)
            except _Corrupt:
                continue
            if obj.get("t") == "live" and self.on_live:
                self.on_live(obj)

    def sync(self):
        """Known state: a fresh line (ends any partial command), JSON mode on
        (or off; json_mode None: a shared console, whose mode is not touched)."""
        if self.json_mode is None:
            self.drain()
            self._synced = True
            return
        self._write(b"\r\n")
        self.drain()
        mode = b"JSON ON\r\n" if self.json_mode else b"JSON OFF\r\n"
        last = None
        for attempt in range(self.retries + 1):
            self._write(mode)
            try:
                r = self._read_reply(time.monotonic() + self.timeout)
                if r.ok:
                    self._synced = True
                    if attempt:
                        # a node that was busy (booting) may still answer the earlier tries:
                        # those late OKs must not pass for the next command's reply
                        self.drain(quiet=0.3, limit=2.0)
                    return
                last = ClientError("JSON mode refused: %s" % r.msg)
            except _Corrupt as e:
                last = ClientError(str(e))
            self.drain()
        raise ClientError("no answer from node on %s (%s)" % (self.port, last))

    # -- reply parsing --------------------------------------------------------------
    def _decode(self, line):
        """-> dict (JSON mode: verified object; text mode: record or status;
        json_mode None: whichever the line is, the mode is left as it is)."""
        if self.json_mode or (self.json_mode is None and line.startswith(b"{")):
            payload = unseal(line)
            if payload is None:
                self.crc_errors += 1
                raise _Corrupt("bad checksum: %r" % line[:60])
            try:
                obj = json.loads(payload.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise _Corrupt("not JSON: %r" % line[:60])
            if not isinstance(obj, dict):
                raise _Corrupt("not an object: %r" % line[:60])
            return obj
        text = line.decode("utf-8", "replace")
        if text == "OK" or text.startswith("OK "):
            return {"ok": True, "msg": text[3:] or None}
        if text.startswith("ERR "):
            parts = text.split(" ", 2)
            try:
                code = int(parts[1])
            except (ValueError, IndexError):
                code = 0
            return {"ok": False, "err": code, "msg": parts[2] if len(parts) > 2 else ""}
        return parse_text_record(text)

    def _read_reply(self, deadline):
        records = []
        lines = []
        corrupt = None
        while True:
            line = self._readline(deadline)
            if line is None:
                if corrupt:
                    raise _Corrupt(corrupt)
                self.timeouts += 1
                raise _Corrupt("timeout")
            try:
                obj = self._decode(line)
            except _Corrupt as e:
                # keep reading so the rest of this reply is consumed; give up
                # shortly after the line goes quiet
                corrupt = str(e)
                deadline = min(deadline, time.monotonic() + 0.3)
                continue
            if "ok" in obj and "t" not in obj:
                if corrupt:
                    raise _Corrupt(corrupt)
                return Reply(bool(obj["ok"]), records, obj.get("err", 0), obj.get("msg"), lines)
            if obj.get("t") == "live":
                if self.on_live:
                    self.on_live(obj)
                continue
            records.append(obj)
            lines.append(line.decode("utf-8", "replace"))

    # -- commands -------------------------------------------------------------------
    def command(self, text, check=True, retries=None, timeout=None):
        """Sends one command line; returns its Reply. Raises NodeError on ERR
        (if check) and ClientError when no intact reply came after retries."""
        check_value(text)
        if not self._synced:
            self.sync()
        retries = self.retries if retries is None else retries
        timeout = self.timeout if timeout is None else timeout
        data = seal(text) if self.json_mode is True else text.encode()
        last = None
        for attempt in range(retries + 1):
            if attempt:
                self.resends += 1
                self.drain()
            elif self.json_mode is None:
                self.drain(quiet=0.02)     # shared console: drop late replies to earlier tries
            else:
                self._skip_pending()       # someone else's replies on a shared line
            self._write(data + b"\r\n")
            try:
                r = self._read_reply(time.monotonic() + timeout)
            except _Corrupt as e:
                last = str(e)
                continue
            if not r.ok and r.code == 400 and r.msg == "bad checksum":
                self.bad_cmd_crc += 1          # our command was damaged on the way
                last = "node saw a bad checksum"
                continue
            if check and not r.ok:
                raise NodeError(r.code, r.msg)
            return r
        raise ClientError("%s: no intact reply after %d tries (%s)" % (text.split()[0], retries + 1, last))

    def info(self):
        """{"node": {...}, "modules": [...]} as sent by the node."""
        r = self.command("INFO")
        nodes = r.of("node")
        node = dict(nodes[0]) if nodes else {}
        node.pop("t", None)
        mods = []
        for m in r.of("module"):
            m = dict(m)
            m.pop("t", None)
            mods.append(m)
        return {"node": node, "modules": mods}

    def channels(self, module=None, ch=None):
        """Per-channel dicts: module, ch, import_mwh, export_mwh, gap_ms, p_mw, ..."""
        cmd = "READ"
        if module is not None:
            cmd += " " + module
            if ch is not None:
                cmd += " %d" % ch
        out = []
        for rec in self.command(cmd).of("ch"):
            out.append(norm_channel(rec))
        return out

    def status(self):
        st = {}
        for rec in self.command("STATUS").of("status"):
            for k, v in rec.items():
                if k != "t":
                    st[k] = v
        return st

    def config(self):
        cfg = {}
        for rec in self.command("CONFIG").of("config"):
            for k, v in rec.items():
                if k != "t":
                    cfg[k] = v
        return cfg

    def save(self):
        """Signed SAVE: the node commits unsaved energy (needs auth() first)."""
        return self.signed("SAVE").msg

    def node_id(self):
        if self._node_id is None:
            self._node_id = str(self.info()["node"].get("id") or "")
        return self._node_id

    def auth(self, secret):
        """Challenge-response login: AUTH -> nonce; AUTH <nonce> <answer>.
        The secret is only used here to answer and to derive the session
        key. Raises AuthError on a refused answer. Tolerates other traffic on
        the line (any open challenge will do; foreign replies are skipped)."""
        if not secret:
            raise AuthError(403, "empty secret")
        nid = self.node_id()
        last = None
        for _ in range(self.retries + 1):
            r = self.command("AUTH", check=False)
            if not r.ok:
                if r.code == 403 and "no secret" in (r.msg or ""):
                    raise AuthError(r.code, r.msg)
                last = NodeError(r.code, r.msg)
                continue
            n = r.of("nonce")
            nonce = n[0].get("nonce") if n else None
            if not nonce:
                last = AuthError(0, "no nonce in reply")
                continue
            try:
                # no blind resend: the challenge is single use; retry the whole exchange
                r = self.command("AUTH %s %s" % (nonce, auth_answer(secret, nid, nonce)),
                                 check=False, retries=0)
                if not (r.ok and r.msg == "authenticated"):
                    r = self._more_replies(r, 0.4)
            except ClientError as e:
                last = e
                continue
            if r.ok and r.msg == "authenticated":
                self._ks = session_key(secret, nid, nonce)
                self._n = 0
                self._secret = secret
                return r.msg
            last = AuthError(r.code, r.msg)
        if isinstance(last, NodeError):
            raise AuthError(last.code, last.msg)
        raise ClientError("AUTH: no intact exchange (%s)" % last)

    def _later_reply(self, r, wait, mine, last=True):
        """On a shared line the reply just read may be another client's: read
        on for up to `wait` s and return the first reply `mine` accepts;
        failing that the last one read (last=True) or r itself."""
        end = time.monotonic() + wait
        got = r
        while time.monotonic() < end:
            try:
                nxt = self._read_reply(end)
            except _Corrupt:
                break
            if mine(nxt):
                return nxt
            got = nxt
        return got if last else r

    def _more_replies(self, r, wait):
        """An AUTH answer's own reply may follow someone else's (a failed
        answer's reply is held back ~100 ms)."""
        return self._later_reply(r, wait, lambda x: x.ok and x.msg == "authenticated")

    def _own_reply(self, r, wait=0.3):
        """A signed command's reply has no data records (an AUTH's NONCE
        does), and an error may be another client's held-back AUTH failure:
        then wait briefly for ours."""
        if not r.records and r.ok:
            return r
        return self._later_reply(r, wait, lambda x: not x.records, last=False)

    def signed(self, text):
        """Sends a mutating command signed with the session key, a fresh
        counter per try (a resend is never a replay). On ERR 401 the session
        is renewed (when the secret is known) and the command signed again."""
        check_value(text)
        if self._ks is None:
            if self._secret is None:
                raise AuthError(401, "not authenticated (call auth() first)")
            self.auth(self._secret)
        last = None
        for _ in range(self.retries + 1):
            self._n += 1
            try:
                r = self.command(sign(self._ks, self._n, text), check=False, retries=0)
                r = self._own_reply(r)
            except ClientError as e:
                last = e
                continue
            if r.ok:
                return r
            last = NodeError(r.code, r.msg)
            if r.code == 401 and self._secret is not None:
                self._ks = None
                self.auth(self._secret)
            elif r.code != 503:
                break                         # the node's answer about this command
        if isinstance(last, NodeError):
            if last.code == 401:
                raise AuthError(last.code, last.msg)
            raise last
        raise ClientError("%s: no intact reply (%s)" % (text.split()[0], last))

    def logout(self):
        """Ends the session (signed while one is open); never raises."""
        ks = self._ks
        self._ks = None
        self._secret = None
        try:
            if ks is not None:
                self._n += 1
                self.command(sign(ks, self._n, "LOGOUT"), check=False, retries=1)
            else:
                self.command("LOGOUT", check=False, retries=1)
        except (ClientError, NodeError, OSError, ValueError):
            pass

    def set(self, key, value):
        check_value(key)
        check_value(value)
        return self.signed("SET %s %s" % (key, value)).msg

    def preset(self, module, ch, import_mwh, export_mwh):
        self.signed("PRESET %s %d %s %s" % (module, ch, fmt_kwh(import_mwh), fmt_kwh(export_mwh)))

    def reset(self, scope, module=None, ch=None):
        cmd = "RESET " + scope.upper()
        if module is not None:
            cmd += " " + module
            if ch is not None:
                cmd += " %d" % ch
        self.signed(cmd)

    def reboot(self):
        self.signed("REBOOT")

    def change_key(self, new_secret):
        """KEY: the new secret (16..64 bytes) XOR the key/1 keystream for the
        counter the command is signed with; it never crosses the link in clear."""
        if not 16 <= len(new_secret) <= 64:
            raise ValueError("a secret is 16..64 bytes")
        if self._ks is None:
            raise AuthError(401, "not authenticated (call auth() first)")
        for _ in range(self.retries + 1):
            self._n += 1
            n = self._n
            ct = bytes(a ^ b for a, b in zip(new_secret, key_pad(self._ks, n, len(new_secret))))
            try:
                r = self.command(sign(self._ks, n, "KEY " + ct.hex()), check=False, retries=0)
            except ClientError:
                continue
            if r.ok:
                self._secret = new_secret
                return r.msg
            if r.code == 401:
                raise AuthError(r.code, r.msg)
            raise NodeError(r.code, r.msg)
        raise ClientError("KEY: no intact reply")

    def audit(self, n=10):
        out = []
        for rec in self.command("AUDIT %d" % n).of("audit"):
            rec = dict(rec)
            rec.pop("t", None)
            out.append(rec)
        return out

    def live(self, period_ms, on_live, stop, poll=0.1):
        """Streams LIVE records to on_live(dict) until stop() is true."""
        old = self.on_live
        self.on_live = on_live
        try:
            r = self.command("LIVE %d" % period_ms)
            self.live_ms = period_ms
            if r.msg and r.msg.startswith("live_ms="):
                self.live_ms = int(r.msg[8:])     # the node's clamped period
            while not stop():
                line = self._readline(time.monotonic() + poll)
                if line is None:
                    continue
                try:
                    obj = self._decode(line)
                except _Corrupt:
                    continue
                if obj.get("t") == "live":
                    on_live(obj)
        finally:
            try:
                self.command("LIVE OFF")
            finally:
                self.on_live = old

    # -- IEC 62056-21 ---------------------------------------------------------------
    def iec_readout(self, address="", timeout=5.0, ack=True):
        """Mode C readout on this connection (no baud switch on a pty/USB link).
        Returns (identification line, [(obis, value, unit)], raw block bytes)."""
        self.drain()
        self._write(b"/?" + address.encode() + b"!\r\n")
        deadline = time.monotonic() + timeout
        ident = None
        while ident is None:
            line = self._readline(deadline)
            if line is None:
                raise ClientError("IEC: no identification")
            if line.startswith(b"/"):
                ident = line.decode("ascii", "replace")
        if ack:
            baud = ident[4] if len(ident) > 4 else "0"
            self._write(b"\x060" + baud.encode() + b"0\r\n")   # protocol 0, same baud, readout
        raw = self._read_block(deadline)
        return ident, parse_iec_block(raw), raw

    def _read_block(self, deadline):
        buf = self._buf
        start = -1
        while True:
            if start < 0:
                start = buf.find(b"\x02")
            if start >= 0:
                end = buf.find(b"\x03", start)
                if end >= 0 and len(buf) > end + 1:
                    raw = bytes(buf[start:end + 2])
                    del buf[:end + 2]
                    if bcc(raw[1:-1]) != raw[-1]:
                        raise ClientError("IEC: bad BCC")
                    return raw
            if time.monotonic() >= deadline:
                raise ClientError("IEC: no data block")
            data = self.ser.read(getattr(self.ser, "in_waiting", 0) or 1)
            if data:
                buf += data


def _fixed(text, places):
    """Signed exact decimal string -> int scaled by 10**places (None for None)."""
    if text is None:
        return None
    t = str(text).strip()
    neg = t.startswith("-")
    ip, _, fp = t.lstrip("+-").partition(".")
    v = int(ip or "0") * 10 ** places + int((fp + "0" * places)[:places] or "0")
    return -v if neg else v


def norm_channel(rec):
    """A `ch` record from either mode -> dict with int import_mwh, export_mwh,
    gap_ms, p_mw (None if invalid) and int ch (text mode only has strings)."""
    c = dict(rec)
    c.pop("t", None)
    if "import_mwh" not in c:
        c["import_mwh"] = _fixed(c.get("import_kwh", "0"), 6)
        c["export_mwh"] = _fixed(c.get("export_kwh", "0"), 6)
        c["gap_ms"] = _fixed(c.get("gap_s", "0"), 3)
        c["p_mw"] = _fixed(c.get("p_w"), 3)
    try:
        c["ch"] = int(c.get("ch", 0))
    except (TypeError, ValueError):
        pass
    if isinstance(c.get("enabled"), str):
        c["enabled"] = c["enabled"] != "false"
    return c


def bcc(data):
    acc = 0
    for b in data:
        acc ^= b
    return acc & 0x7F


def parse_iec_block(raw):
    """STX lines ! CRLF ETX BCC -> [(obis, value, unit)]."""
    body = raw[1:-2].decode("ascii", "replace")
    out = []
    for line in body.split("\r\n"):
        line = line.strip()
        if not line or line == "!":
            continue
        i = line.find("(")
        if i < 0 or not line.endswith(")"):
            continue
        code = line[:i]
        val = line[i + 1:-1]
        unit = ""
        if "*" in val:
            val, unit = val.split("*", 1)
        out.append((code, val, unit))
    return out


def fmt_kwh(mwh):
    k, m = divmod(int(mwh), 1000000)
    return "%d.%06d" % (k, m)


def parse_kwh(text):
    """Exact decimal kWh string -> mWh int (max 6 decimals, no floats)."""
    s = text.strip()
    if not s or s.startswith("-"):
        raise ValueError("kWh must be a non-negative decimal")
    ip, _, fp = s.partition(".")
    if not (ip or fp) or not (ip + fp).isdigit() or len(fp) > 6:
        raise ValueError("kWh: up to 6 decimals, digits only: %r" % text)
    return int(ip or "0") * 1000000 + int((fp + "000000")[:6])
