"""BLE transports for the console protocol (docs/ble.md).

One client protocol layer (rbmeter.client.Client) runs above a serial-like
byte stream; this module provides that stream over the node's Nordic UART
service, through either

- Bumble (`--ble-hci SPEC`: a USB dongle, an HCI UART, or a virtual
  controller such as the one `python -m rbmeter.ble_link` serves), or
- bleak (`--ble NAME_OR_ADDRESS` alone: the system's adapter).

Both run their asyncio code in a private event-loop thread; BleSerial is the
blocking read/write/in_waiting face the Client uses. Writes are split to the
negotiated ATT MTU; notifications are appended to a receive buffer."""
import asyncio
import threading
import time

NUS = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
TOT_SVC = "7b6d0001-5e1a-4c2b-9a4e-52424d455452"
TOT_CHR = "7b6d0002-5e1a-4c2b-9a4e-52424d455452"
BTHOME = "0000fcd2-0000-1000-8000-00805f9b34fb"
NAME_PREFIX = "rbmeter"


class BleError(Exception):
    pass


class Loop:
    """An asyncio loop in a daemon thread; run(coro) waits for its result."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.t = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.t.start()

    def run(self, coro, timeout=None):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *a):
        self.loop.call_soon_threadsafe(fn, *a)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.t.join(2)


class BleSerial:
    """Serial-like stream over a connected central (BumbleCentral or
    BleakCentral): what rbmeter.client.Client needs."""

    def __init__(self, central, loop, port="ble"):
        self.c = central
        self.loop = loop
        self.port = port
        self._buf = bytearray()
        self._cv = threading.Condition()
        self.timeout = 0.05
        self.rx_bytes = 0
        self.notifications = 0
        central.on_data = self._on_data

    def _on_data(self, data):
        with self._cv:
            self._buf += data
            self.rx_bytes += len(data)
            self.notifications += 1
            self._cv.notify_all()

    @property
    def in_waiting(self):
        with self._cv:
            return len(self._buf)

    def read(self, n=1):
        end = time.monotonic() + self.timeout
        with self._cv:
            while not self._buf:
                left = end - time.monotonic()
                if left <= 0 or not self.c.connected:
                    return b""
                self._cv.wait(left)
            out = bytes(self._buf[:n])
            del self._buf[:n]
            return out

    def write(self, data):
        if not self.c.connected:
            raise BleError("BLE link to %s lost" % self.port)
        self.loop.run(self.c.write(bytes(data)), 30)
        return len(data)

    def reset_input_buffer(self):
        with self._cv:
            self._buf = bytearray()

    def flush(self):
        pass

    def close(self):
        try:
            self.loop.run(self.c.disconnect(), 10)
        except Exception:
            pass


# -- Bumble ------------------------------------------------------------------------


def _is_addr(s):
    p = s.split("/")[0].split(":")
    return len(p) == 6 and all(len(x) == 2 for x in p)


class BumbleCentral:
    """A central on a powered bumble.device.Device."""

    def __init__(self, device):
        self.dev = device
        self.conn = None
        self.peer = None
        self.rx = None
        self.tx = None
        self.tot = None
        self.on_data = None
        self.on_totals = None
        self.connected = False
        self.mtu = 23
        self.sizes = []          # payload length of every TX notification (tests, bench)

    async def find(self, target, timeout=10.0):
        """NAME_OR_ADDRESS -> bumble Address (scans when given a name)."""
        from bumble.hci import Address
        if _is_addr(target):
            a = target.split("/")[0]
            return Address(a + ("/P" if "/" not in target else "/" + target.split("/")[1]))
        fut = asyncio.get_running_loop().create_future()

        def on_adv(adv):
            if name_matches(target, adv.data) and not fut.done():
                fut.set_result(adv.address)
        self.dev.on("advertisement", on_adv)
        await self.dev.start_scanning(filter_duplicates=False)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise BleError("no BLE node named %r found in %.0f s" % (target, timeout))
        finally:
            self.dev.remove_listener("advertisement", on_adv)
            await self.dev.stop_scanning()

    async def connect(self, target, mtu=247, timeout=10.0):
        from bumble.device import Peer
        addr = await self.find(target, timeout) if isinstance(target, str) else target
        self.conn = await self.dev.connect(addr, timeout=timeout)   # cancels at the controller
        self.connected = True
        self.conn.on("disconnection", self._gone)
        self.peer = Peer(self.conn)
        try:
            await asyncio.wait_for(self._discover(mtu), timeout)
        except BaseException:
            await self.disconnect()
            raise
        self.rx = self._char(NUS_RX)
        self.tx = self._char(NUS_TX)
        self.tot = self._char(TOT_CHR)
        if self.rx is None or self.tx is None:
            raise BleError("%s has no Nordic UART service" % (target,))
        await self.peer.subscribe(self.tx, self._notified)
        return self

    async def _discover(self, mtu):
        if mtu and mtu > 23:
            self.mtu = await self.peer.request_mtu(mtu)
        await self.peer.discover_services()
        for s in self.peer.services:
            await s.discover_characteristics()

    def _char(self, uuid):
        for s in self.peer.services:
            for c in s.characteristics:
                if str(c.uuid).lower() == uuid:
                    return c
        return None

    def _gone(self, reason=None):
        self.connected = False
        if self.on_data:
            self.on_data(b"")

    def _notified(self, value):
        self.sizes.append(len(value))
        if self.on_data:
            self.on_data(bytes(value))

    async def write(self, data, with_response=True):
        n = max(20, self.mtu - 3)
        for i in range(0, len(data), n):
            await self.peer.write_value(self.rx, data[i:i + n], with_response=with_response)

    async def subscribe_totals(self, cb):
        await self.peer.subscribe(self.tot, lambda v: cb(bytes(v)))

    async def read_totals(self):
        return bytes(await self.peer.read_value(self.tot))

    async def disconnect(self):
        if self.conn is not None and self.connected:
            try:
                await self.conn.disconnect()
            except Exception:
                pass
            # Bumble's virtual link hands the disconnection to the peer's
            # controller asynchronously; a reconnect within a few ms can lose
            # it to that race (a real controller needs longer anyway)
            await asyncio.sleep(0.2)
        self.connected = False


def name_matches(target, data):
    """A node answers to its complete name (scan response, GAP name) or, as
    the advertisement itself only has room for a short name, to the short
    form of the default name: rbmeter-<node id> -> rb<last 4 of the id>."""
    from bumble.core import AdvertisingData
    names = []
    for t in (AdvertisingData.COMPLETE_LOCAL_NAME, AdvertisingData.SHORTENED_LOCAL_NAME):
        n = data.get(t)
        if n:
            names.append(n.decode("utf-8", "replace") if isinstance(n, bytes) else n)
    if target in names:
        return True
    return target.startswith(NAME_PREFIX + "-") and len(target) > 12 and "rb" + target[-4:] in names


def _adv_name(data):
    from bumble.core import AdvertisingData
    n = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
    if isinstance(n, bytes):
        n = n.decode("utf-8", "replace")
    return n


async def _bumble_device(spec):
    from bumble.device import Device
    from bumble.transport import open_transport
    t = await open_transport(spec)
    dev = Device.with_hci("rbmeter", "F0:F0:F0:F0:F0:F0", t.source, t.sink)
    await dev.power_on()
    return dev, t


class BumbleHost:
    """`--ble-hci SPEC`: a Bumble host on that controller, in its own loop."""

    def __init__(self, spec):
        self.loop = Loop()
        try:
            self.dev, self.transport = self.loop.run(_bumble_device(spec), 30)
        except Exception as e:
            self.loop.stop()
            raise BleError("cannot open BLE controller %s: %s" % (spec, e))

    def open(self, target, mtu=247, timeout=10.0):
        c = BumbleCentral(self.dev)
        try:
            self.loop.run(c.connect(target, mtu, timeout), timeout + 20)
        except BleError:
            raise
        except Exception as e:
            raise BleError("cannot connect to %s: %s" % (target, e))
        return BleSerial(c, self.loop, port="ble:%s" % target)

    def scan(self, seconds=3.0):
        return self.loop.run(_bumble_scan(self.dev, seconds), seconds + 10)

    def close(self):
        try:
            self.loop.run(self.transport.close(), 5)
        except Exception:
            pass
        self.loop.stop()


async def _bumble_scan(dev, seconds):
    found = {}

    def on_adv(adv):
        name = _adv_name(adv.data)
        svc = [str(u).lower() for u, _ in (adv.data.get_all(0x16) or [])]
        a = str(adv.address).split("/")[0]
        e = found.setdefault(a, {"address": a, "name": None, "rssi": None, "bthome": False})
        e["rssi"] = adv.rssi
        if name and (e["name"] is None or len(name) > len(e["name"])):
            e["name"] = name
        if any("fcd2" in u for u in svc):
            e["bthome"] = True
    dev.on("advertisement", on_adv)
    await dev.start_scanning(filter_duplicates=False)
    await asyncio.sleep(seconds)
    await dev.stop_scanning()
    dev.remove_listener("advertisement", on_adv)
    return _nodes(found.values())


def _nodes(entries):
    out = [e for e in entries if e["bthome"] or (e["name"] or "").startswith(NAME_PREFIX)]
    return sorted(out, key=lambda e: (e["name"] or "", e["address"]))


# -- bleak ---------------------------------------------------------------------------


class BleakCentral:
    def __init__(self):
        self.cl = None
        self.on_data = None
        self.connected = False
        self.mtu = 23

    async def connect(self, target, timeout=10.0):
        from bleak import BleakClient, BleakScanner
        dev = target
        if not _is_addr(target):
            dev = await BleakScanner.find_device_by_name(target, timeout=timeout)
            if dev is None:
                raise BleError("no BLE node named %r found in %.0f s" % (target, timeout))
        self.cl = BleakClient(dev, disconnected_callback=lambda _c: self._gone())
        await self.cl.connect(timeout=timeout)
        self.connected = True
        self.mtu = getattr(self.cl, "mtu_size", 23) or 23
        await self.cl.start_notify(NUS_TX, lambda _h, v: self.on_data and self.on_data(bytes(v)))
        return self

    def _gone(self):
        self.connected = False
        if self.on_data:
            self.on_data(b"")

    async def write(self, data):
        n = max(20, self.mtu - 3)
        for i in range(0, len(data), n):
            await self.cl.write_gatt_char(NUS_RX, data[i:i + n], response=True)

    async def disconnect(self):
        if self.cl is not None:
            try:
                await self.cl.disconnect()
            except Exception:
                pass
        self.connected = False


def bleak_adapter_problem():
    """None when bleak can use an adapter here, else the reason why not."""
    try:
        import bleak  # noqa: F401
    except ImportError as e:
        return "bleak not installed (%s)" % e
    import os
    import sys
    if sys.platform.startswith("linux"):
        if not os.path.isdir("/sys/class/bluetooth") or not os.listdir("/sys/class/bluetooth"):
            return "no Bluetooth adapter (/sys/class/bluetooth is empty)"
        if not os.path.exists("/run/dbus/system_bus_socket") and not os.path.exists("/var/run/dbus/system_bus_socket"):
            return "no D-Bus system bus (BlueZ is reached through it)"
    return None


class BleakHost:
    def __init__(self):
        why = bleak_adapter_problem()
        if why:
            raise BleError("no usable Bluetooth adapter: %s (use --ble-hci SPEC for a Bumble controller)" % why)
        self.loop = Loop()

    def open(self, target, mtu=247, timeout=10.0):
        c = BleakCentral()
        try:
            self.loop.run(c.connect(target, timeout), timeout + 20)
        except BleError:
            raise
        except Exception as e:
            raise BleError("cannot connect to %s: %s" % (target, e))
        return BleSerial(c, self.loop, port="ble:%s" % target)

    def scan(self, seconds=3.0):
        return self.loop.run(_bleak_scan(seconds), seconds + 10)

    def close(self):
        self.loop.stop()


async def _bleak_scan(seconds):
    from bleak import BleakScanner
    res = await BleakScanner.discover(timeout=seconds, return_adv=True)
    found = []
    for dev, adv in res.values():
        found.append({"address": dev.address, "name": adv.local_name or dev.name, "rssi": adv.rssi,
                      "bthome": BTHOME in (adv.service_data or {})})
    return _nodes(found)


def host(hci=None):
    """The BLE host for the CLI: Bumble on `hci` (a transport spec) or bleak."""
    return BumbleHost(hci) if hci else BleakHost()


class Session:
    """A connected BLE stream owning its host: close() ends both."""

    def __init__(self, target, hci=None, mtu=247, timeout=10.0):
        self.host = host(hci)
        try:
            self.ser = self.host.open(target, mtu, timeout)
        except Exception:
            self.host.close()
            raise
        self.port = self.ser.port

    def __getattr__(self, k):
        return getattr(self.ser, k)

    def close(self):
        try:
            self.ser.close()
        finally:
            self.host.close()
