"""IEC 62056-21 against the PyPI client (iec62056-21): its message parsers on
our frames, and a full standard_readout() through a transport that behaves
like its SerialTransport (discards input when it 'reopens' the port 0.5 s
after its post-ACK rest), with the engine polled by a background thread in
real time like the node's loop."""
import threading
import time

import pytest
from iec62056_21 import messages, transports
from iec62056_21.client import Iec6205621Client

from clock import Ticks
from proto import engine as eng_mod
from test_proto_fake import Rig, FakeNode
import proto


def _frames():
    r = Rig()
    r.send("/?!\r\n")
    ident = r.step(eng_mod.IEC_IDENT_MS)
    r.send(b"\x06050\r\n")
    block = r.step(eng_mod.IEC_DELAY_MS)
    return ident, block


def test_identification_parsed_by_client():
    ident, _ = _frames()
    msg = messages.IdentificationMessage.from_bytes(ident)
    assert msg.manufacturer == "RBM"
    assert msg.switchover_baudrate_char == "5"
    assert msg.identification == "N0001"       # the client skips the char after the baud char
    assert not msg.manufacturer[-1].islower()   # 200 ms reaction time class


def test_data_block_parsed_by_client():
    _, block = _frames()
    ans = messages.AnswerDataMessage.from_bytes(block)   # raises on a bad BCC
    got = {(d.address, d.value, d.unit) for d in ans.data}
    assert ("C.1.0", "N0001", None) in got
    assert ("1-1:1.8.0", "000123.456789", "kWh") in got
    assert ("1-1:2.8.0", "000000.001000", "kWh") in got
    assert ("1-1:16.7.0", "001.500", "kW") in got
    assert ("1-2:2.8.0", "2000000.000001", "kWh") in got
    assert ("1-2:16.7.0", "-000.800", "kW") in got
    assert ("1-3:1.8.0", "000000.000005", "kWh") in got
    assert len(ans.data) == 9


def test_corrupted_block_rejected_by_client():
    _, block = _frames()
    bad = bytearray(block)
    bad[20] ^= 0x01
    with pytest.raises(ValueError):
        messages.AnswerDataMessage.from_bytes(bytes(bad))


class _EngineTransport(transports.BaseTransport):
    TRANSPORT_REQUIRES_ADDRESS = False

    def __init__(self, node, timeout=4):
        super().__init__(timeout=timeout)
        self.lock = threading.Lock()
        self.rx = bytearray()
        self.clock = Ticks(source=lambda: int(time.monotonic() * 1000))
        self.eng = proto.Engine(node, self._write, self.clock, lambda n: b"\x00" * n)
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _write(self, b):
        self.rx += b

    def _loop(self):                  # the node's main loop: poll every 5 ms
        while not self.stop:
            with self.lock:
                self.eng.poll(self.clock.ticks_ms())
            time.sleep(0.005)

    def connect(self):
        self.thread.start()

    def disconnect(self):
        self.stop = True
        self.thread.join()

    def _send(self, data):
        with self.lock:
            self.eng.feed(data, self.clock.ticks_ms())

    def _recv(self, chars=1):
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            with self.lock:
                if len(self.rx) >= chars:
                    b = bytes(self.rx[:chars])
                    del self.rx[:chars]
                    return b
            time.sleep(0.002)
        return b""

    def switch_baudrate(self, baud):
        # like SerialTransport: sleep 0.5 s, then a new port object (pyserial
        # flushes the input on open), so anything sent earlier is lost
        time.sleep(0.5)
        with self.lock:
            self.rx.clear()


def _readout(timeout=4):
    t = _EngineTransport(FakeNode(), timeout)
    c = Iec6205621Client(t)
    c.connect()
    try:
        return c.standard_readout(), c
    finally:
        c.disconnect()


def test_standard_readout_with_real_client():
    ans, client = _readout()
    assert client.identification == "N0001" and client.manufacturer_id == "RBM"
    vals = {d.address: d.value for d in ans.data}
    assert vals["1-1:1.8.0"] == "000123.456789"
    assert vals["1-2:16.7.0"] == "-000.800"


def test_too_short_reaction_time_would_lose_the_block(monkeypatch):
    # proves the readout test is sensitive to the timing: with 0.3 s the block
    # is sent while the client is still 'reopening' its port
    monkeypatch.setattr(eng_mod, "IEC_DELAY_MS", 300)
    with pytest.raises(TimeoutError):
        _readout(timeout=1.5)
