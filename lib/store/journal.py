"""Per-module journal files on a mounted filesystem.

Every channel has its own small files, named after the module (its UID, or
its address if it has none) and the channel: "u<uid hex>-<ch>.<slot>". One
record per file stays inside LittleFS's 128-byte inline limit (one metadata
commit per save, no data-block erase). Patterns (bench_store measures them):
  "ab"      - seq n goes to <key>.<n % 2>; newest valid of the two wins (default)
  "rewrite" - one file rewritten in place (LittleFS makes the close atomic)
  "rename"  - write <key>.t, rename over <key>.0
  "append"  - append to <key>.l, rotate to <key>.o past ROTATE bytes
A damaged record costs only itself: recovery falls back to the other slot."""
import os

from store import record

ROTATE = 2048


class OsFS:
    """The real filesystem (LittleFS/FAT on a board, VfsPosix/host)."""

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def write(self, path, data):
        with open(path, "wb") as f:
            f.write(data)

    def append(self, path, data):
        with open(path, "ab") as f:
            f.write(data)

    def rename(self, a, b):
        os.rename(a, b)

    def remove(self, path):
        os.remove(path)

    def size(self, path):
        return os.stat(path)[6]

    def mkdir(self, path):
        os.mkdir(path)

    def listdir(self, path):
        return os.listdir(path)


def _hex(b):
    s = ""
    for c in b:
        s += "%02x" % c
    return s


def key_for(uid, addr):
    return ("u" + _hex(uid)) if uid else ("a%02x" % (addr & 0xFF))


class Journal:
    def __init__(self, root="/rbmeter.d", fs=None, pattern="ab"):
        self.root = root.rstrip("/")
        self.fs = fs if fs is not None else OsFS()
        self.pattern = pattern
        self.corrupt = 0       # damaged records/files seen while loading

    def _p(self, name):
        return self.root + "/" + name

    def ensure(self):
        """Create the directory; raises OSError if the medium is unusable."""
        try:
            self.fs.listdir(self.root)
        except OSError:
            self.fs.mkdir(self.root)

    def keys(self):
        out = []
        for n in self.fs.listdir(self.root):
            i = n.find(".")
            if i > 1 and (n[0] == "u" or n[0] == "a") and "-" in n[:i] and n[:i] not in out:
                out.append(n[:i])
        return out

    def _read(self, name):
        try:
            return self.fs.read(self._p(name))
        except OSError:
            return None

    def _one(self, name):
        b = self._read(name)
        if b is None:
            return None
        try:
            return record.decode(b)
        except (ValueError, IndexError):
            self.corrupt += 1
            return None

    def _scan(self, name, best):
        b = self._read(name)
        if not b:
            return best
        i = 0
        n = len(b)
        while i < n:
            m = record.frame_len(b, i)
            if not m:
                self.corrupt += 1
                # resync on the next magic byte
                j = i + 1
                while j < n and b[j] != record.MAGIC0:
                    j += 1
                i = j
                continue
            try:
                r = record.decode(b, i)
                if best is None or _newer(r.seq, best.seq):
                    best = r
            except (ValueError, IndexError):
                self.corrupt += 1
            i += m
        return best

    def load(self, key):
        """Newest valid record for key, or None."""
        if self.pattern == "append":
            return self._scan(key + ".l", self._scan(key + ".o", None))
        best = None
        for s in ("0", "1"):
            r = self._one(key + "." + s)
            if r is not None and (best is None or _newer(r.seq, best.seq)):
                best = r
        return best

    def write(self, key, rec):
        data = record.encode(rec)
        pat = self.pattern
        if pat == "ab":
            self.fs.write(self._p("%s.%d" % (key, rec.seq & 1)), data)
        elif pat == "rewrite":
            self.fs.write(self._p(key + ".0"), data)
        elif pat == "rename":
            t = self._p(key + ".t")
            self.fs.write(t, data)
            self.fs.rename(t, self._p(key + ".0"))
        elif pat == "append":
            lp = self._p(key + ".l")
            try:
                sz = self.fs.size(lp)
            except OSError:
                sz = 0
            if sz + len(data) > ROTATE:
                self.fs.rename(lp, self._p(key + ".o"))
            self.fs.append(lp, data)
        else:
            raise ValueError("pattern")
        return len(data)


def _newer(a, b):
    # sequence numbers compared modulo 2**32 (serial-number arithmetic)
    return ((a - b) & 0xFFFFFFFF) - 1 < 0x7FFFFFFF
