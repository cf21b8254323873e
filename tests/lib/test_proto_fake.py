"""Fake node interface (docs/protocol.md) + helpers shared by the proto tests."""
import mptest
from clock import Ticks
import proto

SECRET = b"test-secret-0123"   # 16 bytes: the minimum


class FakeNode:
    def __init__(self, secret=SECRET):
        self._secret = secret
        self.mut = []            # mutating calls that reached the node
        self.events = []
        self.saves = 0
        self.audits = []         # (seq, uptime_s, kind, detail)
        self.nevents = 0
        self.cfg = {"name": "meter1", "live_ms": 1000}
        self.fail_info = False
        self.chans = [
            {"module": "0x50", "ch": 0, "import_mwh": 123456789, "export_mwh": 1000,
             "gap_ms": 1500, "p_mw": 1500000, "u_v": 230.5, "i_a": 6.5, "pf": 0.98, "enabled": True},
            {"module": "0x50", "ch": 1, "import_mwh": 0, "export_mwh": 2000000000001,
             "gap_ms": 0, "p_mw": -800123, "u_v": 230.5, "i_a": 3.5, "pf": -0.9, "enabled": True},
            {"module": "0x51", "ch": 0, "import_mwh": 5, "export_mwh": 0,
             "gap_ms": 0, "p_mw": None, "enabled": False},
        ]

    def info(self):
        if self.fail_info:
            raise OSError(5)
        return {"fw": "0.3.1", "node_id": "N0001", "uptime_s": 42, "modules": [
            {"addr": "0x50", "variant": "UI2", "channels": 2, "voltage_hw": True, "fw": "1.2",
             "fw_version": 0x12, "tier": "std", "read_mode": "burst", "mode": "rt", "ok": True},
            {"addr": "0x51", "variant": "I1", "channels": 1, "voltage_hw": False, "fw": "1.0",
             "fw_version": 0x10, "tier": "basic", "read_mode": "bytewise", "mode": "", "ok": False}]}

    def channels(self):
        return [dict(c) for c in self.chans]

    def status(self):
        return {"faults": ["i2c_0x51"], "gaps": 3, "io_errors": 7, "last_save_s": 12,
                "loss_bound_mwh": 40, "fs": "ok", "heap_free": 51200}

    def save(self):
        self.saves += 1
        return None

    def _find(self, module, ch):
        for c in self.chans:
            if c["module"] == module and c["ch"] == ch:
                return c
        raise ValueError("no such channel")

    def preset(self, module, ch, imp, exp):
        c = self._find(module, ch)
        self.mut.append(("preset", module, ch, imp, exp))
        c["import_mwh"] = imp
        c["export_mwh"] = exp

    def reset(self, scope, module=None, ch=None):
        self.mut.append(("reset", scope, module, ch))
        if scope == "totals":
            for c in self.chans:
                if (module is None or c["module"] == module) and (ch is None or c["ch"] == ch):
                    c["import_mwh"] = c["export_mwh"] = 0

    def set(self, key, value):
        if key not in self.cfg:
            raise ValueError("unknown key " + key)
        self.mut.append(("set", key, value))
        self.cfg[key] = value
        return None

    def get_config(self):
        return dict(self.cfg)

    def secret(self):
        return self._secret

    def node_id(self):
        return "N0001"

    def reboot(self):
        self.mut.append(("reboot",))

    def event(self, kind, detail):
        self.events.append((kind, detail))
        self.audits.append((self.nevents + 1, 42, kind, detail))
        self.nevents += 1
        if len(self.events) > 1000:            # bounded for the long fuzz runs
            self.events = self.events[-500:]
            self.audits = self.audits[-500:]

    def audit(self, n):
        return self.audits[-n:]

    def set_secret(self, key):
        self.mut.append(("key", bytes(key)))
        self._secret = bytes(key)

    def totals(self):
        return [(c["import_mwh"], c["export_mwh"]) for c in self.chans]


class Rig:
    """Engine + fake node + virtual clock + captured output."""

    def __init__(self, node=None, start=0, nonce=b"\x01" * 16, max_line=128):
        self.node = node or FakeNode()
        self.clock = Ticks(start=start)
        self.out = []
        self._nonce = nonce
        self.eng = proto.Engine(self.node, self.out.append, self.clock, self._urandom, max_line=max_line)

    def _urandom(self, n):
        return self._nonce[:n]

    def now(self):
        return self.clock.ticks_ms()

    def send(self, data):
        """Feeds data, returns the decoded output lines produced by it."""
        if isinstance(data, str):
            data = data.encode()
        k = len(self.out)
        self.eng.feed(data, self.now())
        return b"".join(self.out[k:]).decode().splitlines()

    def step(self, ms):
        self.clock.advance(ms)
        k = len(self.out)
        self.eng.poll(self.now())
        return b"".join(self.out[k:])

    def login(self):
        lines = self.send("AUTH\n")
        assert lines and "=" in lines[0], lines
        nonce = lines[0].split("=")[1]
        r = self.send("AUTH " + proto.auth.response(self.node.secret(), self.node.node_id(), nonce) + "\n")
        assert r[-1].startswith("OK"), r
        self.ks = proto.auth.session_key(self.node.secret(), self.node.node_id(), proto.auth.unhex(nonce))
        self.n = 0
        return r

    def signed(self, line):
        """line signed with the session key and the next counter."""
        self.n += 1
        return proto.auth.sign(self.ks, self.n, line)

    def ssend(self, line):
        """Sends a signed command line, returns its reply lines."""
        return self.send(self.signed(line) + "\n")


def test_fake_node_consistent():
    n = FakeNode()
    assert len(n.channels()) == 3
    mptest.raises(ValueError, n.preset, "0x52", 0, 1, 1)
    assert n.mut == []


def test_rig_login():
    r = Rig()
    r.login()
    assert r.eng.authenticated
    assert ("auth_ok", "") in r.node.events
