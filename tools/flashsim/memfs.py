"""In-memory file layer with the same small surface as store.journal.OsFS
(read/write/append/rename/remove/listdir/mkdir/size), plus fault injection:
capacity (ENOSPC), read-only (EROFS), missing medium (ENODEV)."""

ENOENT = 2
EIO = 5
ENODEV = 19
ENOSPC = 28
EROFS = 30


class MemFS:
    def __init__(self, capacity=1 << 20):
        self.files = {}
        self.dirs = {"": True}
        self.capacity = capacity
        self.readonly = False
        self.missing = False
        self.writes = 0
        self.wbytes = 0

    def _check(self, write):
        if self.missing:
            raise OSError(ENODEV)
        if write and self.readonly:
            raise OSError(EROFS)

    def _used(self):
        n = 0
        for v in self.files.values():
            n += len(v)
        return n

    def _room(self, path, newlen):
        old = len(self.files.get(path, b""))
        if self._used() - old + newlen > self.capacity:
            raise OSError(ENOSPC)

    def _parent_ok(self, path):
        i = path.rfind("/")
        d = path[:i] if i > 0 else ""
        if d not in self.dirs:
            raise OSError(ENOENT)

    def read(self, path):
        self._check(False)
        if path not in self.files:
            raise OSError(ENOENT)
        return bytes(self.files[path])

    def write(self, path, data):
        self._check(True)
        self._parent_ok(path)
        self._room(path, len(data))
        self.files[path] = bytes(data)
        self.writes += 1
        self.wbytes += len(data)

    def append(self, path, data):
        self._check(True)
        self._parent_ok(path)
        old = self.files.get(path, b"")
        self._room(path, len(old) + len(data))
        self.files[path] = old + bytes(data)
        self.writes += 1
        self.wbytes += len(data)

    def rename(self, a, b):
        self._check(True)
        if a not in self.files:
            raise OSError(ENOENT)
        self.files[b] = self.files.pop(a)

    def remove(self, path):
        self._check(True)
        if path not in self.files:
            raise OSError(ENOENT)
        del self.files[path]

    def size(self, path):
        self._check(False)
        if path not in self.files:
            raise OSError(ENOENT)
        return len(self.files[path])

    def mkdir(self, path):
        self._check(True)
        self.dirs[path.rstrip("/")] = True

    def listdir(self, path):
        self._check(False)
        p = path.rstrip("/")
        if p not in self.dirs:
            raise OSError(ENOENT)
        out = []
        for k in self.files:
            i = k.rfind("/")
            if (k[:i] if i > 0 else "") == p:
                out.append(k[i + 1:])
        return out

    # test helpers
    def corrupt(self, path, pos, mask=0x01):
        b = bytearray(self.files[path])
        b[pos % len(b)] ^= mask
        self.files[path] = bytes(b)

    def truncate(self, path, n):
        self.files[path] = self.files[path][:n]
