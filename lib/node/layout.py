"""Filesystem layout and import order on a board.

rp2 and ESP32 start with sys.path = ['', '.frozen', '/lib']: the filesystem
root comes first, so a directory '/store' holding data shadowed the frozen
`store` package ("no module named 'store.config'" from the second boot on).
Two rules prevent that for good:
  - data directories have names no import can match (a '.' in the name);
  - fix_path() puts the frozen modules first and the root last.
migrate() moves a journal left in '/store' by firmware 0.1.0 to DATA_DIR.
Nothing here imports `store` (it runs before that import is safe)."""
import os
import sys

DATA_DIR = "/rbmeter.d"           # journal (+ audit log); not a possible module name
OLD_DIRS = ("/store",)            # journal directories of earlier firmware


def fix_path(path=None):
    """Frozen modules first, then /lib, the filesystem root last. Returns
    the list (sys.path unless one is given). Idempotent."""
    p = sys.path if path is None else path
    if ".frozen" in p and p.index(".frozen") != 0:
        p.remove(".frozen")
        p.insert(0, ".frozen")
    if "" in p and p[-1] != "":
        p.remove("")
        p.append("")
    return p


def _isdir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def _journal_names(names):
    # journal files: u<uid hex>-<ch>.<slot>, a<addr hex>-<ch>.<slot>, audit.log
    n = 0
    for x in names:
        if x in ("__init__.py", "__init__.mpy"):
            return -1                  # a package someone copied there: not ours
        if x == "audit.log" or ((x[:1] == "u" or x[:1] == "a") and "-" in x):
            n += 1
    return n


def migrate(root="/", new=DATA_DIR, olds=OLD_DIRS):
    """Move journal directories of earlier firmware to `new` (keeping the
    totals: the files are moved, not rewritten). Returns a list of findings
    for STATUS. A rename of a directory is atomic on LittleFS; a cut half
    way through the per-file fallback leaves every file in one place or the
    other, and the old dir is renamed out of the import path last."""
    r = root.rstrip("/")
    dst = r + new
    out = []
    for old in olds:
        src = r + old
        if src == dst or not _isdir(src):
            continue
        try:
            names = os.listdir(src)
        except OSError:
            continue
        if _journal_names(names) <= 0:
            continue
        try:
            if not _isdir(dst):
                os.rename(src, dst)
                out.append("journal moved from %s to %s" % (old, new))
                continue
            have = os.listdir(dst)
            moved = 0
            for x in names:
                if x not in have:
                    os.rename(src + "/" + x, dst + "/" + x)
                    moved += 1
            os.rename(src, src + ".old")      # newer files already in `new` win
            out.append("journal %s merged into %s (%d files; rest kept in %s.old)" % (old, new, moved, old))
        except OSError as e:
            out.append("journal migration from %s failed: %s" % (old, e))
    return out
