"""Simulated NOR flash for LittleFS (vfs.VfsLfs2) with power-cut injection.

Extended block-device protocol (readblocks/writeblocks with offset, ioctl
erase), 4096-byte blocks, NOR semantics (program only clears bits), op and
erase counting. Runs on CPython and MicroPython; the simulated node keeps its
flash in an image file (file-backed mode). memfs.MemFS is the in-memory file
layer for store tests on runtimes without LittleFS.

Gotcha (MicroPython): a cut inside `with open(...)` raises PowerCut from
write(); the `with` then closes the file, and if close() raises a different
exception (OSError from an EIO return in quiet mode) that one replaces the
PowerCut. Hence the default: every op after the cut raises PowerCut again."""

BS = 4096
IOCTL_INIT = 1
IOCTL_DEINIT = 2
IOCTL_SYNC = 3
IOCTL_BLOCK_COUNT = 4
IOCTL_BLOCK_SIZE = 5
IOCTL_BLOCK_ERASE = 6

TORN_NONE = 0      # the interrupted op does not happen at all
TORN_HALF = 1      # the first half of the interrupted program lands
TORN_GARBAGE = 2   # the interrupted block/range ends up with garbage bits


_EIO = -5           # error code returned to littlefs once the power is gone (quiet mode)


class PowerCut(Exception):
    pass


# Preallocated: after a cut, orphaned littlefs file objects are finalised by
# the GC with the heap locked, so dead-mode paths must not allocate.
_CUT = PowerCut("power cut")


class RAMFlash:
    def __init__(self, nblocks=256, data=None, path=None):
        self.nblocks = nblocks
        self.path = path
        if data is None and path is not None:
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                data = None
        if data is not None:
            self.data = bytearray(data)
            self.nblocks = len(self.data) // BS
        else:
            self.data = bytearray(nblocks * BS)
            blk = b"\xff" * BS
            for i in range(nblocks):
                self.data[i * BS:(i + 1) * BS] = blk
        self.ops = 0          # program + erase operations so far
        self.erases = 0
        self.writes = 0
        self.wbytes = 0
        self.reads = 0
        self.cut_at = -1      # cut power when ops reaches this index
        self.torn = TORN_NONE
        self.dead = False
        # after the cut every op raises PowerCut again (the default: a caller
        # that swallowed the first one still stops), or with quiet=True fails
        # with EIO (-5) without an exception (faster for big sweeps whose
        # driver checks .dead itself; no tracebacks from GC finalizers)
        self.quiet = False
        self.seed = 12345
        self.block_erases = None   # optional per-block erase counts

    def track_wear(self):
        self.block_erases = [0] * self.nblocks

    def reset_counters(self):
        self.ops = self.erases = self.writes = self.wbytes = self.reads = 0

    def snapshot(self):
        return bytes(self.data)

    def save(self, path=None):
        with open(path or self.path, "wb") as f:
            f.write(self.data)

    def _rand(self):
        s = self.seed
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.seed = s
        return s

    def _cut_now(self):
        return self.cut_at >= 0 and self.ops == self.cut_at

    def _tick(self):
        if self._cut_now():
            self.dead = True
            raise _CUT
        self.ops += 1

    def readblocks(self, block, buf, off=0):
        if self.dead:
            if self.quiet:
                return _EIO
            for i in range(len(buf)):
                buf[i] = 0
            raise _CUT
        a = block * BS + off
        buf[:] = self.data[a:a + len(buf)]
        self.reads += 1

    def _program(self, a, buf, n):
        d = self.data
        for i in range(n):
            d[a + i] &= buf[i]

    def writeblocks(self, block, buf, off=None):
        if off is None:   # simple protocol (FAT): erase + program whole blocks
            for i in range(len(buf) // BS):
                self.ioctl(IOCTL_BLOCK_ERASE, block + i)
            off = 0
        if self.dead:
            if self.quiet:
                return _EIO
            raise _CUT
        a = block * BS + off
        n = len(buf)
        if self._cut_now():
            if self.torn == TORN_HALF:
                self._program(a, buf, n // 2)
            elif self.torn == TORN_GARBAGE:
                for i in range(n):
                    self.data[a + i] &= self._rand() & 0xFF
        self._tick()
        self._program(a, buf, n)
        self.writes += 1
        self.wbytes += n

    def ioctl(self, op, arg):
        if op == IOCTL_BLOCK_COUNT:
            return self.nblocks
        if op == IOCTL_BLOCK_SIZE:
            return BS
        if op == IOCTL_BLOCK_ERASE:
            if self.dead:
                if self.quiet:
                    return _EIO
                raise _CUT
            if self._cut_now() and self.torn != TORN_NONE:
                # interrupted erase: part of the block is still old, part erased
                a = arg * BS
                for i in range(BS // 2):
                    self.data[a + i] = 0xFF
            self._tick()
            a = arg * BS
            self.data[a:a + BS] = b"\xff" * BS
            self.erases += 1
            if self.block_erases is not None:
                self.block_erases[arg] += 1
            return 0
        if op == IOCTL_SYNC and self.path is not None and not self.dead:
            self.save()
        return 0


def mount(dev, point="/flash", mkfs=False, readonly=False):
    """Mount dev with LittleFS v2 (MicroPython only); mkfs formats first."""
    import vfs   # type: ignore
    if mkfs:
        vfs.VfsLfs2.mkfs(dev)
    fs = vfs.VfsLfs2(dev)
    vfs.mount(fs, point, readonly=readonly)
    return fs


def umount(point="/flash"):
    import vfs   # type: ignore
    try:
        vfs.umount(point)
    except Exception:
        pass
