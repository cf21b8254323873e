import mptest
from proto import crc, num


def test_check_value():
    assert crc.crc16(b"123456789") == 0x29B1      # CRC-16/CCITT-FALSE catalogue check
    assert crc.crc16("123456789") == 0x29B1
    assert crc.crc16(b"") == 0xFFFF
    assert crc.crc16(b"A") == 0xB915


def test_incremental():
    assert crc.crc16(b"6789", crc.crc16(b"12345")) == 0x29B1


def test_seal_verify():
    s = crc.seal(b'{"ok":true}')
    assert s == b'{"ok":true}*9D13'          # value computed by an independent host implementation
    assert crc.verify(s) == b'{"ok":true}'
    assert crc.verify(s + b"\r\n") == b'{"ok":true}'
    assert crc.verify(b'{"ok":tru3}*9D13') is None
    assert crc.verify(b'{"ok":true}*9D14') is None
    assert crc.verify(b"no suffix") is None
    assert crc.verify(b"*12G4") is None
    assert crc.verify(b"") is None
    assert crc.seal(b"") == b"*FFFF"
    assert crc.verify(b"*FFFF") == b""
    assert crc.suffix(0x0A0B) == b"*0A0B"


def test_lowercase_hex_accepted():
    s = crc.seal(b"abc")
    t = s[:-4] + s[-4:].lower()
    assert crc.verify(t) == b"abc"


def test_every_single_bit_flip_detected():
    s = bytearray(crc.seal(b'{"t":"ch","import_kwh":"123.456789"}'))
    for i in range(len(s)):
        for bit in range(8):
            t = bytearray(s)
            t[i] ^= 1 << bit
            assert crc.verify(bytes(t)) is None, (i, bit)


def test_fmt_fixed():
    assert num.fmt_kwh(0) == "0.000000"
    assert num.fmt_kwh(1) == "0.000001"
    assert num.fmt_kwh(-1) == "-0.000001"
    assert num.fmt_kwh(123456789) == "123.456789"
    assert num.fmt_kwh(10 ** 15) == "1000000000.000000"
    assert num.fmt_fixed(-800123, 3) == "-800.123"
    assert num.fmt_fixed(5, 3) == "0.005"


def test_parse_fixed():
    p = num.parse_fixed
    assert p("1.5", 6) == 1500000
    assert p("0.000001", 6) == 1
    assert p("123", 6) == 123000000
    assert p(".5", 6) == 500000
    assert p("5.", 6) == 5000000
    assert p("+2", 3) == 2000
    assert p("0001000000000", 6) == 10 ** 15
    assert p("-1.5", 3, signed=True) == -1500
    for bad in ("", "-1", "1.0000001", "1e3", "1,5", ".", "+", "1.2.3", " 1", "0x10", "12345678901", "nan", "inf"):
        mptest.raises(ValueError, p, bad, 6)


def test_roundtrip():
    r = mptest.Rng(3)
    for _ in range(300):
        v = r.u32() * r.below(1000)
        assert num.parse_fixed(num.fmt_kwh(v), 6, 12) == v
