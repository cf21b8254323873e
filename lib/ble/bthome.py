"""BTHome v2 service data (UUID 0xFCD2) for Home Assistant and any BTHome
receiver: energy import, energy export (object 0x4D, uint32, 0.001 kWh) and
power (0x5C, sint32, 0.01 W) of one channel, objects in ascending id order.
Optionally AES-CCM encrypted with a 16-byte bind key (bthome.io/encryption)."""
from ble import ccm

try:
    from micropython import const
except ImportError:
    def const(__x):
        return __x

UUID16 = const(0xFCD2)
UUID128 = "0000fcd2-0000-1000-8000-00805f9b34fb"
_INFO_V2 = const(0x40)          # version 2, regular interval, not encrypted
_INFO_ENC = const(0x01)
_ENERGY = const(0x4D)
_POWER = const(0x5C)
U32 = const(0xFFFFFFFF)


def objects(import_mwh, export_mwh, p_mw):
    """The object bytes: energies floored to whole Wh (so a receiver never
    sees more than TOTALS), power in 10 mW (None/invalid -> 0)."""
    b = bytearray(15)
    b[0] = _ENERGY
    _u32(b, 1, import_mwh // 1000)
    b[5] = _ENERGY
    _u32(b, 6, export_mwh // 1000)
    b[10] = _POWER
    p = 0 if p_mw is None else int(p_mw) // 10 if p_mw >= 0 else -((-int(p_mw)) // 10)
    if p > 0x7FFFFFFF:
        p = 0x7FFFFFFF
    elif p < -0x7FFFFFFF:
        p = -0x7FFFFFFF
    _u32(b, 11, p & U32)
    return b


def _u32(b, i, v):
    if v > U32:
        v = U32                 # saturate: 4.29 GWh
    b[i] = v & 0xFF
    b[i + 1] = (v >> 8) & 0xFF
    b[i + 2] = (v >> 16) & 0xFF
    b[i + 3] = (v >> 24) & 0xFF


def service_data(objs, ecb=None, mac=b"", counter=0):
    """Service data value (after the 16-bit UUID). ecb: AES block function of
    the bind key (None = plain); mac: the advertiser's address, 6 bytes in
    display order; counter: 32-bit, increasing per new payload."""
    if ecb is None:
        return bytes([_INFO_V2]) + bytes(objs)
    info = _INFO_V2 | _INFO_ENC
    cnt = bytearray(4)
    _u32(cnt, 0, counter & U32)
    nonce = bytes(mac) + bytes((UUID16 & 0xFF, UUID16 >> 8, info)) + bytes(cnt)
    ct, tag = ccm.encrypt(ecb, nonce, bytes(objs), 4)
    return bytes([info]) + ct + bytes(cnt) + tag


def ad(svc):
    """The advertising-data structure: length, 0x16 (service data, 16-bit UUID), UUID LE, data."""
    return bytes((len(svc) + 3, 0x16, UUID16 & 0xFF, UUID16 >> 8)) + svc
