"""`rbmeter bridge` settings: command line, config file (TOML/JSON), password
file, broker address (docs/bridge.md)."""
import json
import os
import sys

from rbmeter import client as _client

DEFAULT_PREFIX = "homeassistant"


class BridgeError(Exception):
    """A configuration problem (exit code 2)."""


class NodeConf:
    """One node to read: where (port path, or any label for another transport),
    an optional display name and area (Home Assistant device), and open() ->
    a node source."""

    def __init__(self, where, name=None, area=None, open=None, baud=115200, timeout=2.0, retries=2):
        self.where = where
        self.name = name
        self.area = area
        self.baud = baud
        self.timeout = timeout
        self.retries = retries
        self._open = open

    def open(self):
        if self._open is not None:
            return self._open()
        return _client.Client(self.where, baud=self.baud, timeout=self.timeout, retries=self.retries)


def ble_node(target, hci=None, name=None, area=None):
    """A node over Bluetooth LE (`rbmeter --ble`, docs/ble.md): the same
    client over the BLE console; bleak, or Bumble with `hci`."""
    conf = NodeConf("ble:" + target, name, area)

    def open_ble():
        import types
        from rbmeter import ble_cli
        return ble_cli.connect(types.SimpleNamespace(ble=target, ble_hci=hci, timeout=conf.timeout,
                                                     retries=conf.retries))
    conf._open = open_ble
    return conf


class Settings:
    def __init__(self, **kw):
        self.nodes = []                 # [NodeConf]
        self.host = "localhost"
        self.port = None                # None: 1883, or 8883 with TLS
        self.user = None
        self.password = None
        self.tls = False
        self.cafile = None
        self.prefix = DEFAULT_PREFIX
        self.interval = 10.0
        self.status_every = 60.0        # seconds between node STATUS publications
        self.info_every = 600.0         # re-read INFO (module UIDs) this often
        self.state_dir = default_state_dir()
        self.queue_max = 10000          # messages per node kept while the broker is away
        self.hold_min_kwh = 0.01        # smallest fall-back after a reboot held (else 3x loss bound)
        self.duration = None
        self.progress = None            # None: every 1 s on a tty, else every 30 s; 0: off
        for k, v in kw.items():
            if not hasattr(self, k):
                raise TypeError("unknown bridge setting %r" % k)
            setattr(self, k, v)

    @property
    def mqtt_port(self):
        return self.port or (8883 if self.tls else 1883)


def default_state_dir():
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "rbmeter", "bridge")


def split_hostport(text):
    """'host', 'host:1883', '[::1]:1883' -> (host, port or None)."""
    t = text.strip()
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif t.count(":") == 1:
        host, _, port = t.partition(":")
    else:
        host, port = t, ""
    if not host:
        raise BridgeError("--mqtt: no host in %r" % text)
    if port:
        try:
            p = int(port)
        except ValueError:
            raise BridgeError("--mqtt: bad port in %r" % text)
        if not 0 < p < 65536:
            raise BridgeError("--mqtt: port out of range in %r" % text)
        return host, p
    return host, None


def read_password(path):
    try:
        with open(os.path.expanduser(path), "r", encoding="utf-8") as f:
            pw = f.read()
    except OSError as e:
        raise BridgeError("cannot read --password-file %s: %s" % (path, e.strerror or e))
    try:
        if os.stat(os.path.expanduser(path)).st_mode & 0o077:
            sys.stderr.write("rbmeter bridge: warning: %s is readable by other users (chmod 600)\n" % path)
    except OSError:
        pass
    pw = pw.splitlines()[0] if pw.strip() else ""
    if not pw:
        raise BridgeError("--password-file %s is empty" % path)
    return pw


def load_config(path):
    """TOML (or JSON for *.json) file -> dict; see docs/bridge.md."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise BridgeError("cannot read config %s: %s" % (path, e.strerror or e))
    try:
        if path.endswith(".json"):
            cfg = json.loads(data.decode("utf-8"))
        else:
            try:
                import tomllib
            except ImportError:
                raise BridgeError("config %s: TOML needs Python >= 3.11; use a .json file" % path)
            cfg = tomllib.loads(data.decode("utf-8"))
    except BridgeError:
        raise
    except Exception as e:
        raise BridgeError("config %s: %s" % (path, e))
    if not isinstance(cfg, dict):
        raise BridgeError("config %s: expected a table/object at the top" % path)
    known = {"mqtt", "user", "password_file", "tls", "cafile", "discovery_prefix", "interval", "state_dir",
             "status_interval", "queue_max", "hold_min_kwh", "ble_hci", "node"}
    bad = sorted(set(cfg) - known)
    if bad:
        raise BridgeError("config %s: unknown key(s) %s" % (path, ", ".join(bad)))
    nodes = cfg.get("node", [])
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise BridgeError("config %s: `node` must be a list of tables ([[node]])" % path)
    for n in nodes:
        where = [k for k in ("port", "ble") if isinstance(n.get(k), str) and n.get(k)]
        if len(where) != 1:
            raise BridgeError("config %s: every [[node]] needs port = \"/dev/...\" or ble = \"NAME_OR_ADDRESS\""
                              % path)
        extra = sorted(set(n) - {"port", "ble", "name", "area"})
        if extra:
            raise BridgeError("config %s: unknown node key(s) %s" % (path, ", ".join(extra)))
    return cfg


def settings_from_args(a):
    """argparse namespace of `rbmeter bridge` (+ optional --config) -> Settings."""
    cfg = load_config(a.config) if a.config else {}
    s = Settings()
    hci = getattr(a, "ble_hci", None) or cfg.get("ble_hci")
    nodes = [NodeConf(n["port"], n.get("name"), n.get("area")) if n.get("port") else
             ble_node(n["ble"], hci, n.get("name"), n.get("area")) for n in cfg.get("node", [])]
    ports = a.port or ([] if nodes or getattr(a, "ble", None) or not os.environ.get("RBMETER_PORT")
                       else [os.environ["RBMETER_PORT"]])
    nodes += [NodeConf(p) for p in ports]
    nodes += [ble_node(b, hci) for b in (getattr(a, "ble", None) or [])]
    seen = set()
    for n in nodes:
        if n.where in seen:
            raise BridgeError("node %s given twice" % n.where)
        seen.add(n.where)
    if not nodes:
        raise BridgeError("no node: give --port DEV or --ble NAME (repeatable) or --config FILE with [[node]] tables")
    for n in nodes:
        n.baud, n.timeout, n.retries = a.baud, a.timeout, a.retries
    s.nodes = nodes
    mqtt = a.mqtt or cfg.get("mqtt")
    if not mqtt:
        raise BridgeError("no broker: give --mqtt HOST[:PORT] (or mqtt = \"host:port\" in the config)")
    s.host, s.port = split_hostport(mqtt)
    s.user = a.user or cfg.get("user")
    pwf = a.password_file or cfg.get("password_file")
    if pwf:
        if not s.user:
            raise BridgeError("--password-file needs --user")
        s.password = read_password(pwf)
    s.tls = bool(a.tls or cfg.get("tls"))
    s.cafile = a.cafile or cfg.get("cafile")
    if s.cafile and not s.tls:
        raise BridgeError("--cafile needs --tls")
    if s.cafile and not os.path.exists(s.cafile):
        raise BridgeError("--cafile %s not found" % s.cafile)
    s.prefix = (a.discovery_prefix or cfg.get("discovery_prefix") or DEFAULT_PREFIX).strip("/")
    s.interval = float(a.interval if a.interval is not None else cfg.get("interval", 10.0))
    if s.interval < 0.05:
        raise BridgeError("--interval must be >= 0.05 s")
    s.status_every = float(a.status_interval if a.status_interval is not None else cfg.get("status_interval", 60.0))
    s.state_dir = a.state_dir or cfg.get("state_dir") or default_state_dir()
    s.queue_max = int(a.queue_max if a.queue_max is not None else cfg.get("queue_max", 10000))
    s.hold_min_kwh = float(cfg.get("hold_min_kwh", 0.01))
    s.duration = a.duration
    s.progress = a.progress
    return s
