"""Journal record: identity + per-channel int tuples, sequence-numbered and
CRC32-checked. Pure functions, no I/O.

Layout (little-endian):
  0  magic b"\\xb5J"      2  u16 total length incl. CRC   4  u8 version
  5  u32 seq              9  u8 kind                     10 u8 uid length, uid
     u8 addr, varint n + n zigzag ints (store meta counters)
     varint nch, per channel: u8 ch, varint n + n zigzag ints (engine state)
     u8 event code, if non-zero: u8 ch, varint n + n zigzag ints (audit)
  end-4  u32 crc32 over everything before it
Varints keep typical records well under LittleFS's inline-file limit."""
import binascii

try:
    from micropython import const
except ImportError:
    def const(__x):
        return __x

MAGIC0 = const(0xB5)
MAGIC1 = const(0x4A)
VERSION = const(1)
HDR = const(10)
MAXLEN = const(0xFFFF)

# record kinds (why the commit happened)
K_PERIODIC = const(0)
K_SHUTDOWN = const(1)
K_PRESET = const(2)
K_RESET = const(3)
K_RECOVER = const(4)
K_POWERFAIL = const(5)
K_COMMAND = const(6)
K_MAXAGE = const(7)
KIND_NAMES = ("periodic", "shutdown", "preset", "reset", "recover", "powerfail", "command", "maxage")

# event codes for the audit entry
EV_NONE = const(0)
EV_PRESET = const(1)
EV_RESET = const(2)


class Record:
    def __init__(self, seq, kind, uid, addr, meta, chans, event=None):
        self.seq = seq          # u32, per-module journal sequence
        self.kind = kind
        self.uid = uid          # bytes (b"" if the module has none)
        self.addr = addr
        self.meta = meta        # tuple of ints (store counters)
        self.chans = chans      # list of (ch, tuple of ints)
        self.event = event      # None or (code, ch, tuple of ints)

    def chan(self, ch):
        for c, t in self.chans:
            if c == ch:
                return t
        return None


def put_varint(out, v):
    # zigzag: small negative and positive values both stay short
    z = v * 2 if v >= 0 else -v * 2 - 1
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def get_varint(b, i, n=None):
    """(value, next index) of the zigzag varint at b[i:]; n bounds the read
    (default len(b)). ValueError when it runs past n or is too long."""
    z = 0
    sh = 0
    if n is None:
        n = len(b)
    while True:
        if i >= n or sh > 70:
            raise ValueError("varint")
        c = b[i]
        i += 1
        z |= (c & 0x7F) << sh
        sh += 7
        if c < 0x80:
            break
    v = (z >> 1) if not (z & 1) else -((z + 1) >> 1)
    return v, i


def _put_ints(out, vals):
    put_varint(out, len(vals))
    for v in vals:
        put_varint(out, v)


def _get_ints(b, i):
    n, i = get_varint(b, i)
    if n < 0 or n > 64:
        raise ValueError("count")
    vals = []
    for _ in range(n):
        v, i = get_varint(b, i)
        vals.append(v)
    return tuple(vals), i


def encode(rec):
    out = bytearray(b"\xb5J\x00\x00")
    out.append(VERSION)
    s = rec.seq & 0xFFFFFFFF
    out.extend(bytes((s & 0xFF, (s >> 8) & 0xFF, (s >> 16) & 0xFF, (s >> 24) & 0xFF)))
    out.append(rec.kind & 0xFF)
    uid = rec.uid or b""
    out.append(len(uid))
    out.extend(uid)
    out.append(rec.addr & 0xFF)
    _put_ints(out, rec.meta)
    put_varint(out, len(rec.chans))
    for ch, vals in rec.chans:
        out.append(ch & 0xFF)
        _put_ints(out, vals)
    ev = rec.event
    if ev is None:
        out.append(EV_NONE)
    else:
        out.append(ev[0] & 0xFF)
        out.append(ev[1] & 0xFF)
        _put_ints(out, ev[2])
    n = len(out) + 4
    if n > MAXLEN:
        raise ValueError("record too long")
    out[2] = n & 0xFF
    out[3] = n >> 8
    c = binascii.crc32(out) & 0xFFFFFFFF
    out.extend(bytes((c & 0xFF, (c >> 8) & 0xFF, (c >> 16) & 0xFF, (c >> 24) & 0xFF)))
    return bytes(out)


def _u32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


def frame_len(b, i=0):
    """Length of a well-framed record starting at b[i] (magic, length and
    CRC good), else 0. Used to scan logs and to validate files."""
    if len(b) - i < HDR + 8 or b[i] != MAGIC0 or b[i + 1] != MAGIC1:
        return 0
    n = b[i + 2] | (b[i + 3] << 8)
    if n < HDR + 8 or i + n > len(b):
        return 0
    mv = memoryview(b)
    if (binascii.crc32(mv[i:i + n - 4]) & 0xFFFFFFFF) != _u32(b, i + n - 4):
        return 0
    return n


def decode(b, i=0):
    """Decode one record at b[i]; raises ValueError on any damage."""
    n = frame_len(b, i)
    if not n:
        raise ValueError("bad frame or CRC")
    end = i + n - 4
    if b[i + 4] != VERSION:
        raise ValueError("version %d" % b[i + 4])
    seq = _u32(b, i + 5)
    kind = b[i + 9]
    j = i + HDR
    ul = b[j]
    uid = bytes(b[j + 1:j + 1 + ul])
    j += 1 + ul
    addr = b[j]
    j += 1
    meta, j = _get_ints(b, j)
    nch, j = get_varint(b, j)
    if nch < 0 or nch > 64:
        raise ValueError("nch")
    chans = []
    for _ in range(nch):
        ch = b[j]
        vals, j = _get_ints(b, j + 1)
        chans.append((ch, vals))
    code = b[j]
    j += 1
    ev = None
    if code != EV_NONE:
        ch = b[j]
        vals, j = _get_ints(b, j + 1)
        ev = (code, ch, vals)
    if j != end:
        raise ValueError("length mismatch")
    return Record(seq, kind, uid, addr, meta, chans, ev)
