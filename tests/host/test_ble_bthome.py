"""BTHome v2 adverts as the Bumble scanner receives them, decoded with PyPI
bthome-ble (Home Assistant's parser): energy matches TOTALS to the 0.001 kWh
resolution and never decreases; then the bind key is set (signed SET +
REBOOT), the node comes back with the same public address, its adverts are
encrypted and decrypt with the key only, and CONFIG shows the key only
inside a session. Run time ~40 s."""
import asyncio
import shutil
import tempfile
import time

import pytest

import blesign
from rbmeter.ble_link import BleNode, Radio
from rbmeter.client import Client

SECRET = "ble test secret 0123456789"
NODE_ID = "5e1a0001"
KEY = "231d39c1d7cc1ab1aee224cd096db932"
UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
pytestmark = pytest.mark.xdist_group("ble")


def scan(radio, dev, seconds):
    """[(address, name, service data bytes, monotonic time)] of BTHome adverts."""
    out = []

    async def run():
        def on_adv(adv):
            for u, data in adv.data.get_all(0x16) or []:
                if str(u).lower().endswith("fcd2") or "fcd2" in str(u).lower():
                    out.append((str(adv.address), adv.data, bytes(data), time.monotonic()))
        dev.on("advertisement", on_adv)
        await dev.start_scanning(filter_duplicates=False)
        await asyncio.sleep(seconds)
        await dev.stop_scanning()
        dev.remove_listener("advertisement", on_adv)
    radio.loop.run(run(), seconds + 20)
    return out


def scan_until(radio, dev, seconds, n=3, tries=8):
    """scan() until at least n adverts came in one window (a radio that
    failed to start is retried by the node after a back-off)."""
    for _ in range(tries):
        out = scan(radio, dev, seconds)
        if len(out) >= n:
            return out
    return out


def decode(parser, addr, payload):
    from habluetooth.models import BluetoothServiceInfoBleak
    info = BluetoothServiceInfoBleak(
        name="rbmeter", address=addr, rssi=-50, manufacturer_data={}, service_data={UUID: payload},
        service_uuids=[UUID], source="local", device=None, advertisement=None, connectable=True,
        time=time.monotonic(), tx_power=None)
    upd = parser.update(info)
    return {k.key: v.native_value for k, v in upd.entity_values.items()}


def login(cl):
    """AUTH over this client; returns a signer for mutating command lines."""
    return blesign.login(cl, SECRET, NODE_ID)


def test_bthome_plain_then_encrypted_and_address_stable_across_reboot():
    from bthome_ble import BTHomeBluetoothDeviceData
    radio = Radio()
    state = tempfile.mkdtemp(prefix="rbm-bthome-")
    node = BleNode(radio, state, {"auth": {"secret": SECRET}, "modules": [{"addr": 0x50}],
                                  "ble": {"bthome_s": 1}})
    try:
        node.start()
        dev = radio.central()
        u = Client(node.console, timeout=10)
        end = time.monotonic() + 30
        while len(u.channels()) < 2 and time.monotonic() < end:
            time.sleep(0.5)
        adverts = scan_until(radio, dev, 4)
        assert len(adverts) >= 3
        addr = adverts[0][0]
        assert addr == radio.node_addr + "/P"              # the public address
        # the short name travels in the advertisement itself, with the data
        assert adverts[-1][1].get(0x08) == "rb0001"
        parser = BTHomeBluetoothDeviceData()
        last = None
        for _, _, payload, _ in adverts:
            v = decode(parser, addr.split("/")[0], payload)
            if last is not None:
                assert v["energy_1"] >= last["energy_1"] and v["energy_2"] >= last["energy_2"]
            last = v
        ch = u.channels()[0]
        # TOTALS read after the advert: the advert is that value floored to 1 Wh, at most
        # one refresh (1 s of ~300 W) behind
        assert 0 <= ch["import_mwh"] - round(last["energy_1"] * 1e6) <= 1000 + 300 * 2000 // 3600
        assert last["energy_2"] * 1e6 <= ch["export_mwh"]
        assert round(last["energy_1"] * 1e6) % 1000 == 0
        assert "power" in last

        # the bind key: a signed SET, shown only inside a session, applied at reboot
        assert u.config()["ble.bthome_key"] == "***" or u.config()["ble.bthome_key"] == ""
        sign = login(u)
        u.command(sign("SET ble.bthome_key " + KEY))
        assert u.config()["ble.bthome_key"] == KEY
        u.command("LOGOUT")
        assert u.config()["ble.bthome_key"] == "***"
        sign = login(u)
        try:
            u.command(sign("REBOOT"), retries=0)
        except Exception:
            pass
        u.close()
        assert node.wait_exit(20) == 98                     # simnode's REBOOT exit
        node.start()                                        # same flash, same controller

        adverts = scan_until(radio, dev, 4)
        assert adverts and all(a[0] == addr for a in adverts)   # the address survived the reboot
        assert all(p[0] == 0x41 for _, _, p, _ in adverts)      # encrypted
        keyed = BTHomeBluetoothDeviceData(bindkey=bytes.fromhex(KEY))
        vals = [decode(keyed, addr.split("/")[0], p) for _, _, p, _ in adverts]
        assert keyed.bindkey_verified
        e = [v["energy_1"] for v in vals if "energy_1" in v]
        assert e and e == sorted(e) and e[0] >= last["energy_1"]
        wrong = BTHomeBluetoothDeviceData(bindkey=bytes(16))
        assert not decode(wrong, addr.split("/")[0], adverts[-1][2]).get("energy_1")
        u = Client(node.console, timeout=10)
        ch = u.channels()[0]
        assert 0 <= ch["import_mwh"] - round(e[-1] * 1e6) <= 1000 + 300 * 2000 // 3600
        u.close()
    finally:
        node.close()
        radio.close()
        shutil.rmtree(state, ignore_errors=True)
