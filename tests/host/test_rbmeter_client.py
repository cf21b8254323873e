"""rbmeter.Client against the real protocol engine (lib/proto) served in
process behind a PtyBridge: framing, CRC-16 verification and retries, AUTH
challenge-response, IEC readout, and the CLI commands end to end over a pty.
The node object behind the engine is a small in-memory stand-in; the
simulated firmware node is exercised in test_rbmeter_sim.py."""
import json
import os
import select
import threading
import time
import tty

import pytest

import proto
from proto import auth as proto_auth
from proto import crc as proto_crc
from clock import Ticks

from rbmeter import client as rbc
from rbmeter import cli
from rbmeter.ptybridge import PtyBridge

SECRET = b"correct horse battery"


class MemNode:
    """In-memory node behind the engine (the engine's node interface)."""

    def __init__(self):
        self.tot = {("0x50", 0): [1234567, 89], ("0x50", 1): [0, 5000000]}
        self.cfg = {"save_interval_s": 300, "name": "bench"}
        self.events = []
        self.saves = 0
        self.resets = []

    def info(self):
        return {"fw": "0.1.0", "node_id": "N1", "uptime_s": 42,
                "modules": [{"addr": "0x50", "variant": "UI2", "channels": 2, "voltage_hw": True,
                             "fw": "0.3", "fw_version": 3, "tier": "basic", "read_mode": "burst",
                             "mode": "", "ok": True}]}

    def channels(self):
        out = []
        for (m, ch), (i, e) in sorted(self.tot.items()):
            out.append({"module": m, "ch": ch, "import_mwh": i, "export_mwh": e, "gap_ms": 1500 * ch,
                        "p_mw": 1500000 if ch == 0 else -230500, "u_v": 230.1, "enabled": True})
        return out

    def status(self):
        return {"faults": [], "saves": self.saves, "fs": "ok"}

    def save(self):
        self.saves += 1

    def set_secret(self, key):
        global SECRET
        self.new_secret = key

    def preset(self, module, ch, imp, exp):
        if (module, ch) not in self.tot:
            raise ValueError("no such channel")
        self.tot[(module, ch)] = [imp, exp]

    def reset(self, scope, module=None, ch=None):
        self.resets.append((scope, module, ch))
        if scope == "totals":
            for k in self.tot:
                if (module is None or k[0] == module) and (ch is None or k[1] == ch):
                    self.tot[k] = [0, 0]

    def set(self, key, value):
        if key not in self.cfg:
            raise ValueError("unknown key")
        self.cfg[key] = int(value) if value.isdigit() else value
        return str(self.cfg[key])

    def get_config(self):
        return dict(self.cfg)

    def secret(self):
        return SECRET

    def node_id(self):
        return "N1"

    def event(self, kind, detail):
        self.events.append((kind, detail))

    def audit(self, n):
        return [(i + 1, 42, k, d) for i, (k, d) in enumerate(self.events)][-n:]


class Peer:
    """The real proto.Engine on the node end of a PtyBridge, pumped by a thread.
    corrupt_out: indices of engine output writes to damage (one bit flipped);
    corrupt_in: indices of received command lines to damage before feeding."""

    def __init__(self, node=None, corrupt_out=(), corrupt_in=(), **bridge_kw):
        self.node = node or MemNode()
        self.bridge = PtyBridge(**bridge_kw)
        self.fd = os.open(self.bridge.node_path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.clock = Ticks(0, source=lambda: int(time.monotonic() * 1000))
        self.corrupt_out = set(corrupt_out)
        self.corrupt_in = set(corrupt_in)
        self.n_out = 0
        self.n_in = 0
        self.rx = []
        self.eng = proto.Engine(self.node, self._write, self.clock, os.urandom)
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _write(self, b):
        i = self.n_out
        self.n_out += 1
        if i in self.corrupt_out and len(b) > 4:
            b = bytearray(b)
            b[len(b) // 2] ^= 0x01
            b = bytes(b)
        os.write(self.fd, b)

    def _run(self):
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        pending = b""
        while not self._stop:
            if p.poll(10):
                data = os.read(self.fd, 4096)
                pending += data
                # damage whole received lines by index (before the engine sees them)
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    line += b"\n"
                    if line.strip():
                        self.rx.append(line)
                        if self.n_in in self.corrupt_in:
                            line = bytearray(line)
                            line[0] ^= 0x20     # 'R' -> 'r': still a command, CRC now wrong
                            line = bytes(line)
                        self.n_in += 1
                    self.eng.feed(line, self.clock.ticks_ms())
            self.eng.poll(self.clock.ticks_ms())

    def close(self):
        self._stop = True
        self._t.join(2)
        os.close(self.fd)
        self.bridge.close()


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.close()


def client_for(p, **kw):
    kw.setdefault("timeout", 1.0)
    return rbc.Client(p.bridge.host_path, **kw)


# -- pure pieces ---------------------------------------------------------------------

def test_crc16_matches_firmware_and_check_value():
    assert rbc.crc16(b"123456789") == 0x29B1          # CRC-16/CCITT-FALSE check value
    for s in (b"", b"OK", b'{"ok":true}', bytes(range(256))):
        assert rbc.crc16(s) == proto_crc.crc16(s)
        assert rbc.seal(s) == proto_crc.seal(s)
        assert rbc.unseal(rbc.seal(s)) == s
    bad = bytearray(rbc.seal(b'{"ok":true}'))
    bad[3] ^= 1
    assert rbc.unseal(bytes(bad)) is None
    assert rbc.unseal(b"no suffix") is None


def test_auth_and_signing_match_firmware():
    nonce = "00112233445566778899aabbccddeeff"
    for key in (SECRET, b"k" * 100):
        assert proto_auth.response(key, "N1", nonce) == nonce + " " + rbc.auth_answer(key, "N1", nonce)
        ks = rbc.session_key(key, "N1", nonce)
        assert ks == proto_auth.session_key(key, "N1", bytes.fromhex(nonce))
        for n in (1, 2, 2 ** 32 - 1):
            assert rbc.sign(ks, n, "SET name a b") == proto_auth.sign(ks, n, "SET name a b")
        assert rbc.key_pad(ks, 7, 64) == proto_auth.key_pad(ks, 7, 64)


def test_client_refuses_cr_lf_nul_values():
    for bad in ("a\nRESET TOTALS\nx", "a\rb", "a\x00b"):
        with pytest.raises(ValueError):
            rbc.check_value(bad)
    rbc.check_value("a b\tc")


def test_kwh_parse_format_exact():
    assert rbc.parse_kwh("1234.5") == 1234500000
    assert rbc.parse_kwh("0.000001") == 1
    assert rbc.parse_kwh("7") == 7000000
    assert rbc.fmt_kwh(1234567) == "1.234567"
    for bad in ("-1", "1.2345678", "1e3", "", "."):
        with pytest.raises(ValueError):
            rbc.parse_kwh(bad)


def test_text_record_parser():
    r = rbc.parse_text_record('CH module=0x50 ch=0 p_w=- name="a b=c" x=1')
    assert r == {"t": "ch", "module": "0x50", "ch": "0", "p_w": None, "name": "a b=c", "x": "1"}


# -- client against the engine ---------------------------------------------------------

def test_channels_info_status_json_mode(peer):
    with client_for(peer) as c:
        ch = c.channels()
        assert [(x["module"], x["ch"], x["import_mwh"], x["export_mwh"]) for x in ch] == \
            [("0x50", 0, 1234567, 89), ("0x50", 1, 0, 5000000)]
        assert ch[0]["import_kwh"] == "1.234567" and ch[1]["gap_ms"] == 1500 and ch[1]["p_mw"] == -230500
        one = c.channels("0x50", 1)
        assert len(one) == 1 and one[0]["ch"] == 1
        inf = c.info()
        assert inf["node"]["id"] == "N1" and inf["modules"][0]["variant"] == "UI2"
        assert c.status()["fs"] == "ok"
        assert c.config()["save_interval_s"] == 300
        with pytest.raises(rbc.NodeError) as e:
            c.channels("0x51")
        assert e.value.code == 404
        assert c.crc_errors == 0 and c.resends == 0
    # every line the client sent after JSON ON was sealed
    sent = [l.strip() for l in peer.rx if l.strip() and not l.startswith(b"JSON")]
    assert sent and all(proto_crc.verify(l) is not None for l in sent)


def test_text_mode_framing(peer):
    with client_for(peer, json_mode=False) as c:
        ch = c.channels()
        assert [x["import_kwh"] for x in ch] == ["1.234567", "0.000000"]
        assert ch[1]["p_w"] == "-230.500"
        with pytest.raises(rbc.NodeError) as e:
            c.command("NOPE")
        assert e.value.code == 404


def test_corrupted_reply_is_retried():
    # output writes: 0 = OK of JSON ON, 1..2 = the two channel lines of READ #1
    p = Peer(corrupt_out={2})
    try:
        with client_for(p) as c:
            ch = c.channels()
            assert [x["import_mwh"] for x in ch] == [1234567, 0]
            assert c.crc_errors == 1 and c.resends == 1
    finally:
        p.close()


def test_corrupted_command_is_rejected_by_node_and_resent():
    # received lines: 0 = JSON ON, 1 = READ (damaged on the way in)
    p = Peer(corrupt_in={1})
    try:
        with client_for(p) as c:
            assert len(c.channels()) == 2
            assert c.bad_cmd_crc == 1 and c.resends == 1
        assert p.eng.rx_errors == 1
    finally:
        p.close()


def test_persistent_corruption_gives_up():
    p = Peer(corrupt_out=set(range(1, 100)))
    try:
        with client_for(p, retries=2, timeout=0.5) as c:
            with pytest.raises(rbc.ClientError):
                c.channels()
            assert c.resends == 2
    finally:
        p.close()


def test_live_lines_do_not_break_framing(peer):
    seen = []
    with client_for(peer, on_live=seen.append) as c:
        c.command("LIVE 200")
        time.sleep(0.5)
        for _ in range(5):
            assert len(c.channels()) == 2
            time.sleep(0.1)
        c.command("LIVE OFF")
    assert seen and seen[0]["t"] == "live" and seen[0]["p_mw"] == 1500000


def test_auth_then_preset_reset_set(peer):
    with client_for(peer) as c:
        with pytest.raises(rbc.NodeError) as e:
            c.preset("0x50", 0, 1, 2)
        assert e.value.code == 401
        assert c.auth(SECRET) == "authenticated"
        c.preset("0x50", 1, 1000000123, 7)
        assert peer.node.tot[("0x50", 1)] == [1000000123, 7]
        assert c.set("save_interval_s", "600") == "600"
        c.reset("totals", "0x50", 0)
        assert peer.node.tot[("0x50", 0)] == [0, 0]
        c.save()
        assert peer.node.saves == 1
        # an injected second line never leaves the client
        with pytest.raises(ValueError):
            c.set("name", "a\nRESET TOTALS\nx")
        assert peer.node.cfg["name"] == "bench"
        c.logout()
        with pytest.raises(rbc.NodeError):
            c.set("name", "x")
        assert [r["kind"] for r in c.audit(3)][-1] == "logout"
    # the secret never crossed the link; every mutating line was signed
    assert all(SECRET not in l for l in peer.rx)
    assert ("auth_ok", "") in peer.node.events
    for l in peer.rx:
        p = proto_crc.verify(l.strip()) or l
        if p.split()[0] in (b"PRESET", b"SET", b"RESET", b"SAVE"):
            assert proto_auth.split_signed(p.decode().strip()) is not None, l


def test_auth_wrong_secret_no_lockout(peer):
    with client_for(peer) as c:
        with pytest.raises(rbc.AuthError) as e:
            c.auth(b"wrong secret, long enough")
        assert e.value.code == 403
        assert c.auth(SECRET) == "authenticated"      # no lockout
        c.logout()


def test_key_change_over_the_link(peer):
    with client_for(peer) as c:
        c.auth(SECRET)
        new = b"a brand new secret of 32 bytes!!"
        assert c.change_key(new) == "key changed"
        assert peer.node.new_secret == new
        c.logout()
    assert all(new not in l and new.hex().encode() not in l for l in peer.rx)


def test_iec_readout(peer):
    with client_for(peer, timeout=5) as c:
        ident, items, raw = c.iec_readout()
        assert ident.startswith("/RBM5")
        d = {o: (v, u) for o, v, u in items}
        assert d["C.1.0"] == ("N1", "")
        assert d["1-1:1.8.0"] == ("000001.234567", "kWh")
        assert d["1-2:2.8.0"] == ("000005.000000", "kWh")
        assert d["1-2:16.7.0"] == ("-000.230", "kW")
        assert raw[0] == 2 and raw[-2] == 3
        # the console keeps working afterwards
        assert len(c.channels()) == 2


# -- CLI over the pty -----------------------------------------------------------------

def run_cli(argv, capsys):
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_totals_info_json(peer, capsys):
    port = ["--port", peer.bridge.host_path]
    rc, out, _ = run_cli(["totals", "--json"] + port, capsys)
    assert rc == 0
    data = json.loads(out.strip().splitlines()[-1])
    assert data[0]["import_mwh"] == 1234567
    rc, out, _ = run_cli(["totals"] + port, capsys)
    assert rc == 0 and "1.234567" in out and "-230.500" in out and "5.000000" in out
    rc, out, _ = run_cli(["info", "--json"] + port, capsys)
    assert rc == 0 and json.loads(out)["node"]["fw"] == "0.1.0"
    rc, out, _ = run_cli(["live", "--once"] + port, capsys)
    assert rc == 0 and "\x1b[" not in out and "1.234567" in out


def test_cli_preset_needs_secret_and_uses_it(peer, capsys, monkeypatch, tmp_path):
    port = ["--port", peer.bridge.host_path]
    monkeypatch.delenv("RBMETER_SECRET", raising=False)
    monkeypatch.delenv("RBMETER_SECRET_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    rc, _, err = run_cli(["preset", "0x50", "0", "12.5", "0"] + port, capsys)
    assert rc == 2 and "no secret" in err
    monkeypatch.setenv("RBMETER_SECRET", "nope, not the secret")
    rc, _, err = run_cli(["preset", "0x50", "0", "12.5", "0"] + port, capsys)
    assert rc == 3 and "authentication failed" in err
    assert peer.rx[-1].startswith(b"LOGOUT")   # logged out also after the failure
    f = tmp_path / "sec"
    f.write_text(SECRET.decode() + "\n")
    rc, out, _ = run_cli(["preset", "0x50", "0", "12.5", "0.000001", "--secret-file", str(f), "--json"] + port, capsys)
    assert rc == 0, out
    assert peer.node.tot[("0x50", 0)] == [12500000, 1]
    assert json.loads(out)["channels"][0]["import_mwh"] == 12500000
    monkeypatch.setenv("RBMETER_SECRET", SECRET.decode())
    rc, _, err = run_cli(["reset", "counters"] + port, capsys)
    assert rc == 2 and "--yes" in err
    rc, _, _ = run_cli(["reset", "counters", "--yes"] + port, capsys)
    assert rc == 0 and peer.node.resets[-1] == ("counters", None, None)
    rc, out, _ = run_cli(["set", "name", "my", "meter"] + port, capsys)
    assert rc == 0 and peer.node.cfg["name"] == "my meter"
    assert peer.rx[-1].startswith(b"LOGOUT @")         # signed logout at the end
    rc, out, err = run_cli(["set", "name", "a\nRESET TOTALS\nx"] + port, capsys)
    assert rc == 2 and "LF" in err and peer.node.cfg["name"] == "my meter"
    rc, out, _ = run_cli(["save", "--json"] + port, capsys)
    assert rc == 0 and peer.node.saves == 1
    rc, out, _ = run_cli(["audit", "5", "--json"] + port, capsys)
    assert rc == 0 and json.loads(out)[-1]["kind"] == "logout"
    rc, out, err = run_cli(["key", "--new-secret", "too short"] + port, capsys)
    assert rc == 2 and "refused" in err                   # < 16 bytes: never sent
    rc, out, err = run_cli(["key", "--new-secret", "hex:" + "5a" * 20, "--json"] + port, capsys)
    assert rc == 0 and peer.node.new_secret == b"\x5a" * 20
    assert peer.rx[-1].startswith(b"LOGOUT @")


def test_cli_obis(peer, capsys):
    rc, out, _ = run_cli(["obis", "--json", "--port", peer.bridge.host_path], capsys)
    assert rc == 0
    d = json.loads(out)
    assert {"obis": "1-1:1.8.0", "value": "000001.234567", "unit": "kWh"} in d["data"]


def test_cli_log_csv(peer, capsys, tmp_path):
    f = tmp_path / "m.csv"
    rc, out, _ = run_cli(["log", "--port", peer.bridge.host_path, "--file", str(f), "--interval", "0.05",
                          "--count", "3", "--json"], capsys)
    assert rc == 0 and json.loads(out)["readings"] == 3
    rows = f.read_text().splitlines()
    assert rows[0] == "time_utc,unix_ms,module,ch,p_mw,import_mwh,export_mwh,gap_ms"
    assert len(rows) == 1 + 3 * 2
    assert rows[1].split(",")[2:] == ["0x50", "0", "1500000", "1234567", "89", "0"]


def test_cli_no_port(capsys, monkeypatch):
    monkeypatch.delenv("RBMETER_PORT", raising=False)
    rc, _, err = run_cli(["totals"], capsys)
    assert rc == 2 and "--port" in err


# -- console shared between a person and rbmeter (bridge monitor port) -------------------

def read_until(ser, pred, timeout=5.0):
    """Reads until pred(data) or the timeout (robust on a loaded machine)."""
    data = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred(data):
        data += ser.read(4000)
    return data


def test_monitor_port_shares_console_without_crosstalk():
    p = Peer(monitor=True, quiet_s=0.3)
    try:
        import serial
        person = serial.Serial(p.bridge.host_path, 115200, timeout=0.1)
        mon = rbc.Client(p.bridge.monitor_path, timeout=2.0, retries=1, json_mode=None)
        # node in text mode (as after boot): the monitor reads it without switching modes
        ch = mon.channels()
        assert [(c["ch"], c["import_mwh"], c["export_mwh"], c["gap_ms"], c["p_mw"]) for c in ch] == \
            [(0, 1234567, 89, 0, 1500000), (1, 0, 5000000, 1500, -230500)]
        assert person.read(1000) == b""                      # nothing leaked to the person
        # the person switches JSON on and streams LIVE: the monitor copes, the person
        # keeps getting exactly their own replies and the LIVE lines
        person.write(b"JSON ON\r\nLIVE 200\r\n")
        got = read_until(person, lambda d: d.count(b'{"ok":true') >= 2 and b'"t":"live"' in d)
        assert got.count(b'{"ok":true') == 2 and b'"t":"live"' in got
        assert b'{"ok":true,"msg":"live_ms=200"}' in got
        time.sleep(0.4)                                     # person idle -> monitor may inject
        ch = mon.channels()
        assert ch[0]["import_mwh"] == 1234567
        person.write(b"LIVE OFF\r\n")
        ok_sealed = b"%04X" % rbc.crc16(b'{"ok":true}')
        rest = read_until(person, lambda d: d.rstrip().endswith(ok_sealed))
        assert b'"t":"ch"' not in got + rest                   # READ replies went to the monitor only
        assert rest.rstrip().endswith(b"}*" + b"%04X" % rbc.crc16(b'{"ok":true}'))
        # a partly typed line blocks injection (it would corrupt the person's command)
        person.write(b"REA")
        time.sleep(0.5)
        mon.timeout, mon.retries = 0.5, 0
        with pytest.raises(rbc.ClientError):
            mon.channels()
        person.write(b"D\r\n")
        mine = read_until(person, lambda d: d.rstrip().endswith(ok_sealed))
        assert mine.count(b'"t":"ch"') == 2                    # the person's READ, intact
        mon.close()
        person.close()
    finally:
        p.close()
