"""Binary totals for apps (docs/ble.md): one 20-byte frame per channel, so
a frame fits one notification at the minimum ATT MTU (23). Little-endian:

  0  u8   version (1)
  1  u8   module I2C address
  2  u8   channel
  3  u8   flags: bit0 power valid, bit1 channel enabled, bit7 last channel
  4  u40  import, mWh
  9  u40  export, mWh
  14 s32  power, mW (0 when not valid)
  18 u16  CRC-16/CCITT-FALSE of bytes 0..17 (the console's *XXXX checksum)

A read returns all frames back to back; a notification carries one frame."""
from proto import crc as _crc

try:
    from micropython import const
except ImportError:
    def const(__x):
        return __x

VERSION = const(1)
SIZE = const(20)
F_POWER = const(1)
F_ENABLED = const(2)
F_LAST = const(0x80)
_U40 = const(0xFFFFFFFFFF)


def _put(b, i, v, n):
    for k in range(n):
        b[i + k] = (v >> (8 * k)) & 0xFF


def pack_into(b, off, addr, ch, import_mwh, export_mwh, p_mw, enabled=True, last=False):
    """Writes one frame at b[off:off + 20] (no allocation beyond big ints)."""
    b[off] = VERSION
    b[off + 1] = addr & 0xFF
    b[off + 2] = ch & 0xFF
    fl = 0
    if p_mw is not None:
        fl |= F_POWER
    if enabled:
        fl |= F_ENABLED
    if last:
        fl |= F_LAST
    b[off + 3] = fl
    _put(b, off + 4, min(max(import_mwh, 0), _U40), 5)
    _put(b, off + 9, min(max(export_mwh, 0), _U40), 5)
    p = 0 if p_mw is None else max(-0x7FFFFFFF, min(0x7FFFFFFF, p_mw))
    _put(b, off + 14, p & 0xFFFFFFFF, 4)
    c = _crc.crc16(memoryview(b)[off:off + 18])
    b[off + 18] = c & 0xFF
    b[off + 19] = c >> 8


def pack(channels):
    """All channels (node.channels() dicts) -> bytes of len 20 * n."""
    n = len(channels)
    b = bytearray(SIZE * n)
    for i in range(n):
        c = channels[i]
        a = c.get("module")
        pack_into(b, SIZE * i, int(a, 16) if isinstance(a, str) else int(a or 0), c.get("ch", 0),
                  c.get("import_mwh", 0), c.get("export_mwh", 0), c.get("p_mw"),
                  c.get("enabled", True), i == n - 1)
    return bytes(b)


def unpack(frame):
    """One frame -> dict (raises ValueError on a bad version, size or CRC)."""
    if len(frame) != SIZE:
        raise ValueError("frame size")
    if frame[0] != VERSION:
        raise ValueError("version")
    c = _crc.crc16(bytes(frame[:18]))
    if frame[18] | (frame[19] << 8) != c:
        raise ValueError("crc")

    def get(i, n):
        v = 0
        for k in range(n):
            v |= frame[i + k] << (8 * k)
        return v
    p = get(14, 4)
    if p & 0x80000000:
        p -= 1 << 32
    fl = frame[3]
    return {"module": "0x%02x" % frame[1], "ch": frame[2], "import_mwh": get(4, 5),
            "export_mwh": get(9, 5), "p_mw": p if fl & F_POWER else None,
            "enabled": bool(fl & F_ENABLED), "last": bool(fl & F_LAST)}
