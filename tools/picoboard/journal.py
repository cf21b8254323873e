"""The node's committed totals, read from a board's LittleFS files with the
node's own journal code (lib/store on CPython): what a cut can never take."""
import os
import re
import sys

_NAME = re.compile(r"^[ua][0-9a-f]+-\d+\.[01lo]$")


class _DictFS:
    def __init__(self, files):
        self.files = files

    def read(self, path):
        try:
            return self.files[path]
        except KeyError:
            raise OSError(2, "ENOENT")

    def listdir(self, path):
        pre = path.rstrip("/") + "/"
        return sorted(set(p[len(pre):].split("/")[0] for p in self.files if p.startswith(pre)))


def committed(files):
    """{(addr "0x50", ch): (import_mwh, export_mwh)} of the newest valid
    record per channel in every journal directory of `files` ({path: bytes})."""
    lib = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)
    from store.journal import Journal
    dirs = sorted(set(os.path.dirname(p) for p in files if _NAME.match(os.path.basename(p))))
    out = {}
    fs = _DictFS(files)
    for d in dirs:
        j = Journal(d, fs=fs)
        for key in j.keys():
            r = j.load(key)
            if r is None or not r.chans:
                continue
            ch, st = r.chans[0]
            imp = st[1] * 1000000 + st[2]
            exp = st[4] * 1000000 + st[5]
            k = ("0x%02x" % r.addr, ch)
            old = out.get(k)
            if old is None or (imp, exp) > old:
                out[k] = (imp, exp)
    return out
