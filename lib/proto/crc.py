"""CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout)
for the `*XXXX` suffix of JSON lines. Pure: hosts (rbmeter) import it too."""
try:
    from micropython import const
except ImportError:  # CPython
    def const(__x):
        return __x

_MASK = const(0xFFFF)
# one entry per nibble: small table, two lookups per byte
_T = (0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50A5, 0x60C6, 0x70E7,
      0x8108, 0x9129, 0xA14A, 0xB16B, 0xC18C, 0xD1AD, 0xE1CE, 0xF1EF)
_HEX = b"0123456789ABCDEF"


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of bytes (str is encoded as ASCII). crc16(b"123456789") == 0x29B1."""
    if isinstance(data, str):
        data = data.encode()
    t = _T
    for b in data:
        crc = ((crc << 4) & _MASK) ^ t[((crc >> 12) ^ (b >> 4)) & 15]
        crc = ((crc << 4) & _MASK) ^ t[((crc >> 12) ^ b) & 15]
    return crc


def suffix(crc):
    """b'*XXXX' (upper-case hex) for a CRC value."""
    h = _HEX
    return bytes((42, h[(crc >> 12) & 15], h[(crc >> 8) & 15], h[(crc >> 4) & 15], h[crc & 15]))


def seal(payload):
    """payload + b'*XXXX' (no line terminator)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return bytes(payload) + suffix(crc16(payload))


def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    c |= 32  # lower-case
    if 97 <= c <= 102:
        return c - 87
    return -1


def verify(line):
    """Checks a sealed line (trailing CR/LF ignored, hex case-insensitive).
    Returns the payload bytes before '*', or None if the suffix is missing or wrong."""
    if isinstance(line, str):
        line = line.encode()
    n = len(line)
    while n and line[n - 1] in (10, 13):
        n -= 1
    if n < 5 or line[n - 5] != 42:
        return None
    v = 0
    for i in range(n - 4, n):
        d = _hexval(line[i])
        if d < 0:
            return None
        v = (v << 4) | d
    payload = bytes(line[:n - 5])
    return payload if crc16(payload) == v else None
