"""BLE end to end: the sim node on the unix port built with NimBLE (the host
stack ESP32's MicroPython uses) <-> H4 over a pty <-> Bumble controllers on
a virtual link <-> Bumble centrals. Nothing above the radio is mocked.
One node serves the whole module (~4 s to boot); run time ~60 s."""
import asyncio
import os
import random
import shutil
import tempfile
import time

import pytest

import blesign
from ble import totals as btotals
from rbmeter.ble import BleSerial, BumbleCentral, TOT_CHR
from rbmeter.ble_link import BleNode, Radio
from rbmeter.client import Client, NodeError

SECRET = "ble test secret 0123456789"
NODE_ID = "5e1a0001"
pytestmark = pytest.mark.xdist_group("ble")


class Rig:
    def __init__(self):
        self.radio = Radio()
        self.state = tempfile.mkdtemp(prefix="rbm-ble-test-")
        self.node = BleNode(self.radio, self.state, {"auth": {"secret": SECRET}, "modules": [{"addr": 0x50}],
                                                     "ble": {"totals_ms": 500, "bthome_s": 1}})
        self.node.start()
        self.wait_metering()
        self.devs = [self.radio.central() for _ in range(4)]   # [3]: the refused one
        self._uart = None

    def wait_metering(self, timeout=30):
        """Until the module is identified (a slow first I2C answer is retried
        by the node every 10 s)."""
        u = self.uart()
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                if len(u.channels()) == 2:
                    return
                time.sleep(0.5)
        finally:
            u.close()
        raise RuntimeError("module not identified")

    @property
    def addr(self):
        return self.radio.node_addr + "/P"

    def central(self, i=0, mtu=247):
        c = BumbleCentral(self.devs[i])
        # the connect's own timeouts (20 s each phase) end it cleanly first
        self.radio.loop.run(c.connect(self.addr, mtu, timeout=20), 90)
        return c

    def client(self, i=0, mtu=247, json_mode=True):
        c = self.central(i, mtu)
        ser = BleSerial(c, self.radio.loop, port="ble")
        return Client(ser, timeout=10, json_mode=json_mode), c, ser

    def uart(self, json_mode=True):
        return Client(self.node.console, timeout=10, json_mode=json_mode)

    def run(self, coro, timeout=60):
        return self.radio.loop.run(coro, timeout)

    def close(self):
        self.node.close()
        self.radio.close()
        shutil.rmtree(self.state, ignore_errors=True)


@pytest.fixture(scope="module")
def rig():
    r = Rig()
    yield r
    r.close()


def login(cl):
    """AUTH over this client; returns a signer for mutating command lines."""
    return blesign.login(cl, SECRET, NODE_ID)


# The same benign form of every protocol command (HELP lists them); mutating
# ones are sent unsigned: the node must refuse them with 401 on both links.
COMMANDS = ["HELP", "HELP READ", "INFO", "READ", "READ 0x50", "READ 0x50 1", "TOTALS", "TOTALS 0 0",
            "STATUS", "CONFIG", "CONFIG ble.enabled", "AUTH", "LOGOUT", "AUDIT", "AUDIT 2", "LIVE 1000",
            "LIVE OFF", "ECHO OFF", "SAVE", "SET ble.name x", "PRESET 0x50 0 1 0", "RESET COUNTERS",
            "REBOOT", "KEY 00", "NOPE"]
VOLATILE = ("uptime_s", "p_w", "p_mw", "import_kwh", "export_kwh", "net_kwh", "import_mwh", "export_mwh",
            "nonce", "u_v", "i_a", "pf", "heap_free", "heap_used", "reads", "windows", "last_save_s", "commits",
            "ble_conns", "rx_errors", "refused", "ble_notify_retry", "auth_open", "seq", "t_s", "n",
            "detail", "kind", "stale", "missed", "loss_bound_mwh", "busy", "auth_fail")


def shape(reply):
    recs = []
    for r in reply.records:
        recs.append({k: (None if k in VOLATILE else v) for k, v in r.items()})
    return reply.ok, reply.code, recs


@pytest.mark.parametrize("json_mode", [True, False])
def test_every_command_over_ble_matches_the_uart(rig, json_mode):
    cl, c, ser = rig.client(0, json_mode=json_mode)
    u = rig.uart(json_mode)
    try:
        names = [r.get("cmd") or (r.get("t") or "").split()[0] for r in u.command("HELP").records]
        for name in (n for n in names if n):
            assert any(x.split()[0] == name.split()[0].upper() for x in COMMANDS + ["JSON"]), name
        for cmd in COMMANDS + ["JSON ON" if json_mode else "JSON OFF"]:
            a = cl.command(cmd, check=False)
            b = u.command(cmd, check=False)
            assert shape(a)[:2] == shape(b)[:2], cmd
            if cmd.split()[0] in ("HELP", "CONFIG", "INFO"):
                assert shape(a) == shape(b), cmd
            else:
                assert [r["t"] for r in a.records] == [r["t"] for r in b.records], cmd
            if cmd.split()[0] in ("SAVE", "SET", "PRESET", "RESET", "REBOOT", "KEY"):
                assert a.code == 401, (cmd, a)
    finally:
        ser.close()
        u.close()


@pytest.mark.parametrize("mtu", [23, 247])
def test_replies_are_chunked_to_the_mtu(rig, mtu):
    cl, c, ser = rig.client(1, mtu=mtu, json_mode=False)
    u = rig.uart(False)
    try:
        assert c.mtu == mtu
        c.sizes.clear()
        a = cl.command("HELP")
        b = u.command("HELP")
        assert a.lines == b.lines and len(a.lines) > 10
        assert max(c.sizes) == mtu - 3          # full chunks, none larger
        assert sum(c.sizes) > 200
        # a reply line longer than one chunk arrives whole (CONFIG in JSON)
        cl2 = Client(ser, timeout=10)
        assert cl2.config() == rig.uart().config()
    finally:
        ser.close()
        u.close()


def test_two_centrals_have_independent_sessions(rig):
    a, ca, sa = rig.client(0)
    b, cb, sb = rig.client(1, json_mode=False)
    try:
        sign = login(a)
        # A is authenticated; B on the same node is not, and cannot ride on A's session
        assert b.command("PRESET 0x50 1 5 0", check=False).code == 401
        assert b.command("SAVE", check=False).code == 401
        st_b = b.status()
        assert st_b["session"] in (False, "false")
        assert a.status()["session"] is True
        r = a.command(sign("PRESET 0x50 1 5.5 0.25"))
        assert r.ok
        ch = [c for c in b.channels() if c["ch"] == 1][0]
        assert ch["import_mwh"] >= 5500000 and ch["export_mwh"] >= 250000
        # B's own login does not end A's session
        sign_b = login(b)
        assert a.status()["session"] is True
        assert b.command(sign_b("SAVE")).ok
        # the B key shown only inside a session
        assert a.config()["ble.bthome_key"] == ""
        assert b.command("LOGOUT").ok
    finally:
        sa.close()
        sb.close()


def test_disconnect_mid_reply_then_reconnect(rig):
    cl, c, ser = rig.client(2, mtu=23, json_mode=False)
    got = []
    c.on_data = lambda d: got.append(d)
    rig.run(c.write(b"HELP\n"))
    end = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < end:
        time.sleep(0.01)
    assert got, "no notification"
    rig.run(c.disconnect())                         # in the middle of a ~1 KB reply
    time.sleep(0.3)
    cl, c, ser = rig.client(2, mtu=23, json_mode=False)
    try:
        r = cl.command("HELP")                      # a fresh session, a whole reply
        assert r.lines[0].startswith("HELP")
        st = cl.status()
        assert int(st["ble_conns"]) == 1
        assert st["session"] in (False, "false")
        assert int(st["ble_restarts"]) == 0
        assert int(st["gap_events"]) == 0     # no energy lost (a late window is not a gap)
    finally:
        ser.close()


def test_live_notifications_while_totals_count(rig):
    cl, c, ser = rig.client(0)
    lives = []
    try:
        before = cl.channels()[0]["import_mwh"]
        t0 = time.monotonic()
        cl.live(500, lives.append, lambda: len(lives) >= 12 or time.monotonic() - t0 > 20)
        after = cl.channels()[0]["import_mwh"]
        assert len(lives) >= 12
        assert all(x["t"] == "live" and "p_mw" in x for x in lives)
        assert after > before                        # metering went on meanwhile
    finally:
        ser.close()


def test_fuzzed_and_oversized_writes(rig):
    c = rig.central(1, mtu=247)
    got = bytearray()
    c.on_data = lambda d: got.extend(d)
    rng = random.Random(7)
    try:
        for i in range(60):
            n = rng.choice((1, 3, 20, 100, 244))
            data = bytes(rng.randrange(256) for _ in range(n))
            rig.run(c.write(data, with_response=bool(i % 2)))
        rig.run(c.write(b"A" * 2000 + b"\n"))        # far over the 128-byte line limit
        rig.run(c.write(b"\nJSON OFF\nINFO\n"))
        end = time.monotonic() + 5
        while b"OK\r\n" not in got[-200:] and time.monotonic() < end:
            time.sleep(0.05)
        ser = BleSerial(c, rig.radio.loop)
        cl = Client(ser, timeout=10, json_mode=False)
        st = cl.status()
        assert int(st["rx_errors"]) > 0
        assert cl.info()["node"]["id"] == NODE_ID
        assert int(st["ble_restarts"]) == 0 and int(st["gap_events"]) == 0
        assert c.connected
    finally:
        rig.run(c.disconnect())


def test_unauthenticated_mutations_and_replay_are_refused(rig):
    a, ca, sa = rig.client(0, json_mode=False)
    written = []
    orig = ca.write

    async def spy(data, with_response=True):
        written.append(bytes(data))
        return await orig(data, with_response)
    ca.write = spy
    b, cb, sb = rig.client(1, json_mode=False)
    try:
        for cmd in ("SET ble.name evil", "PRESET 0x50 0 0 0", "RESET TOTALS", "REBOOT", "SAVE"):
            assert b.command(cmd, check=False).code == 401
        sign = login(a)
        before = a.channels()
        line = sign("PRESET 0x50 1 7 0")
        assert a.command(line).ok
        captured = [w for w in written if w.startswith(b"PRESET")][-1]
        # the captured exchange replayed by a third party, and on the owner's link
        assert b.command(captured.decode().strip(), check=False).code == 401
        assert a.command(line, check=False).code == 401
        after = [c for c in a.channels() if c["ch"] == 1][0]
        assert after["import_mwh"] < 7000000 + 100000   # no second preset
        assert before
        a.command("LOGOUT")
        # a reconnect ends the session: the owner's old signature is worthless too
        sa.close()
        a, ca, sa = rig.client(0, json_mode=False)
        assert a.command(sign("PRESET 0x50 1 0 0"), check=False).code == 401
    finally:
        sa.close()
        sb.close()


def test_connection_limit(rig):
    conns = [rig.central(i) for i in range(2)]
    try:
        # at the limit (ble.max_conn = 2) the node only broadcasts: a third
        # central cannot connect, while BTHome adverts keep going
        third = BumbleCentral(rig.devs[3])     # not reused: Bumble keeps the cancelled attempt
        try:
            rig.run(third.connect(rig.addr, 23, timeout=3), 40)
        except Exception:
            pass                               # not connectable any more: the usual case
        else:
            # it got in before the node's advertising update: dropped at once
            end = time.monotonic() + 10
            while third.connected and time.monotonic() < end:
                time.sleep(0.05)
            assert not third.connected
        cl = rig.uart()
        assert int(cl.status()["ble_conns"]) == 2
        cl.close()
    finally:
        for c in conns:
            rig.run(c.disconnect())
    time.sleep(0.5)
    c = rig.central(2)                      # room again
    rig.run(c.disconnect())


def test_totals_characteristic_and_device_information(rig):
    c = rig.central(0)
    try:
        data = rig.run(c.read_totals())
        frames = [btotals.unpack(data[i:i + 20]) for i in range(0, len(data), 20)]
        assert [(f["module"], f["ch"]) for f in frames] == [("0x50", 0), ("0x50", 1)]
        assert frames[-1]["last"] and not frames[0]["last"]
        got = []
        rig.run(c.subscribe_totals(got.append))
        end = time.monotonic() + 10
        while len(got) < 6 and time.monotonic() < end:
            time.sleep(0.05)
        assert len(got) >= 6 and all(len(f) == 20 for f in got)
        seen = [btotals.unpack(f) for f in got]
        imp0 = [f["import_mwh"] for f in seen if f["ch"] == 0]
        assert imp0 == sorted(imp0) and imp0[-1] >= frames[0]["import_mwh"]
        bad = bytearray(got[0])
        bad[5] ^= 1
        with pytest.raises(ValueError):
            btotals.unpack(bytes(bad))

        async def dis():
            out = {}
            for s in c.peer.services:
                if s.uuid.to_hex_str() == "180A":
                    for ch in s.characteristics:
                        out[ch.uuid.to_hex_str()] = bytes(await c.peer.read_value(ch)).decode()
            return out
        d = rig.run(dis())
        assert d["2A25"] == NODE_ID and d["2A24"] and d["2A26"]
    finally:
        rig.run(c.disconnect())


def test_radio_failure_is_counted_and_the_radio_restarted():
    """The node's controller dies (its HCI pty closes): the node counts the
    error, switches the radio off and keeps metering; a new controller on the
    same HCI path is picked up by the back-off restart. Own node: ~60 s."""
    radio = Radio()
    state = tempfile.mkdtemp(prefix="rbm-ble-fail-")
    node = BleNode(radio, state, {"modules": [{"addr": 0x50}], "ble": {"bthome_s": 1}})
    try:
        node.start()
        u = Client(node.console, timeout=15)
        end = time.monotonic() + 30
        while len(u.channels()) < 2 and time.monotonic() < end:
            time.sleep(0.5)
        dev = radio.central()
        c = BumbleCentral(dev)
        radio.loop.run(c.connect(radio.node_addr + "/P", 247, timeout=20), 90)
        radio.drop_node_controller()
        end = time.monotonic() + 60
        st = u.status()
        while st["ble_errors"] == 0 and time.monotonic() < end:
            time.sleep(1)
            st = u.status()
        assert st["ble_errors"] >= 1 and st["ble_radio"] == "off" and st["ble_conns"] == 0, st
        before = u.channels()[0]
        radio.new_node_controller()
        end = time.monotonic() + 160            # back-off 10, 20, 40, 80 s after repeated failures
        while u.status()["ble_radio"] != "on" and time.monotonic() < end:
            time.sleep(1)
        st = u.status()
        assert st["ble_radio"] == "on" and st["ble_restarts"] >= 1, st
        c2 = BumbleCentral(radio.central())
        radio.loop.run(c2.connect(radio.node_addr + "/P", 247, timeout=20), 90)
        cl = Client(BleSerial(c2, radio.loop), timeout=15)
        after = cl.channels()[0]
        assert after["import_mwh"] > before["import_mwh"]     # metering went on throughout
        # the one HCI command that timed out (~6 s on NimBLE) held the loop: that
        # time is accounted as gap (docs/ble.md), never silently lost
        st = cl.status()
        gaps = [ch["gap_ms"] for ch in cl.channels()]
        assert all(g == 0 for g in gaps) or st["gap_events"] >= 1, (gaps, st)
        radio.loop.run(c2.disconnect(), 20)
        u.close()
    finally:
        node.close()
        radio.close()
        shutil.rmtree(state, ignore_errors=True)
