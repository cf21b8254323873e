"""IEC 62056-21 mode C pieces: request/ACK parsing, identification line,
readout data block with BCC. Pure; the engine does the timing."""

STX = b"\x02"
ETX = b"\x03"
ACK = 6
CRLF = b"\r\n"
BAUD_CHARS = "0123456"        # mode C: 300 .. 19200 Bd


def parse_request(line):
    """b'/?ADDR!' -> 'ADDR' ('' without address); None if not a request."""
    n = len(line)
    if n < 3 or line[0] != 47 or line[1] != 63 or line[n - 1] != 33:
        return None
    if n - 3 > 32:
        return None
    for i in range(2, n - 1):
        c = line[i]
        if c < 33 or c > 126 or c in (47, 33, 63):
            return None
    return line[2:n - 1].decode()


def parse_ack(line):
    """b'\\x06' + protocol + baud + mode -> (protocol, baud, mode) chars, or None."""
    if len(line) != 4 or line[0] != ACK:
        return None
    for i in (1, 2, 3):
        if not 48 <= line[i] <= 57:
            return None
    return chr(line[1]), chr(line[2]), chr(line[3])


def ident_line(mfr, baud_char, ident):
    """'/' + 3-letter manufacturer (3rd upper-case = 200 ms reaction time)
    + baud char + identification (max 16 printable chars) + CR LF."""
    return ("/" + mfr + baud_char + ident[:16] + "\r\n").encode()


def bcc(data, acc=0):
    """XOR block check character, running (7-bit data)."""
    for b in data:
        acc ^= b
    return acc & 0x7F


def clean_id(s, n=16):
    """Keeps characters allowed in an identification / data value."""
    out = ""
    for c in s:
        if "!" < c <= "~" and c not in "/!()*":
            out += c
    return out[:n]


def power_kw(p_mw):
    """Signed mW -> kW with 3 decimals (W resolution, truncated toward zero)."""
    w = p_mw // 1000 if p_mw >= 0 else -((-p_mw) // 1000)
    s = str(-w if w < 0 else w)
    if len(s) < 4:
        s = "0" * (4 - len(s)) + s
    s = s[:-3] + "." + s[-3:]
    if len(s) < 7:                 # 000.000 fixed width like the energy values
        s = "0" * (7 - len(s)) + s
    return "-" + s if w < 0 else s


def energy_kwh(mwh):
    """mWh -> kWh '000123.456789' (>= 6 integer digits, 6 decimals, exact)."""
    s = str(mwh if mwh >= 0 else 0)
    if len(s) < 12:
        s = "0" * (12 - len(s)) + s
    return s[:-6] + "." + s[-6:]


def data_lines(node_id, chans):
    """Yields the data lines (no CR LF) of the readout: C.1.0 id, then per
    channel k (1-based in node.channels() order) 1-k:1.8.0 import,
    1-k:2.8.0 export (kWh) and 1-k:16.7.0 signed power (kW)."""
    yield "C.1.0(" + clean_id(node_id) + ")"
    k = 0
    for c in chans:
        k += 1
        b = "1-%d:" % k
        yield b + "1.8.0(" + energy_kwh(c.get("import_mwh", 0)) + "*kWh)"
        yield b + "2.8.0(" + energy_kwh(c.get("export_mwh", 0)) + "*kWh)"
        p = c.get("p_mw")
        if p is not None:
            yield b + "16.7.0(" + power_kw(p) + "*kW)"


def write_block(write, lines):
    """Writes STX, the lines (CR LF each), '!' CR LF, ETX, BCC: one write
    per line so no large buffer is built. Returns the BCC."""
    acc = 0
    first = True
    for s in lines:
        b = s.encode() + CRLF
        acc = bcc(b, acc)
        write(STX + b if first else b)
        first = False
    tail = b"!\r\n" + ETX
    acc = bcc(tail, acc)
    write((STX if first else b"") + tail + bytes((acc,)))
    return acc
