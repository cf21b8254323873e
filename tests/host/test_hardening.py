"""Issue 11 end to end: the real node (simnode.py on the MicroPython unix port)
behind a pty, an owner using rbmeter's Client/CLI and an attacker writing to
the same line. Hostile-line scenarios, SAVE floods counted in flash commits,
client injection, secrets refused at provisioning, and the clean stop of
`rbmeter sim` (run-stop-run carry-over exact to the mWh)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import serial

from proto import crc as proto_crc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "simboard"))
from launch import SimNode   # noqa: E402
from rbmeter import client as rbc   # noqa: E402
from rbmeter import cli   # noqa: E402

SECRET = "hardening secret 0123456789"
RBMETER = os.path.join(ROOT, ".venv", "bin", "rbmeter")


def write_config(d, secret=SECRET):
    p = os.path.join(d, "config.json")
    with open(p, "w") as f:
        json.dump({"auth": {"secret": secret}, "modules": [{"addr": 0x50}]}, f)
    return p


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("hard"))
    n = SimNode(d, ["--virtual", "--duration", "20", "--config", write_config(d)])
    n.wait("DONE", 120)          # metering frozen; the console is served in real time
    yield n
    n.stop()


class Attacker:
    """Writes to the node's line (write-only: it never steals the owner's replies)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
        self._stop = False
        self.sent = 0

    def send(self, line):
        if isinstance(line, str):
            line = line.encode()
        os.write(self.fd, line + b"\r\n")
        self.sent += 1

    def every(self, period_s, lines):
        def run():
            i = 0
            while not self._stop:
                self.send(lines[i % len(lines)])
                i += 1
                time.sleep(period_s)
        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()

    def close(self):
        self._stop = True
        if getattr(self, "_t", None) is not None:
            self._t.join(3)
        os.close(self.fd)


class Tap:
    """A pyserial port whose writes are recorded (what an eavesdropper captures)."""

    def __init__(self, path):
        self.ser = serial.Serial(path, 115200, timeout=0.05)
        self.sent = []

    def write(self, data):
        self.sent.append(bytes(data))
        return self.ser.write(data)

    def __getattr__(self, k):
        return getattr(self.ser, k)


def _totals(c):
    return {(x["module"], x["ch"]): (x["import_mwh"], x["export_mwh"]) for x in c.channels()}


def _owner(n, **kw):
    kw.setdefault("timeout", 2.0)
    return rbc.Client(n.bridge.host_path, **kw)


def test_owner_and_attacker_on_one_line(node):
    att = Attacker(node.bridge.host_path)
    try:
        with _owner(node) as c:
            c.auth(SECRET.encode())
            # the attacker rides on the owner's open session: nothing passes
            before = _totals(c)
            for line in ("PRESET 0x50 0 1 1", "SET name pwned", "RESET TOTALS", "SAVE", "REBOOT",
                         "PRESET 0x50 0 1 1 @1 " + "00" * 16, "RESET TOTALS @99 " + "ab" * 16,
                         "KEY " + "00" * 16):
                att.send(line)
            c.drain(quiet=0.5, limit=5)
            assert _totals(c) == before
            c.preset("0x50", 0, 7000000, 8000000)       # the owner's signed PRESET works
            assert _totals(c)[("0x50", 0)] == (7000000, 8000000)
            st = c.status()
            assert st["refused"] >= 8
            cfg = c.config()
            assert cfg.get("name") != "pwned"
            c.logout()
    finally:
        att.close()


def test_replay_of_a_captured_preset(node):
    tap = Tap(node.bridge.host_path)
    att = Attacker(node.bridge.host_path)
    try:
        c = rbc.Client(tap, timeout=2.0)
        c.auth(SECRET.encode())
        c.preset("0x50", 1, 1111000, 0)
        captured = [l for l in tap.sent if b"PRESET" in l][-1].strip()
        assert b" @" in captured
        c.preset("0x50", 1, 2222000, 0)
        att.send(captured)                               # replay inside the same session
        time.sleep(0.3)
        assert _totals(c)[("0x50", 1)] == (2222000, 0)
        c.logout()
        att.send(captured)                               # after LOGOUT
        c.auth(SECRET.encode())
        att.send(captured)                               # in the owner's next session
        time.sleep(0.3)
        assert _totals(c)[("0x50", 1)] == (2222000, 0)
        audit = c.audit(20)
        applied = [r["detail"] for r in audit if r["kind"] == "cmd"]
        assert applied[-1].startswith("PRESET 0x50 1 2.222000") and applied[-1].endswith("-> ok")
        refused = [r for r in audit if r["kind"] == "refused"]
        assert len(refused) >= 3
        c.logout()
        tap.ser.close()
    finally:
        att.close()


def test_hostile_auth_flood_owner_still_works_within_10_s(node):
    att = Attacker(node.bridge.host_path)
    att.every(1.0, ["AUTH", "AUTH 00"])
    try:
        time.sleep(1.5)
        t0 = time.monotonic()
        with _owner(node, retries=5) as c:
            c.auth(SECRET.encode())
            c.preset("0x50", 0, 4242000, 4343000)
            took = time.monotonic() - t0
            assert _totals(c)[("0x50", 0)] == (4242000, 4343000)
            c.logout()
        print("owner logged in and signed a PRESET under an AUTH flood in %.2f s" % took)
        assert took < 10.0, took
        assert att.sent >= 2
    finally:
        att.close()


def test_unsigned_save_flood_causes_no_flash_commit(node):
    att = Attacker(node.bridge.host_path)
    try:
        with _owner(node) as c:
            st0 = c.status()
            for _ in range(100):
                att.send("SAVE")
                att.send(proto_crc.seal(b"SAVE"))
            c.drain(quiet=0.5, limit=10)                   # the attacker's 200 replies pass by
            st1 = c.status()
            assert st1["commits"] == st0["commits"] and st1["saves"] == st0["saves"]
            assert st1["refused"] >= st0["refused"] + 200
            # a signed SAVE with nothing unsaved is a no-op too (DONE committed already)
            c.auth(SECRET.encode())
            assert c.save() == "nothing unsaved"
            assert c.status()["commits"] == st0["commits"]
            # after a change it commits once, then nothing is unsaved again
            c.preset("0x50", 0, 5000000, 0)
            st2 = c.status()
            assert c.save() == "nothing unsaved"          # PRESET is journalled itself
            assert c.status()["commits"] == st2["commits"]
            c.logout()
    finally:
        att.close()


def test_client_injection_refused(node, capsys, monkeypatch):
    port = ["--port", node.bridge.host_path]
    monkeypatch.setenv("RBMETER_SECRET", SECRET)
    with _owner(node) as c:
        before = _totals(c)
        n_audit = len(c.audit(64))
    rc = cli.main(["set", "name", "a\nRESET TOTALS\nx"] + port)
    err = capsys.readouterr().err
    assert rc == 2 and "LF" in err
    rc = cli.main(["set", "name", "a\x00b"] + port)
    assert rc == 2 and "NUL" in capsys.readouterr().err
    with _owner(node) as c:
        assert _totals(c) == before
        assert len(c.audit(64)) == n_audit                 # nothing reached the node


def test_json_field_with_control_bytes_refused(node):
    s = serial.Serial(node.bridge.host_path, 115200, timeout=2)
    try:
        s.reset_input_buffer()
        s.write(b"JSON ON\r\n")
        assert s.readline().startswith(b'{"ok":true}')
        s.write(proto_crc.seal(b"SET name a\x00b") + b"\r\n")
        r = s.readline()
        assert proto_crc.verify(r.strip()) is not None and b'"err":400' in r
        s.write(b"JSON OFF\r\n")
        s.readline()
    finally:
        s.close()


def test_short_secret_refused_at_provisioning(tmp_path):
    d = str(tmp_path)
    n = SimNode(d, ["--virtual", "--duration", "2", "--config", write_config(d, secret="s3cret horse")])
    try:
        n.wait("DONE", 60)
        with _owner(n) as c:
            st = c.status()
            assert any("auth.secret" in p and "refused" in p for p in st["problems"]), st["problems"]
            with pytest.raises(rbc.AuthError) as e:
                c.auth(b"s3cret horse")
            assert e.value.code == 403 and "no secret" in e.value.msg
    finally:
        n.stop()
    r = subprocess.run([RBMETER, "sim", "--virtual", "--duration", "1", "--secret", "short"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "refused" in r.stderr


# -- clean stop: run-stop-run carry-over exact to the mWh ----------------------------------

def _run(args, stop=None, timeout=180):
    p = subprocess.Popen([RBMETER, "sim", "--json"] + [str(a) for a in args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
    if stop is not None:
        first = p.stdout.readline()
        assert first.startswith("console: ")
        time.sleep(4.0)                                    # let it meter a little
        p.send_signal(stop)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate()
    assert p.returncode == 0, out[-2000:] + err[-3000:]
    res = json.loads(out.strip().splitlines()[-1])
    return {(c["module"], c["ch"]): (c["import_mwh"], c["export_mwh"]) for c in res["channels"]}


def _start_of_next_run(state):
    # 1 ms of virtual time: the node boots, restores from flash and reports
    return _run(["--virtual", "--duration", "0.001", "--state", state, "--start-ms", 43200000])


@pytest.mark.parametrize("how", ["duration", "sigint", "sigterm"])
def test_second_run_starts_exactly_where_the_first_ended(tmp_path, how):
    state = str(tmp_path / "board")
    if how == "duration":
        first = _run(["--virtual", "--duration", 37.3, "--state", state, "--start-ms", 43200000])
    else:
        sig = signal.SIGINT if how == "sigint" else signal.SIGTERM
        first = _run(["--speed", 20, "--state", state, "--start-ms", 43200000], stop=sig)
    assert any(v[0] + v[1] > 0 for v in first.values()), first   # it metered something
    assert _start_of_next_run(state) == first


def test_key_change_end_to_end(tmp_path):
    d = str(tmp_path)
    n = SimNode(d, ["--virtual", "--duration", "2", "--config", write_config(d)])
    new = b"the new node secret, 32 bytes.."
    try:
        n.wait("DONE", 60)
        with _owner(n) as c:
            c.auth(SECRET.encode())
            assert c.change_key(new) == "key changed"
            c.logout()
            with pytest.raises(rbc.AuthError):
                c.auth(SECRET.encode())
            c.auth(new)
            assert [r["detail"] for r in c.audit(64) if r["kind"] == "cmd"][-1] == "KEY (31 bytes) -> ok"
            c.logout()
    finally:
        n.stop()
    with open(os.path.join(d, "flash.img"), "rb") as f:
        img = f.read()
    assert new not in img and new.hex().encode() in img      # journalled in /config.json as hex:
