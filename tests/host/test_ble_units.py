"""The pure parts of lib/ble on CPython: AES-CCM against `cryptography`,
BTHome payloads through bthome-ble (the parser Home Assistant uses), the
binary totals frame. (The radio runs end to end in test_ble*.py.)"""
import os
import time

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from ble import bthome, ccm, totals

KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
MAC = bytes.fromhex("F0F0F0F0F0F1")


def ecb(key):
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return lambda block: enc.update(bytes(block))


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 33])
def test_ccm_matches_cryptography(n):
    nonce = os.urandom(13)
    data = os.urandom(n)
    ct, tag = ccm.encrypt(ecb(KEY), nonce, data, 4)
    assert ct + tag == AESCCM(KEY, tag_length=4).encrypt(nonce, data, None)


def decode(payload, key=None, name="rbmeter-5e1a0001"):
    from bthome_ble import BTHomeBluetoothDeviceData
    from habluetooth.models import BluetoothServiceInfoBleak
    info = BluetoothServiceInfoBleak(
        name=name, address="F0:F0:F0:F0:F0:F1", rssi=-50, manufacturer_data={},
        service_data={bthome.UUID128: payload}, service_uuids=[bthome.UUID128], source="local",
        device=None, advertisement=None, connectable=False, time=time.monotonic(), tx_power=None)
    d = BTHomeBluetoothDeviceData(bindkey=key)
    upd = d.update(info)
    return {k.key: v.native_value for k, v in upd.entity_values.items()}, d


def test_bthome_plain_decodes_as_home_assistant_does():
    objs = bthome.objects(1234567891, 98765432, -1234567)
    vals, _ = decode(bthome.service_data(objs))
    assert vals["energy_1"] == pytest.approx(1234.567)      # floored to the 0.001 kWh resolution
    assert vals["energy_2"] == pytest.approx(98.765)
    assert vals["power"] == pytest.approx(-1234.56)
    assert len(bthome.ad(bthome.service_data(objs))) == 20   # fits beside flags and a short name


def test_bthome_encrypted_decodes_with_the_bind_key_only():
    objs = bthome.objects(5000, 0, 250000)
    payload = bthome.service_data(objs, ecb(KEY), MAC, 7)
    assert payload[0] == 0x41 and len(payload) == 1 + 15 + 8
    vals, d = decode(payload, KEY)
    assert d.bindkey_verified and vals["energy_1"] == pytest.approx(0.005) and vals["power"] == pytest.approx(250.0)
    vals, d = decode(payload, bytes(16))
    assert not vals.get("energy_1")


def test_bthome_saturates_and_never_rounds_up():
    b = bthome.objects(999, 1999, 9)
    assert b[1:5] == bytes(4) and b[6:10] == (1).to_bytes(4, "little")
    assert bthome.objects(1 << 50, 0, None)[1:5] == b"\xff\xff\xff\xff"


def test_totals_frame_round_trip_and_crc():
    chans = [{"module": "0x50", "ch": 0, "import_mwh": (1 << 40) - 1, "export_mwh": 5, "p_mw": -1234,
              "enabled": True},
             {"module": "0x51", "ch": 2, "import_mwh": 0, "export_mwh": 0, "p_mw": None, "enabled": False}]
    data = totals.pack(chans)
    assert len(data) == 40
    a = totals.unpack(data[:20])
    b = totals.unpack(data[20:])
    assert (a["module"], a["ch"], a["import_mwh"], a["export_mwh"], a["p_mw"], a["last"]) == \
        ("0x50", 0, (1 << 40) - 1, 5, -1234, False)
    assert (b["module"], b["ch"], b["p_mw"], b["enabled"], b["last"]) == ("0x51", 2, None, False, True)
    for i in range(20):
        bad = bytearray(data[:20])
        bad[i] ^= 0x10
        with pytest.raises(ValueError):
            totals.unpack(bytes(bad))


def test_short_name():
    from ble import adv
    assert adv.short_name("rbmeter-5e1a0001", "5e1a0001", 6) == b"rb0001"
    assert adv.short_name("garage", "5e1a0001", 6) == b"garage"
