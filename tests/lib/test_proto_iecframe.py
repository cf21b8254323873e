"""IEC 62056-21 mode C: request/ident/ACK timing, data block framing, BCC."""
import mptest
from clock import PERIOD
from proto import iec
from proto import engine
from test_proto_fake import Rig


def _split_block(b):
    """Checks STX ... ETX BCC framing; returns the data lines."""
    assert b[0] == 2, b[:4]
    etx = b.index(b"\x03")
    assert etx == len(b) - 2
    want = 0
    for x in b[1:etx + 1]:
        want ^= x
    assert b[-1] == want & 0x7F
    body = b[1:etx].decode()
    assert body.endswith("!\r\n")
    lines = body[:-3].split("\r\n")
    assert lines[-1] == ""
    return lines[:-1]


def test_parse_request():
    assert iec.parse_request(b"/?!") == ""
    assert iec.parse_request(b"/?N0001!") == "N0001"
    assert iec.parse_request(b"/?!x") is None
    assert iec.parse_request(b"?!") is None
    assert iec.parse_request(b"/?a b!") is None
    assert iec.parse_request(b"/?" + b"1" * 33 + b"!") is None
    assert iec.parse_request(b"/?\xff!") is None


def test_parse_ack():
    assert iec.parse_ack(b"\x06050") == ("0", "5", "0")
    assert iec.parse_ack(b"\x06051") == ("0", "5", "1")
    assert iec.parse_ack(b"\x0605") is None
    assert iec.parse_ack(b"0050") is None
    assert iec.parse_ack(b"\x060x0") is None


def test_values():
    assert iec.energy_kwh(123456) == "000000.123456"
    assert iec.energy_kwh(123456789012) == "123456.789012"
    assert iec.energy_kwh(10 ** 15) == "1000000000.000000"
    assert iec.power_kw(1500000) == "001.500"
    assert iec.power_kw(-800123) == "-000.800"
    assert iec.power_kw(-999) == "000.000"
    assert iec.power_kw(50_000_000) == "050.000"
    assert iec.power_kw(-123_456_789) == "-123.456"
    assert iec.clean_id("a/b!c(d)e*f g") == "abcdefg"


def test_bcc_known_frame():
    # STX "1.8.0(1*kWh)" CRLF "!" CRLF ETX: XOR computed by hand-independent route below
    out = []
    acc = iec.write_block(out.append, ["1.8.0(1*kWh)"])
    frame = b"".join(out)
    assert frame[:1] == b"\x02" and frame[-2:-1] == b"\x03" and frame[-1] == acc
    x = 0
    for ch in "1.8.0(1*kWh)\r\n!\r\n\x03":
        x ^= ord(ch)
    assert acc == x
    # empty block still framed
    out = []
    iec.write_block(out.append, [])
    assert b"".join(out)[:5] == b"\x02!\r\n\x03"


def test_readout_with_ack():
    r = Rig(start=PERIOD - 300)             # the exchange crosses the ticks wrap
    assert r.send("/?!\r\n") == []
    assert r.step(engine.IEC_IDENT_MS - 1) == b""
    assert r.step(1) == b"/RBM5-N0001\r\n"
    assert r.eng.poll(r.now()) == engine.IEC_ACK_WAIT_MS
    assert r.send(b"\x06050\r\n") == []
    assert r.step(engine.IEC_DELAY_MS - 1) == b""
    blk = r.step(1)
    lines = _split_block(blk)
    assert lines == [
        "C.1.0(N0001)",
        "1-1:1.8.0(000123.456789*kWh)", "1-1:2.8.0(000000.001000*kWh)", "1-1:16.7.0(001.500*kW)",
        "1-2:1.8.0(000000.000000*kWh)", "1-2:2.8.0(2000000.000001*kWh)", "1-2:16.7.0(-000.800*kW)",
        "1-3:1.8.0(000000.000005*kWh)", "1-3:2.8.0(000000.000000*kWh)",
    ]
    assert r.step(10000) == b""
    assert r.eng.poll(r.now()) is None


def test_readout_without_ack_for_terminal_users():
    r = Rig()
    r.send("/?!\n")
    assert r.step(engine.IEC_IDENT_MS).startswith(b"/RBM5")
    assert r.step(engine.IEC_ACK_WAIT_MS - 1) == b""
    lines = _split_block(r.step(1))
    assert lines[0] == "C.1.0(N0001)" and len(lines) == 9


def test_addressed_request():
    r = Rig()
    r.send("/?N0001!\r\n")
    assert r.step(engine.IEC_IDENT_MS) == b"/RBM5-N0001\r\n"
    r = Rig()
    r.send("/?OTHER!\r\n")             # another meter on the bus: stay silent
    assert r.step(5000) == b""


def test_programming_mode_not_offered():
    r = Rig()
    r.send("/?!\r\n")
    r.step(engine.IEC_IDENT_MS)
    r.send(b"\x06051\r\n")
    assert r.step(5000) == b""


def test_typed_command_cancels_readout_and_live_paused():
    r = Rig()
    r.send("LIVE 200\n")
    r.step(0)
    r.send("/?!\n")
    assert r.eng.live_ms == 0                 # LIVE lines would corrupt the IEC exchange
    r.step(engine.IEC_IDENT_MS)
    assert r.send("LOGOUT\n") == ["OK"]
    assert r.step(5000) == b""


def test_ack_outside_exchange_is_garbage():
    r = Rig()
    assert r.send(b"\x06050\r\n") == ["ERR 400 bad character"]


def test_block_in_json_mode_is_plain_iec():
    r = Rig()
    r.send("JSON ON\n")
    r.send("/?!\r\n")
    assert r.step(engine.IEC_IDENT_MS) == b"/RBM5-N0001\r\n"
    r.send(b"\x06050\r\n")
    assert len(_split_block(r.step(engine.IEC_DELAY_MS))) == 9


def test_broken_node_values_do_not_crash_or_half_send():
    r = Rig()
    r.node.chans[1]["import_mwh"] = None       # TypeError while formatting
    r.send("/?!\n")
    r.step(engine.IEC_IDENT_MS)
    r.send(b"\x06050\n")
    assert r.step(engine.IEC_DELAY_MS) == b""   # nothing rather than a truncated block
    r.send("LIVE 200\n")
    r.node.chans[0]["u_v"] = object()
    r.step(200)                                 # no exception escapes poll
    assert r.send("LOGOUT\n") == ["OK"]
