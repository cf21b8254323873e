"""rbmeter: read, stream, log, configure and simulate rbAmp metering nodes.

Every command talks to the node's console (serial port, USB-UART or the pty
printed by `rbmeter sim`) using the line protocol in JSON mode with CRC-16
checked lines. --port defaults to $RBMETER_PORT.
"""
import argparse
import json
import os
import signal
import sys
import time

from rbmeter import __version__
from rbmeter import client as _client
from rbmeter import csvlog, secret as _secret, view

EXAMPLES = """examples:
  rbmeter sim --watch                          the node on this laptop, live view
  rbmeter info --port /dev/ttyUSB0
  rbmeter totals --port /dev/pts/5 --json
  rbmeter live --port /dev/pts/5 --once
  rbmeter log --port /dev/pts/5 --file meter.csv --interval 10 --daily
  rbmeter obis --port /dev/pts/5
  RBMETER_SECRET=s3cret rbmeter preset 0x50 0 1234.5 0 --port /dev/pts/5
  rbmeter bridge --port /dev/ttyUSB0 --mqtt localhost   nodes -> MQTT -> Home Assistant
"""


# -- option groups -------------------------------------------------------------------

def _conn_opts():
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection")
    g.add_argument("--port", default=os.environ.get("RBMETER_PORT"),
                   help="serial device of the node console (default $RBMETER_PORT)")
    g.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    g.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a reply (default 2)")
    g.add_argument("--retries", type=int, default=3,
                   help="resends after a checksum error or timeout (default 3)")
    g.add_argument("--json", action="store_true", help="machine output: JSON on stdout")
    from rbmeter import ble_cli
    ble_cli.add_conn_opts(g)
    return p


def _auth_opts():
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("authentication (challenge-response; the secret never crosses the link)")
    g.add_argument("--secret", help="shared secret (prefer $RBMETER_SECRET or --secret-file: "
                                    "command lines are visible to other users); 'hex:..' for binary")
    g.add_argument("--secret-file", help="file holding the secret (default ~/.config/rbmeter/secret, "
                                         "or $RBMETER_SECRET_FILE)")
    return p


def build_parser():
    p = argparse.ArgumentParser(prog="rbmeter", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version="rbmeter " + __version__)
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    conn = _conn_opts()
    auth = _auth_opts()
    fmt = argparse.RawDescriptionHelpFormatter

    def add(name, help_, desc, parents, epilog=None):
        return sub.add_parser(name, help=help_, description=desc, parents=parents,
                              epilog=epilog, formatter_class=fmt)

    add("info", "node firmware, id, uptime and its modules",
        "Shows the node (firmware, id, uptime) and every rbAmp module: address, variant, "
        "channels, voltage hardware, module firmware, tier, read mode.", [conn],
        "example:\n  rbmeter info --port /dev/ttyUSB0 --json")

    s = add("totals", "import/export/net energy per channel (exact kWh)",
            "Reads the totals of every channel (or one module / channel): import, export and net "
            "energy in kWh with 6 exact decimals, gap time and current power.", [conn],
            "examples:\n  rbmeter totals --port /dev/pts/5\n  rbmeter totals 0x50 1 --port /dev/pts/5 --json")
    s.add_argument("module", nargs="?", help="only this module, e.g. 0x50")
    s.add_argument("ch", nargs="?", type=int, help="only this channel (0-based)")

    s = add("live", "refreshing table of power, import, export per channel",
            "Refreshing terminal table (plain ANSI) of power, import, export and net energy per "
            "channel, read every --interval seconds until Ctrl-C. --once prints one table "
            "without escape codes (for scripts); with --json one JSON object per refresh.", [conn],
            "examples:\n  rbmeter live --port /dev/pts/5\n  rbmeter live --port /dev/pts/5 --once --json")
    s.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    s.add_argument("--once", action="store_true", help="one reading, no ANSI codes, then exit")
    s.add_argument("--count", type=int, default=0, help="stop after N refreshes (default: until Ctrl-C)")

    s = add("log", "append readings to CSV with timestamps (rotating)",
            "Appends one CSV row per channel every --interval seconds: time_utc (ISO 8601), "
            "unix_ms, module, ch, p_mw, import_mwh, export_mwh, gap_ms. Rotation by size "
            "(--max-bytes, keeps --backups old files as FILE.1, FILE.2, ...) and/or by UTC day "
            "(--daily: FILE-YYYY-MM-DD.csv). A header row starts every file. Read errors are "
            "reported on stderr and the logger keeps going.", [conn],
            "examples:\n  rbmeter log --port /dev/pts/5 --file meter.csv --interval 10\n"
            "  rbmeter log --port /dev/ttyUSB0 --file logs/meter.csv --daily --max-bytes 10000000")
    s.add_argument("--file", required=True, help="CSV file to append to")
    s.add_argument("--interval", type=float, default=10.0, help="seconds between readings (default 10)")
    s.add_argument("--max-bytes", type=int, default=0, help="rotate when the file would exceed this size (0 = never)")
    s.add_argument("--backups", type=int, default=5, help="rotated files to keep (default 5)")
    s.add_argument("--daily", action="store_true", help="one file per UTC day")
    s.add_argument("--count", type=int, default=0, help="stop after N readings (default: until Ctrl-C)")

    s = add("obis", "IEC 62056-21 readout (OBIS codes)",
            "IEC 62056-21 mode C readout over the console: request /?!, identification, ACK option "
            "select (readout), data block with BCC check. Prints OBIS code, value and unit: "
            "C.1.0 node id; per channel k (1-based, INFO order) 1-k:1.8.0 import kWh, "
            "1-k:2.8.0 export kWh, 1-k:16.7.0 power kW.", [conn],
            "examples:\n  rbmeter obis --port /dev/pts/5\n  rbmeter obis --port /dev/pts/5 --raw")
    s.add_argument("--address", default="", help="device address for /?ADDRESS! (default: none)")
    s.add_argument("--raw", action="store_true", help="print the raw data block")

    s = add("set", "change a configuration value (authenticates first)",
            "Authenticates (challenge-response, HMAC-SHA256) and sets one configuration key.",
            [conn, auth], "example:\n  RBMETER_SECRET=s3cret rbmeter set save_interval_s 300 --port /dev/pts/5")
    s.add_argument("key")
    s.add_argument("value", nargs="+", help="value (several words are joined with spaces)")

    s = add("preset", "set the totals of one channel (authenticates first)",
            "Authenticates and sets import/export totals of one channel, exact decimal kWh "
            "(up to 6 decimals, i.e. 1 mWh), e.g. to take over the reading of a replaced meter.",
            [conn, auth], "example:\n  rbmeter preset 0x50 0 12345.678 0 --port /dev/pts/5 --secret-file ~/.rbsecret")
    s.add_argument("module", help="module address, e.g. 0x50")
    s.add_argument("ch", type=int, help="channel (0-based)")
    s.add_argument("import_kwh", help="import total in kWh")
    s.add_argument("export_kwh", help="export total in kWh")

    add("save", "commit unsaved energy to flash now (signed; do this before unplugging)",
        "Authenticates and sends a signed SAVE: the node commits every channel with unsaved "
        "energy (a no-op when nothing is unsaved). `rbmeter save` followed by power-off loses "
        "nothing: the safe way to unplug a node.", [conn, auth],
        "example:\n  rbmeter save --port /dev/ttyUSB0")

    s = add("audit", "the node's last audit records (open to read)",
            "Lists the last N audit records: logins, refused commands, and signed commands with "
            "whether they were applied.", [conn], "example:\n  rbmeter audit 20 --port /dev/pts/5")
    s.add_argument("n", nargs="?", type=int, default=10, help="how many (1..64, default 10)")

    s = add("key", "change the node's secret (signed; the new key never crosses the link in clear)",
            "Authenticates with the current secret and sends a signed KEY: the new secret XOR a "
            "keystream derived from the session key. The new secret is 16..64 bytes: a passphrase "
            "of 16+ characters or hex:<32+ hex digits>.", [conn, auth],
            "example:\n  rbmeter key --new-secret-file ~/.rbsecret.new --secret-file ~/.rbsecret --port /dev/pts/5")
    s.add_argument("--new-secret", help="the new secret (prefer --new-secret-file)")
    s.add_argument("--new-secret-file", help="file holding the new secret")

    s = add("reset", "reset totals, counters or config (authenticates first)",
            "Authenticates and resets: totals (all, one module or one channel), counters "
            "(gap/error/fault counters) or config (factory defaults, the secret is kept). "
            "Needs --yes.", [conn, auth],
            "examples:\n  rbmeter reset counters --yes --port /dev/pts/5\n"
            "  rbmeter reset totals 0x50 1 --yes --port /dev/pts/5")
    s.add_argument("scope", choices=("totals", "counters", "config"))
    s.add_argument("module", nargs="?", help="totals only: this module")
    s.add_argument("ch", nargs="?", type=int, help="totals only: this channel")
    s.add_argument("--yes", action="store_true", help="really do it")

    s = add("bridge", "publish nodes to an MQTT broker for Home Assistant (discovery, Energy)",
            "Reads one or many nodes (repeat --port, or --config FILE with [[node]] tables: port, "
            "name, area) every --interval seconds and publishes to an MQTT broker with paho-mqtt: "
            "retained JSON per channel on rbmeter/<node_id>/<module>/<ch>/state (exact kWh strings, "
            "power_w, gap_s), node STATUS on rbmeter/<node_id>/status, online/offline on "
            "rbmeter/<node_id>/availability (last will), and Home Assistant MQTT discovery under "
            "<prefix>/sensor/<unique_id>/config (import/export: energy, total_increasing, kWh; net: "
            "total; power: W). A published total never decreases: after a power cut the last value is "
            "held until the node passes it; a preset/reset to a lower value becomes a new meter (new "
            "unique_id) and the old one is retired. While the broker is away messages wait in a "
            "bounded queue on disk (--state-dir) and are replayed in order. The password is read "
            "from --password-file only (never on the command line). Details: docs/bridge.md.",
            [], "examples:\n  rbmeter bridge --port /dev/ttyUSB0 --mqtt localhost\n"
            "  rbmeter bridge --port /dev/ttyUSB0 --port /dev/ttyUSB1 --mqtt broker.lan:8883 --tls "
            "--user rbmeter --password-file ~/.config/rbmeter/mqtt.pass --interval 10\n"
            "  rbmeter bridge --config /etc/rbmeter/bridge.toml")
    s.add_argument("--port", action="append", help="serial device of a node (repeat for several nodes)")
    s.add_argument("--ble", action="append", metavar="NAME_OR_ADDRESS",
                   help="a node over Bluetooth LE, its name (rbmeter-<node_id>) or address (repeatable)")
    s.add_argument("--ble-hci", metavar="SPEC", default=os.environ.get("RBMETER_BLE_HCI"),
                   help="BLE through a Bumble controller (e.g. usb:0) instead of the system adapter")
    s.add_argument("--config", help="TOML (or .json) file: mqtt, user, password_file, ... and [[node]] "
                                    "tables with port, name, area (see docs/bridge.md)")
    s.add_argument("--mqtt", metavar="HOST[:PORT]", help="MQTT broker (port default 1883, 8883 with --tls)")
    s.add_argument("--user", help="MQTT user name")
    s.add_argument("--password-file", help="file holding the MQTT password (first line)")
    s.add_argument("--tls", action="store_true", help="connect with TLS")
    s.add_argument("--cafile", help="CA certificate(s) to verify the broker (default: system store)")
    s.add_argument("--discovery-prefix", help="Home Assistant discovery prefix (default homeassistant)")
    s.add_argument("--interval", type=float, help="seconds between readings of each node (default 10)")
    s.add_argument("--status-interval", type=float, help="seconds between node STATUS publications (default 60)")
    s.add_argument("--state-dir", help="guard and queue files (default ~/.local/state/rbmeter/bridge)")
    s.add_argument("--queue-max", type=int, help="messages kept per node while the broker is away (default 10000)")
    s.add_argument("--duration", type=float, help="stop after S seconds (default: until Ctrl-C / SIGTERM)")
    s.add_argument("--progress", type=float, help="status line every S s (default 1 on a terminal, else 30; 0 = off)")
    s.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    s.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for a node reply (default 2)")
    s.add_argument("--retries", type=int, default=2, help="resends after a checksum error or timeout (default 2)")

    s = add("sim", "run the whole node on this laptop (simulated rbAmp modules)",
            "Runs the node firmware (lib/node via tools/simboard/simnode.py) on the MicroPython "
            "unix port against simulated rbAmp module(s) and a LittleFS flash image, serves its "
            "console on a pty (printed as `console: /dev/pts/N`; attach with "
            "`python -m serial.tools.miniterm /dev/pts/N` or any rbmeter command --port), and "
            "stops after --duration (real time: until Ctrl-C without --duration). With "
            "--power-cuts the node is killed at seeded instants (some during flash operations) "
            "and restarted on the same flash image with RAM lost. At the end the totals are "
            "read back over the console and compared with the simulator's ground truth.",
            [], "examples:\n  rbmeter sim --watch\n"
            "  rbmeter sim --virtual --duration 86400 --json\n"
            "  rbmeter sim --virtual --duration 86400 --power-cuts 5 --i2c-fault-rate 0.01 --seed 7 --json\n"
            "  rbmeter sim --virtual --duration 600 --start-ticks 1073700000 --json\n"
            "  rbmeter sim --modules 0x50:UI2,0x51:I3 --profile day.csv --state ./board")
    s.add_argument("--profile", help="power profile CSV t_s,p0_w[,p1_w,p2_w][,u_v] (default: built-in solar-home day)")
    s.add_argument("--modules", default="0x50:UI2", help="addr:variant list, e.g. 0x50:UI2,0x51:I3 (default 0x50:UI2)")
    s.add_argument("--virtual", action="store_true", help="virtual time: as fast as possible (needs --duration)")
    s.add_argument("--duration", type=float, help="seconds of (virtual) time to run; real time default: until Ctrl-C")
    s.add_argument("--start-ms", type=int, default=0, help="virtual time of the first power-up (profile axis, default 0)")
    s.add_argument("--start-ticks", type=int, default=0,
                   help="node ticks_ms() at each power-up (period 2^30; e.g. 1073700000 crosses the wrap)")
    s.add_argument("--i2c-fault-rate", type=float, default=0.0, help="probability of a failed I2C transaction")
    s.add_argument("--power-cuts", type=int, default=0, help="cut the power N times at seeded instants (needs --duration)")
    s.add_argument("--max-downtime", type=float, default=30.0, help="longest off time after a cut, s (default 30)")
    s.add_argument("--seed", type=int, default=1, help="seed for cuts, downtimes, faults and noise (default 1)")
    s.add_argument("--state", help="board state dir (flash image) kept between runs (default: temp dir)")
    s.add_argument("--speed", type=float, default=1.0, help="real time only: virtual ms per wall ms (default 1)")
    s.add_argument("--window-ms", type=int, help="RT window of modules and sampler, ms (simnode default 200; "
                                                 "1000 makes long virtual runs ~5x cheaper)")
    s.add_argument("--secret", help="provision this AUTH secret into the board's config before the first "
                                    "boot (else $RBMETER_SECRET / --secret-file / ~/.config/rbmeter/secret "
                                    "if present; without any the node answers AUTH with ERR 403)")
    s.add_argument("--secret-file", help="provision the secret from this file")
    s.add_argument("--board-uid", help="the board's unique id in hex (default 5e1a0001); the node id is its "
                                       "last 4 bytes, e.g. 5e1a0002 for a second simulated node")
    s.add_argument("--heapsize", default="4M", help="MicroPython heap for the node process, incl. the 1 MiB flash image (default 4M)")
    s.add_argument("--watch", action="store_true", help="show the live view read over the console until Ctrl-C")
    s.add_argument("--interval", type=float, default=1.0, help="--watch refresh interval, s (default 1)")
    s.add_argument("--json", action="store_true", help="print one JSON summary object as the last line")
    s.add_argument("--ble-hci-uart", metavar="TTY",
                   help="run the node on the unix build with NimBLE (make firmware-ble), BLE enabled, its HCI "
                        "UART on TTY (e.g. a Bumble controller's pty: python -m rbmeter.ble_link; docs/ble.md)")
    s.add_argument("--hold", action="store_true",
                   help="after --duration keep the node serving its console (clock stopped) until Ctrl-C")
    s.add_argument("-v", "--verbose", action="store_true", help="progress and node log lines on stderr")
    s.add_argument("--target", choices=("unix", "pico"), default="unix",
                   help="unix: lib/ on the MicroPython unix port (default); pico: the frozen RPI_PICO firmware "
                        "on an emulated RP2040, always emulator-timed (--virtual = as fast as it goes, else "
                        "paced to --speed x wall time); see docs/pico.md")
    s.add_argument("--resets", type=int, default=0,
                   help="--target pico: N watchdog/soft resets at seeded cycles (scratch registers kept)")
    s.add_argument("--line-rate", action="store_true",
                   help="--target pico: model the UART line rate (TX FIFO back-pressure, RX overruns)")
    from rbmeter import ble_cli
    ble_cli.add_scan(sub, [], fmt)
    return p


# -- helpers -------------------------------------------------------------------------

def _err(msg):
    sys.stderr.write("rbmeter: %s\n" % msg)


def _connect(a):
    if getattr(a, "ble", None):
        from rbmeter import ble_cli        # the same client protocol over BLE (docs/ble.md)
        a.port = "ble:" + a.ble
        return ble_cli.connect(a)
    if not a.port:
        raise UsageError("no --port given (or set $RBMETER_PORT)")
    try:
        return _client.Client(a.port, baud=a.baud, timeout=a.timeout, retries=a.retries)
    except Exception as e:     # serial.SerialException, OSError
        raise UsageError("cannot open %s: %s" % (a.port, e))


class UsageError(Exception):
    pass


def _emit(a, obj, text):
    if a.json:
        print(json.dumps(obj, sort_keys=True))
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _authed(a, c):
    try:
        key, _src = _secret.load(a.secret, a.secret_file)
    except _secret.SecretError as e:
        raise UsageError(str(e))
    c.auth(key)


# -- commands ------------------------------------------------------------------------

def cmd_info(a):
    with _connect(a) as c:
        inf = c.info()
    n = inf["node"]
    lines = ["node %s  fw %s  uptime %s s" % (n.get("id"), n.get("fw"), n.get("uptime_s"))]
    for m in inf["modules"]:
        lines.append("  module %s  %s  %s ch  voltage_hw=%s  fw %s  tier %s  read %s  %s"
                     % (m.get("addr"), m.get("variant"), m.get("channels"), m.get("voltage_hw"),
                        m.get("fw"), m.get("tier"), m.get("read_mode"), "ok" if m.get("ok", m.get("online")) else "NOT ANSWERING"))
    _emit(a, inf, "\n".join(lines))
    return 0


def cmd_totals(a):
    with _connect(a) as c:
        chans = c.channels(a.module, a.ch)
    _emit(a, chans, view.render_table(chans, ansi=False))
    return 0


def cmd_live(a):
    with _connect(a) as c:
        n = 0
        while True:
            try:
                chans = c.channels()
            except (_client.ClientError, _client.NodeError) as e:
                if a.once:
                    raise
                # a refreshing view rides out a node reboot or a noisy line
                if a.json:
                    _err("no reply from %s: %s" % (a.port, e))
                else:
                    sys.stdout.write(view.CLEAR + "(no reply from %s: %s)\n" % (a.port, e))
                    sys.stdout.flush()
                time.sleep(max(a.interval, 0.05))
                continue
            n += 1
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            if a.json:
                print(json.dumps({"time": stamp, "channels": chans}, sort_keys=True), flush=True)
            else:
                sys.stdout.write(view.render_table(chans, title="rbmeter live  %s  %s" % (a.port, stamp),
                                                   footer="" if a.once else "Ctrl-C to quit",
                                                   ansi=not a.once))
                sys.stdout.flush()
            if a.once or (a.count and n >= a.count):
                return 0
            time.sleep(max(a.interval, 0.05))


def cmd_log(a):
    out = csvlog.RotatingCsv(a.file, max_bytes=a.max_bytes, daily=a.daily, backups=a.backups)
    n = 0
    errors = 0
    c = _connect(a)            # a missing port at start is a usage error
    try:
        nxt = time.monotonic()
        while True:
            try:
                if c is None:      # the adapter went away: reopen it (USB replug)
                    c = _client.Client(a.port, baud=a.baud, timeout=a.timeout, retries=a.retries)
                chans = c.channels()
                now_ms = int(time.time() * 1000)
                out.write_rows(csvlog.rows_from_channels(chans, now_ms), now_ms)
            except (_client.ClientError, _client.NodeError) as e:
                errors += 1
                _err("read failed (%s), continuing" % e)
            except OSError as e:   # serial.SerialException is an OSError
                errors += 1
                _err("I/O error (%s), reopening the port" % e)
                if c is not None:
                    c.close()
                c = None
            n += 1
            if a.count and n >= a.count:
                break
            nxt += a.interval
            time.sleep(max(0.0, nxt - time.monotonic()))
    finally:
        out.close()
        if c is not None:
            c.close()
    if a.json:
        print(json.dumps({"readings": n, "errors": errors, "rotations": out.rotations, "file": a.file}))
    return 0 if errors < n or n == 0 else 1


def cmd_obis(a):
    with _connect(a) as c:
        ident, items, raw = c.iec_readout(a.address)
    if a.json:
        print(json.dumps({"ident": ident, "data": [{"obis": o, "value": v, "unit": u} for o, v, u in items]}))
    elif a.raw:
        sys.stdout.write(ident + "\n" + raw.decode("ascii", "replace"))
        sys.stdout.write("\n")
    else:
        lines = [ident]
        for o, v, u in items:
            lines.append(("%-12s %16s %s" % (o, v, u)).rstrip())
        print("\n".join(lines))
    return 0


def _signed_session(a, c, fn):
    """auth, fn(), and LOGOUT whatever happened (also when fn fails)."""
    try:
        _authed(a, c)
        return fn()
    finally:
        c.logout()


def _no_ctl(*values):
    for v in values:
        try:
            _client.check_value(v)
        except ValueError as e:
            raise UsageError(str(e))


def cmd_set(a):
    _no_ctl(a.key, " ".join(a.value))
    with _connect(a) as c:
        msg = _signed_session(a, c, lambda: c.set(a.key, " ".join(a.value)))
    _emit(a, {"ok": True, "key": a.key, "value": msg if msg else " ".join(a.value)},
          "OK %s = %s" % (a.key, msg if msg else " ".join(a.value)))
    return 0


def cmd_preset(a):
    try:
        imp = _client.parse_kwh(a.import_kwh)
        exp = _client.parse_kwh(a.export_kwh)
    except ValueError as e:
        raise UsageError(str(e))
    _no_ctl(a.module)
    with _connect(a) as c:
        _signed_session(a, c, lambda: c.preset(a.module, a.ch, imp, exp))
        after = c.channels(a.module, a.ch)
    _emit(a, {"ok": True, "channels": after}, "OK\n" + view.render_table(after, ansi=False))
    return 0


def cmd_reset(a):
    if not a.yes:
        raise UsageError("reset %s: add --yes to confirm" % a.scope)
    if a.scope != "totals" and a.module:
        raise UsageError("module/ch only with 'reset totals'")
    _no_ctl(a.module or "")
    with _connect(a) as c:
        _signed_session(a, c, lambda: c.reset(a.scope, a.module, a.ch))
    _emit(a, {"ok": True, "scope": a.scope}, "OK reset %s" % a.scope)
    return 0


def cmd_save(a):
    with _connect(a) as c:
        msg = _signed_session(a, c, c.save)
    _emit(a, {"ok": True, "msg": msg}, "OK %s" % (msg or "saved"))
    return 0


def cmd_audit(a):
    with _connect(a) as c:
        recs = c.audit(a.n)
    _emit(a, recs, "\n".join("%5s %8s s  %-9s %s" % (r.get("seq"), r.get("uptime_s"), r.get("kind"),
                                                    r.get("detail") or "") for r in recs) or "(no records)")
    return 0


def cmd_key(a):
    try:
        new, _src = _secret.load(a.new_secret, a.new_secret_file, environ={}, default_file=None)
    except _secret.SecretError as e:
        raise UsageError("new secret: %s" % e)
    why = _secret.problem(new)
    if why:
        raise UsageError("new %s" % why)
    with _connect(a) as c:
        msg = _signed_session(a, c, lambda: c.change_key(new))
    _emit(a, {"ok": True, "msg": msg}, "OK %s: store the new secret where rbmeter reads it" % msg)
    return 0


def cmd_sim(a):
    from rbmeter import sim as _sim
    if a.power_cuts and a.duration is None:
        raise UsageError("--power-cuts needs --duration")
    if a.virtual and a.duration is None:
        raise UsageError("--virtual needs --duration")

    def log(msg):
        if a.verbose:
            sys.stderr.write("sim: %s\n" % msg)

    sec = None
    try:
        key, _src = _secret.load(a.secret, a.secret_file)
        why = _secret.problem(key)
        if why:
            raise UsageError("sim: %s" % why)
        sec = _secret.provision_text(key)
    except _secret.SecretError as e:
        if a.secret or a.secret_file:
            raise UsageError(str(e))
    try:
        opts = _sim.SimOptions(profile=a.profile, modules=a.modules, virtual=a.virtual,
                               duration_s=a.duration, start_ms=a.start_ms, start_ticks=a.start_ticks,
                               i2c_fault_rate=a.i2c_fault_rate, power_cuts=a.power_cuts,
                               max_downtime_ms=int(a.max_downtime * 1000), seed=a.seed, state=a.state,
                               speed=a.speed, heapsize=a.heapsize, verbose=a.verbose, monitor=a.watch,
                               secret=sec, window_ms=a.window_ms, board_uid=a.board_uid,
                               ble_hci_uart=a.ble_hci_uart)
        if a.target == "pico":
            from rbmeter import simpico
            opts.resets = a.resets
            opts.line_rate = a.line_rate
            sim = simpico.PicoSim(opts, log=log)
        else:
            if a.resets or a.line_rate:
                raise UsageError("--resets and --line-rate need --target pico")
            sim = _sim.Sim(opts, log=log)
    except _sim.SimError as e:
        raise UsageError(str(e))
    # `console:` goes to stdout first, so scripts can attach; with --json the
    # JSON object stays the last line.
    print("console: %s" % sim.console, flush=True)
    if not a.json:
        print("attach a serial terminal: %s -m serial.tools.miniterm %s 115200"
              % (os.path.basename(sys.executable) or "python3", sim.console), flush=True)
    c = None
    interrupted = False
    old_term = signal.getsignal(signal.SIGTERM)
    old_int = signal.getsignal(signal.SIGINT)
    stop = []

    def on_stop(signum, frame):
        # a flag, not an exception: raised inside a queue/lock wait it could
        # leave the supervision threads deadlocked; the loop polls the flag
        stop.append(signum)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    try:
        sim.start()
        # --watch: rbmeter reads through the bridge's monitor port and leaves the
        # node's mode alone (json_mode None), so a person on the console sees
        # only their own traffic; short timeouts so a cut does not stall supervision
        if a.watch:
            c = _client.Client(sim.control, timeout=1.0, retries=0, json_mode=None)
        else:
            c = _client.Client(sim.control, timeout=3.0, retries=3)
        sim.on_boot = lambda t: setattr(c, "_synced", False)   # engine state is lost at a cut
        last_draw = 0.0
        try:
            while not sim.finished and not stop:
                sim.step(0.05 if a.watch else 0.2)
                if a.watch and sim.state_name == "running" and time.monotonic() - last_draw >= a.interval:
                    last_draw = time.monotonic()
                    _watch_draw(c, sim, a)
        except KeyboardInterrupt:
            interrupted = True
        interrupted = interrupted or bool(stop)
        if sim.state_name == "failed":
            _err("simulation failed: %s" % sim.error)
            return 1
        chans = None
        if interrupted and sim.state_name in ("booting", "running"):
            # Ctrl-C / SIGTERM: a clean stop (the node commits), then the totals
            stop_clean = getattr(sim, "stop_clean", None)
            try:
                if stop_clean is not None:
                    stop_clean()
            except KeyboardInterrupt:
                pass
        if sim.state_name == "done" or (interrupted and sim.state_name == "running"):
            c.retries = 3
            # the monitor waits for the person's line to be idle first
            c.timeout = 3.0 + (sim.bridge.quiet_s if a.watch else 0.0)
            try:
                chans = c.channels()
            except (_client.ClientError, _client.NodeError) as e:
                _err("could not read totals from the node: %s" % e)
        if interrupted:
            sim.stop_now()          # truth up to now: the totals were read just before
        elif a.hold and sim.state_name == "done":
            signal.signal(signal.SIGINT, old_int)
            sys.stderr.write("run finished; console %s still served (clock stopped), Ctrl-C to end\n"
                             % sim.console)
            try:
                while sim.node is not None and sim.node.proc.poll() is None:
                    time.sleep(0.2)
            except KeyboardInterrupt:
                pass
        res = sim.result(chans)
        if a.watch:
            sys.stdout.write("\n")
        if a.json:
            print(json.dumps(res, sort_keys=True), flush=True)
        else:
            print(_sim_summary(res, sim), flush=True)
        return 0 if chans is not None else 1
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        if c is not None:
            c.close()
        sim.close()


def cmd_bridge(a):
    from rbmeter import bridge as _bridge
    old_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    try:
        s = _bridge.settings_from_args(a)
        signal.signal(signal.SIGTERM, on_term)
        return _bridge.run(s)
    except _bridge.BridgeError as e:
        raise UsageError(str(e))
    except KeyboardInterrupt:          # stopped before it got going: nothing to clean up
        return 0
    finally:
        signal.signal(signal.SIGTERM, old_term)


def _watch_draw(c, sim, a):
    title = "rbmeter sim  t=%s s  console %s  reboots %d" % (view.fmt_s(sim.now_ms()), sim.console, sim.reboots)
    footer = "attach a serial terminal: python -m serial.tools.miniterm %s 115200   Ctrl-C to stop" % sim.console
    if sim.bridge.user_idle_s() < sim.bridge.quiet_s + 0.5:
        # the person's commands have the console: the view waits (no stale replies)
        if getattr(c, "_last_view", None):
            sys.stdout.write(view.render_table(c._last_view, title=title,
                                               footer="(paused: console in use)  " + footer))
            sys.stdout.flush()
        return
    try:
        chans = c.channels()
        c._last_view = chans
    except (_client.ClientError, _client.NodeError) as e:
        sys.stdout.write(view.CLEAR + title + "\n(node not answering: %s)\n" % e)
        c._synced = False
        return
    sys.stdout.write(view.render_table(chans, title=title, footer=footer))
    sys.stdout.flush()


def _sim_summary(res, sim):
    lines = ["elapsed %s s, downtime %s s, reboots %d"
             % (view.fmt_s(res["elapsed_ms"]), view.fmt_s(res["downtime_ms"]), res["reboots"])]
    truth = {(t["module"], t["ch"]): t for t in res["truth"]}
    lines.append("%-6s %2s  %16s %16s  %16s %16s  %10s" % ("module", "ch", "import kWh", "truth", "export kWh",
                                                          "truth", "gap s"))
    for c in res["channels"]:
        t = truth.get((c["module"], c["ch"]), {})
        lines.append("%-6s %2s  %16s %16s  %16s %16s  %10s" % (
            c["module"], c["ch"], view.fmt_kwh(c["import_mwh"]), view.fmt_kwh(t.get("import_mwh")),
            view.fmt_kwh(c["export_mwh"]), view.fmt_kwh(t.get("export_mwh")), view.fmt_s(c["gap_ms"])))
    try:
        from rbmeter import sim as _sim
        bad = _sim.check_bounds(res, _sim.load_profile(sim.o.profile))
    except Exception as e:       # the summary must not fail on the comparison
        bad = ["bounds not checked: %s" % e]
    if not res["channels"]:
        lines.append("no totals read from the node")
    elif bad:
        lines.append("OUTSIDE the documented bounds (docs/rbmeter.md):")
        lines += ["  " + b for b in bad]
    else:
        lines.append("within the documented bounds of the truth (docs/rbmeter.md)")
    return "\n".join(lines)


COMMANDS = {"info": cmd_info, "totals": cmd_totals, "live": cmd_live, "log": cmd_log, "obis": cmd_obis,
            "set": cmd_set, "preset": cmd_preset, "reset": cmd_reset, "sim": cmd_sim,
            "save": cmd_save, "audit": cmd_audit, "key": cmd_key, "bridge": cmd_bridge,
            "scan": lambda a: __import__("rbmeter.ble_cli").ble_cli.cmd_scan(a)}


def main(argv=None):
    p = build_parser()
    a = p.parse_args(argv)
    if not a.cmd:
        p.print_help()
        return 0
    try:
        return COMMANDS[a.cmd](a)
    except UsageError as e:
        _err(str(e))
        return 2
    except _client.AuthError as e:
        _err("authentication failed: %s" % e)
        return 3
    except _client.NodeError as e:
        _err("node: %s" % e)
        return 1
    except _client.ClientError as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
