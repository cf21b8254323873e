"""flashsim.RAMFlash kept in an image file (the board's flash across
simulated power-ups). Only dirty blocks are written back, at every LittleFS
sync and at the power cut, so a week of commits does not rewrite the whole
image each time. At a cut the image holds every op up to and including the
interrupted one (torn as flashsim made it)."""
import flashsim

BS = flashsim.BS


class ImageFlash(flashsim.RAMFlash):
    def __init__(self, path, nblocks=256, on_cut=None):
        # one block for the base class, then the image built in place: no
        # transient copies (keeps the heap peak at one image, which matters
        # for heap-size measurements of the node)
        flashsim.RAMFlash.__init__(self, 1, path=None)
        self.nblocks = nblocks
        self.data = bytearray(nblocks * BS)
        self.image = path
        self.fresh = True
        try:
            with open(path, "rb") as f:
                n = f.readinto(self.data)
            self.fresh = n != nblocks * BS
        except OSError:
            pass
        if self.fresh:
            ff = b"\xff" * BS
            for b in range(nblocks):
                self.data[b * BS:(b + 1) * BS] = ff
        self.dirty = {}
        self.on_cut = on_cut
        self.cut_seen = False
        if self.fresh:
            self.dirty_all()
            self.flush()

    def dirty_all(self):
        for b in range(self.nblocks):
            self.dirty[b] = 1

    def flush(self):
        if not self.dirty:
            return
        mode = "wb" if self.fresh else "r+b"
        with open(self.image, mode) as f:
            if self.fresh:
                f.write(self.data)
                self.fresh = False
            else:
                for b in sorted(self.dirty):
                    f.seek(b * BS)
                    f.write(memoryview(self.data)[b * BS:(b + 1) * BS])
        self.dirty = {}

    def _cut(self):
        # first failing op after the cut: persist what the flash now holds
        if not self.cut_seen:
            self.cut_seen = True
            self.flush()
            if self.on_cut is not None:
                self.on_cut()

    def writeblocks(self, block, buf, off=None):
        self.dirty[block] = 1
        if off is None:
            for i in range(len(buf) // BS):
                self.dirty[block + i] = 1
        try:
            flashsim.RAMFlash.writeblocks(self, block, buf, off)
        except flashsim.PowerCut:
            self._cut()
            raise

    def ioctl(self, op, arg):
        if op == flashsim.IOCTL_BLOCK_ERASE:
            self.dirty[arg] = 1
        if op == flashsim.IOCTL_SYNC:
            if not self.dead:
                self.flush()
            return 0
        try:
            return flashsim.RAMFlash.ioctl(self, op, arg)
        except flashsim.PowerCut:
            self._cut()
            raise
