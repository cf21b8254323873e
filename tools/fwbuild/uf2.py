"""UF2 writer/reader for RP2040 images (no picotool here).

A UF2 file is a sequence of 512-byte blocks, each carrying 256 bytes of the
flash image at its XIP address (0x10000000 + offset). The boot ROM's mass
storage (RPI-RP2 drive) accepts it as is.
"""
import struct

MAGIC0 = 0x0A324655  # "UF2\n"
MAGIC1 = 0x9E5D5157
MAGIC_END = 0x0AB16F30
FLAG_FAMILY_ID = 0x00002000
RP2040_FAMILY = 0xE48BFF56
FLASH_BASE = 0x10000000
PAYLOAD = 256
_HDR = struct.Struct("<8I")


def bin_to_uf2(data, base=FLASH_BASE, family=RP2040_FAMILY):
    """Flash image `data` (from offset 0) -> UF2 bytes."""
    if len(data) % PAYLOAD:
        data = bytes(data) + b"\x00" * (PAYLOAD - len(data) % PAYLOAD)
    n = len(data) // PAYLOAD
    out = bytearray()
    for i in range(n):
        hdr = _HDR.pack(MAGIC0, MAGIC1, FLAG_FAMILY_ID, base + i * PAYLOAD, PAYLOAD, i, n, family)
        chunk = data[i * PAYLOAD:(i + 1) * PAYLOAD]
        out += hdr + chunk + b"\x00" * (512 - 32 - 4 - PAYLOAD) + struct.pack("<I", MAGIC_END)
    return bytes(out)


def uf2_to_bin(uf2, base=FLASH_BASE, family=RP2040_FAMILY):
    """UF2 bytes -> flash image from `base`. Checks magics, family, numbering
    and that the blocks cover a contiguous range; raises ValueError otherwise."""
    if len(uf2) % 512:
        raise ValueError("UF2 length %d is not a multiple of 512" % len(uf2))
    blocks = {}
    total = None
    for off in range(0, len(uf2), 512):
        blk = uf2[off:off + 512]
        m0, m1, flags, addr, size, no, count, fam = _HDR.unpack_from(blk)
        (mend,) = struct.unpack_from("<I", blk, 508)
        if (m0, m1, mend) != (MAGIC0, MAGIC1, MAGIC_END):
            raise ValueError("bad magic in block at %d" % off)
        if not flags & FLAG_FAMILY_ID or fam != family:
            raise ValueError("block %d: family 0x%08x, expected 0x%08x" % (no, fam, family))
        if size != PAYLOAD or addr % PAYLOAD:
            raise ValueError("block %d: payload %d at 0x%08x" % (no, size, addr))
        if total is None:
            total = count
        if count != total or no >= total or no in blocks:
            raise ValueError("block numbering broken at block %d" % no)
        blocks[no] = (addr, blk[32:32 + size])
    if total is None or len(blocks) != total:
        raise ValueError("UF2 holds %s of %s blocks" % (len(blocks), total))
    out = bytearray()
    for no in range(total):
        addr, chunk = blocks[no]
        if addr != base + len(out):
            raise ValueError("block %d at 0x%08x is not contiguous" % (no, addr))
        out += chunk
    return bytes(out)
