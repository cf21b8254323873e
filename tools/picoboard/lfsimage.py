"""The rp2 port's LittleFS partition as a host-side image (PyPI littlefs-python).

RPI_PICO mounts LittleFS v2 at flash offset 0xA0000 (640 KB), 352 blocks of
4096 B, prog_size 256 (ports/rp2 `rp2.Flash`, MICROPY_HW_FLASH_STORAGE_BYTES)."""
import littlefs

LFS_OFFSET = 0xA0000
BLOCK_SIZE = 4096
BLOCK_COUNT = 352
PROG_SIZE = 256
LFS_BYTES = BLOCK_SIZE * BLOCK_COUNT


def _fs(buf=None):
    kw = dict(block_size=BLOCK_SIZE, block_count=BLOCK_COUNT, prog_size=PROG_SIZE, read_size=1,
              lookahead_size=32, cache_size=PROG_SIZE)
    if buf is None:
        return littlefs.LittleFS(**kw)
    fs = littlefs.LittleFS(mount=False, **kw)
    fs.context.buffer = bytearray(buf)
    fs.mount()
    return fs


def build(files):
    """files: {"/path": bytes|str} (folders are made as needed) -> image bytes."""
    fs = _fs()
    for path, data in files.items():
        if isinstance(data, str):
            data = data.encode("utf-8")
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/" + "/".join(parts[:i])
            try:
                fs.mkdir(d)
            except FileExistsError:
                pass
        with fs.open(path, "wb") as f:
            f.write(data)
    return bytes(fs.context.buffer)


def read_tree(image):
    """{"/path": bytes} of every file in an image (as the board left it).
    Raises littlefs.LittleFSError when the image does not mount."""
    fs = _fs(image)
    out = {}

    def walk(d):
        for name in fs.listdir(d):
            p = (d.rstrip("/") + "/" + name)
            st = fs.stat(p)
            if st.type == 2:
                walk(p)
            else:
                with fs.open(p, "rb") as f:
                    out[p] = f.read()
    walk("/")
    return out
