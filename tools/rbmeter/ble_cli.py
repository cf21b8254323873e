"""rbmeter over BLE: the connection options (`--ble`, `--ble-hci`), the
client they open and `rbmeter scan`. docs/ble.md."""
import json
import os
import sys

from rbmeter import ble as _ble
from rbmeter import client as _client


def add_conn_opts(g):
    g.add_argument("--ble", metavar="NAME_OR_ADDRESS", default=os.environ.get("RBMETER_BLE"),
                   help="talk to the node over Bluetooth LE instead of --port: its name (e.g. "
                        "rbmeter-5e1a0001) or address (default $RBMETER_BLE)")
    g.add_argument("--ble-hci", metavar="SPEC", default=os.environ.get("RBMETER_BLE_HCI"),
                   help="BLE through a Bumble controller instead of the system adapter (bleak): a Bumble "
                        "transport such as usb:0, serial:/dev/ttyACM0 or tcp-client:127.0.0.1:9001")


class BleLink:
    """Serial-like BLE stream that reconnects once the link is lost (a
    logger rides out a node reboot as it does on a serial port)."""

    def __init__(self, target, hci=None, timeout=10.0):
        self.target = target
        self.host = _ble.host(hci)
        self.port = "ble:%s" % target
        self.timeout = timeout
        try:
            self.ser = self.host.open(target, 247, timeout)
        except Exception:
            self.host.close()
            raise

    def _live(self):
        if not self.ser.c.connected:
            self.ser = self.host.open(self.target, 247, self.timeout)
        return self.ser

    def write(self, data):
        return self._live().write(data)

    def read(self, n=1):
        return self.ser.read(n)

    @property
    def in_waiting(self):
        return self.ser.in_waiting

    def reset_input_buffer(self):
        self.ser.reset_input_buffer()

    def close(self):
        try:
            self.ser.close()
        finally:
            self.host.close()


class BleClient(_client.Client):
    """rbmeter.client.Client over a BleLink: closing it ends the link."""

    def close(self):
        try:
            _client.Client.close(self)
        finally:
            self.ser.close()


def connect(a):
    """The Client for `--ble` (bleak, or Bumble with --ble-hci)."""
    try:
        link = BleLink(a.ble, a.ble_hci, timeout=max(10.0, a.timeout))
    except _ble.BleError as e:
        raise _client.ClientError(str(e))
    return BleClient(link, timeout=a.timeout, retries=a.retries)


def add_scan(sub, parents, fmt):
    s = sub.add_parser("scan", help="list nearby nodes over BLE: name, address, RSSI",
                       description="Scans for Bluetooth LE advertisements of rbmeter nodes (BTHome data or a "
                                   "name starting with rbmeter) and lists name, address and RSSI. Uses the "
                                   "system adapter (bleak), or a Bumble controller with --ble-hci.",
                       parents=parents, formatter_class=fmt,
                       epilog="examples:\n  rbmeter scan\n  rbmeter scan --ble-hci tcp-client:127.0.0.1:9001 --json")
    s.add_argument("--seconds", type=float, default=3.0, help="scan time (default 3)")
    s.add_argument("--ble-hci", metavar="SPEC", default=os.environ.get("RBMETER_BLE_HCI"),
                   help="a Bumble controller transport instead of the system adapter")
    s.add_argument("--json", action="store_true", help="machine output: JSON on stdout")
    return s


def cmd_scan(a):
    try:
        h = _ble.host(a.ble_hci)
    except _ble.BleError as e:
        raise _client.ClientError(str(e))
    try:
        nodes = h.scan(a.seconds)
    finally:
        h.close()
    if a.json:
        print(json.dumps(nodes, sort_keys=True))
    else:
        if not nodes:
            print("no rbmeter node heard in %.0f s" % a.seconds)
        for n in nodes:
            print("%-24s %-20s %4s dBm%s" % (n["name"] or "?", n["address"],
                                             n["rssi"] if n["rssi"] is not None else "?",
                                             "  BTHome" if n["bthome"] else ""))
    sys.stdout.flush()
    return 0
