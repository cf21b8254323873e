"""Node configuration in /config.json: validated, with safe defaults.

load(path) -> (config dict, list of error strings); never raises: a missing
or broken file, or a bad value, gives the default for that value plus a
message. set_key(cfg, key, value) validates one dotted key for the protocol's
SET command (strings are coerced); save(cfg, path) writes atomically
(temporary file + rename). Schema and defaults: docs/persistence.md."""
import json
import os

# (dotted key, type, default, lo/choices, hi). Types: int, bool, str (hi =
# max length), pin (None or 0..lo), choice (lo = allowed values).
SCHEMA = (
    ("i2c.id", "int", 0, 0, 1),
    ("i2c.scl", "pin", None, 48, 0),
    ("i2c.sda", "pin", None, 48, 0),
    ("i2c.freq", "int", 50000, 10000, 400000),    # rbAmp: 50 kHz recommended, 400 kHz not validated
    ("drdy_pin", "pin", None, 48, 0),
    ("powerfail.pin", "pin", None, 48, 0),
    ("powerfail.active_low", "bool", True, 0, 0),
    ("save.threshold_mwh", "int", 1000, 1, 1000000),
    ("save.min_interval_s", "int", 5, 1, 3600),
    ("save.max_interval_s", "int", 600, 10, 86400),
    ("save.fast_ms", "int", 1000, 0, 60000),
    ("save.pattern", "choice", "ab", ("ab", "rewrite", "rename", "append"), 0),
    ("store.dir", "dir", "/rbmeter.d", 2, 32),   # must not shadow a package (node.layout)
    ("auth.secret", "secret", "", 16, 64),        # key bytes lo..hi; "" = not provisioned
    ("uart.id", "int", 0, 0, 2),
    ("uart.baud", "choice", 9600, (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200), 0),
    ("uart.tx", "pin", None, 48, 0),
    ("uart.rx", "pin", None, 48, 0),
    ("uart.bits", "choice", 7, (7, 8), 0),
    ("uart.parity", "choice", "E", ("N", "E", "O"), 0),
    ("uart.stop", "choice", 1, (1, 2), 0),
    # IEC 62056-21 optical-head port (node.iecport): off while iec.uart.id is null
    ("iec.uart.id", "pin", None, 2, 0),
    ("iec.uart.tx", "pin", None, 48, 0),
    ("iec.uart.rx", "pin", None, 48, 0),
    ("iec.baud", "choice", 9600, (300, 600, 1200, 2400, 4800, 9600, 19200), 0),
    # Bluetooth LE (lib/ble, docs/ble.md); name "" = rbmeter-<node id>
    ("ble.enabled", "bool", False, 0, 0),
    ("ble.name", "str", "", 0, 24),
    ("ble.max_conn", "int", 2, 1, 3),
    ("ble.mtu", "int", 247, 23, 247),
    ("ble.totals_ms", "int", 1000, 200, 60000),
    ("ble.bthome", "bool", True, 0, 0),
    ("ble.bthome_s", "int", 5, 1, 10),
    ("ble.bthome_module", "int", 0, 0, 7),
    ("ble.bthome_ch", "int", 0, 0, 2),
    ("ble.bthome_key", "key16", "", 0, 0),   # BTHome AES-CCM bind key: "" or 32 hex
)
MODULE_SCHEMA = (
    ("addr", "int", 0x50, 0x08, 0x77),
    ("label", "str", "", 0, 8),
)
CHANNEL_SCHEMA = (
    ("invert", "bool", False, 0, 0),
    ("disable", "bool", False, 0, 0),
    ("noload_w", "int", 0, 0, 1000),
)
MAX_MODULES = 8
MAX_CHANNELS = 3


def _check(typ, v, lo, hi):
    """(ok, value or message)."""
    if typ == "bool":
        if v is True or v is False:
            return True, v
        return False, "expected true/false"
    if typ == "int" or typ == "pin":
        if typ == "pin" and v is None:
            return True, None
        if isinstance(v, bool) or not isinstance(v, int):
            return False, "expected an integer" + (" or null" if typ == "pin" else "")
        a, b = (0, lo) if typ == "pin" else (lo, hi)
        if v < a or v > b:
            return False, "out of range %d..%d" % (a, b)
        return True, v
    if typ == "str":
        if not isinstance(v, str):
            return False, "expected a string"
        if len(v) < lo or len(v) > hi:
            return False, "length must be %d..%d" % (lo, hi)
        return True, v
    if typ == "dir":
        # '/<first>/...' where <first> can never be an import name: sys.path
        # holds '' (the root) and '/lib' on rp2/ESP32
        if not isinstance(v, str) or not lo <= len(v) <= hi or v[0] != "/":
            return False, "expected an absolute path of %d..%d chars" % (lo, hi)
        first = v[1:].split("/")[0]
        if first in ("", ".", "..") or _importable(first) or first == "lib":
            return False, "must not be a possible module name (use e.g. /rbmeter.d)"
        return True, v
    if typ == "secret":
        # a passphrase of lo..hi characters, or 'hex:' + 2*lo..2*hi hex digits
        # (a binary key); shorter keys are refused: docs/protocol.md
        if not isinstance(v, str):
            return False, "expected a string"
        if v == "":
            return True, v
        if v.startswith("hex:"):
            h = v[4:]
            if len(h) % 2 or not 2 * lo <= len(h) <= 2 * hi or \
                    any(c not in "0123456789abcdefABCDEF" for c in h):
                return False, "refused: hex key must be %d..%d hex digits (%d..%d bytes)" % (2 * lo, 2 * hi, lo, hi)
            return True, v
        if not lo <= len(v) <= hi:
            return False, "refused: passphrase must be %d..%d characters (or hex:<%d+ hex digits>)" % (lo, hi, 2 * lo)
        return True, v
    if typ == "key16":
        if not isinstance(v, str) or v and (len(v) != 32 or any(c not in "0123456789abcdefABCDEF" for c in v)):
            return False, "expected \"\" or 32 hex digits (16 bytes)"
        return True, v.lower()
    if typ == "choice":
        for c in lo:
            if v == c and type(v) is type(c):
                return True, v
        return False, "must be one of %s" % ", ".join(str(c) for c in lo)
    return False, "bad schema type"


def _importable(name):
    # same rule as node.layout.importable (store must not import node)
    if not name or name[0].isdigit():
        return False
    for c in name:
        if not (c.isalpha() or c.isdigit() or c == "_"):
            return False
    return True


def _coerce(typ, v, lo):
    # protocol SET sends text; JSON callers send real values
    if not isinstance(v, str) or typ == "str" or typ == "dir" or typ == "key16":
        return v
    s = v.strip()
    if typ == "bool":
        if s.lower() in ("1", "true", "on", "yes"):
            return True
        if s.lower() in ("0", "false", "off", "no"):
            return False
        return s
    if typ == "pin" and s.lower() in ("null", "none", "-"):
        return None
    if typ == "choice" and not isinstance(lo[0], int):
        return s
    try:
        return int(s, 0)
    except ValueError:
        return s


def _get(d, path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return False, None
        d = d[p]
    return True, d


def _put(d, path, v):
    for p in path[:-1]:
        d = d.setdefault(p, {})
    d[path[-1]] = v


def _default_module():
    m = {}
    for k, t, dv, lo, hi in MODULE_SCHEMA:
        m[k] = dv
    m["ch"] = [_default_channel() for _ in range(MAX_CHANNELS)]
    return m


def _default_channel():
    c = {}
    for k, t, dv, lo, hi in CHANNEL_SCHEMA:
        c[k] = dv
    return c


def defaults(profile=None):
    """profile: {dotted key: value} of the board (node.profile), e.g. the
    console UART that leaves the port's REPL alone."""
    cfg = {}
    for k, t, dv, lo, hi in SCHEMA:
        _put(cfg, k.split("."), profile[k] if profile and k in profile else dv)
    cfg["modules"] = [_default_module()]
    return cfg


def _known_top():
    out = ["modules"]
    for k, t, dv, lo, hi in SCHEMA:
        p = k.split(".")[0]
        if p not in out:
            out.append(p)
    return out


def _flat_section(src, schema, where, errs):
    out = {}
    for k, t, dv, lo, hi in schema:
        if k in src:
            ok, v = _check(t, src[k], lo, hi)
            if ok:
                out[k] = v
            else:
                errs.append("%s.%s: %s; using %r" % (where, k, v, dv))
                out[k] = dv
        else:
            out[k] = dv
    return out


def validate(raw, profile=None):
    """(config, errors) from a parsed JSON value."""
    errs = []
    cfg = defaults(profile)
    if not isinstance(raw, dict):
        return cfg, ["config: top level must be an object; using defaults"]
    for k in raw:
        if k not in _known_top():
            errs.append("%s: unknown key ignored" % k)
    for k, t, dv, lo, hi in SCHEMA:
        path = k.split(".")
        found, v = _get(raw, path)
        if not found:
            continue
        ok, r = _check(t, v, lo, hi)
        if ok:
            _put(cfg, path, r)
        else:
            errs.append("%s: %s; using %r" % (k, r, _get(cfg, path)[1]))
    for sec in raw:
        if isinstance(raw[sec], dict) and sec in cfg and isinstance(cfg[sec], dict):
            for k in raw[sec]:
                if k not in cfg[sec]:
                    errs.append("%s.%s: unknown key ignored" % (sec, k))
    if "modules" in raw:
        mods = raw["modules"]
        if not isinstance(mods, list) or not mods or len(mods) > MAX_MODULES:
            errs.append("modules: expected a list of 1..%d modules; using default" % MAX_MODULES)
        else:
            out = []
            seen = []
            for n, m in enumerate(mods):
                w = "modules.%d" % n
                if not isinstance(m, dict):
                    errs.append("%s: expected an object; module skipped" % w)
                    continue
                mm = _flat_section(m, MODULE_SCHEMA, w, errs)
                if mm["addr"] in seen:
                    errs.append("%s.addr: duplicate address 0x%02x; module skipped" % (w, mm["addr"]))
                    continue
                seen.append(mm["addr"])
                chs = m.get("ch", [])
                if not isinstance(chs, list) or len(chs) > MAX_CHANNELS:
                    errs.append("%s.ch: expected a list of up to %d channels; using defaults" % (w, MAX_CHANNELS))
                    chs = []
                cl = []
                for c in range(MAX_CHANNELS):
                    if c < len(chs) and isinstance(chs[c], dict):
                        cl.append(_flat_section(chs[c], CHANNEL_SCHEMA, "%s.ch.%d" % (w, c), errs))
                    else:
                        if c < len(chs):
                            errs.append("%s.ch.%d: expected an object; using defaults" % (w, c))
                        cl.append(_default_channel())
                mm["ch"] = cl
                out.append(mm)
            if out:
                cfg["modules"] = out
            else:
                errs.append("modules: no valid module; using default")
    if cfg["save"]["max_interval_s"] < cfg["save"]["min_interval_s"]:
        errs.append("save.max_interval_s < save.min_interval_s; using %d" % cfg["save"]["min_interval_s"])
        cfg["save"]["max_interval_s"] = cfg["save"]["min_interval_s"]
    return cfg, errs


def load(path="/config.json", fs=None, profile=None):
    """(config, errors). Never raises."""
    try:
        if fs is not None:
            text = fs.read(path)
        else:
            with open(path, "rb") as f:
                text = f.read()
    except OSError:
        return defaults(profile), ["%s: missing or unreadable; using defaults" % path]
    try:
        raw = json.loads(text)
    except (ValueError, TypeError, UnicodeError):
        return defaults(profile), ["%s: not valid JSON; using defaults" % path]
    try:
        return validate(raw, profile)
    except Exception as e:   # a broken config must never stop the meter
        return defaults(profile), ["%s: %s; using defaults" % (path, e)]


def _lookup(key):
    """(type, lo, hi, path) for a dotted key, including modules.N.x / modules.N.ch.M.x."""
    for k, t, dv, lo, hi in SCHEMA:
        if k == key:
            return t, lo, hi, k.split(".")
    p = key.split(".")
    if len(p) == 3 and p[0] == "modules" and p[1].isdigit():
        for k, t, dv, lo, hi in MODULE_SCHEMA:
            if k == p[2]:
                return t, lo, hi, p
    if len(p) == 5 and p[0] == "modules" and p[1].isdigit() and p[2] == "ch" and p[3].isdigit():
        for k, t, dv, lo, hi in CHANNEL_SCHEMA:
            if k == p[4]:
                return t, lo, hi, p
    return None


def get_key(cfg, key):
    p = key.split(".")
    d = cfg
    for x in p:
        if isinstance(d, list):
            if not x.isdigit() or int(x) >= len(d):
                return None
            d = d[int(x)]
        elif isinstance(d, dict) and x in d:
            d = d[x]
        else:
            return None
    return d


def set_key(cfg, key, value):
    """Validate and apply one key in place: (ok, message)."""
    s = _lookup(key)
    if s is None:
        return False, "%s: unknown key" % key
    t, lo, hi, p = s
    v = _coerce(t, value, lo)
    ok, r = _check(t, v, lo, hi)
    if not ok:
        return False, "%s: %s" % (key, r)
    if p[0] == "modules":
        mods = cfg["modules"]
        n = int(p[1])
        if n > len(mods) or n >= MAX_MODULES:
            return False, "%s: no such module" % key
        if n == len(mods):
            mods.append(_default_module())
        if len(p) == 3:
            if p[2] == "addr":
                for j in range(len(mods)):
                    if j != n and mods[j]["addr"] == r:
                        return False, "%s: address in use" % key
            mods[n][p[2]] = r
        else:
            c = int(p[3])
            if c >= MAX_CHANNELS:
                return False, "%s: no such channel" % key
            mods[n]["ch"][c][p[4]] = r
        return True, "ok"
    if key == "save.max_interval_s" and r < cfg["save"]["min_interval_s"]:
        return False, "%s: below save.min_interval_s" % key
    if key == "save.min_interval_s" and r > cfg["save"]["max_interval_s"]:
        return False, "%s: above save.max_interval_s" % key
    _put(cfg, p, r)
    return True, "ok"


def save(cfg, path="/config.json", fs=None):
    """Atomic replace: write path.tmp then rename over path (LittleFS rename
    is atomic). Returns None or an error message."""
    data = json.dumps(cfg).encode()
    tmp = path + ".tmp"
    try:
        if fs is not None:
            fs.write(tmp, data)
            fs.rename(tmp, path)
        else:
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, path)
    except OSError as e:
        return "%s: save failed (%s)" % (path, e)
    return None
