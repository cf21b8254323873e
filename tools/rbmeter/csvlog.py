"""CSV logging with rotation by size and/or by (UTC) day.

Rotation by day writes to `<stem>-YYYY-MM-DD<ext>`; rotation by size renames
the current file to `.1`, `.1` to `.2`, ... keeping `backups` old files.
Every new file starts with the header row.
"""
import csv
import io
import os
import time

FIELDS = ("time_utc", "unix_ms", "module", "ch", "p_mw", "import_mwh", "export_mwh", "gap_ms")


def utc_iso(unix_ms):
    t = time.gmtime(unix_ms // 1000)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t[0], t[1], t[2], t[3], t[4], t[5], unix_ms % 1000)


def rows_from_channels(channels, unix_ms):
    """Protocol channel dicts -> CSV rows (dicts keyed by FIELDS)."""
    out = []
    stamp = utc_iso(unix_ms)
    for c in channels:
        p = c.get("p_mw")
        out.append({"time_utc": stamp, "unix_ms": unix_ms, "module": c.get("module", ""),
                    "ch": c.get("ch", 0), "p_mw": "" if p is None else p,
                    "import_mwh": c.get("import_mwh", ""), "export_mwh": c.get("export_mwh", ""),
                    "gap_ms": c.get("gap_ms", 0)})
    return out


class RotatingCsv:
    def __init__(self, path, fields=FIELDS, max_bytes=0, daily=False, backups=5, now_ms=None):
        self.path = path
        self.fields = tuple(fields)
        self.max_bytes = int(max_bytes)
        self.daily = bool(daily)
        self.backups = int(backups)
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._f = None
        self._cur = None                      # path currently open
        self.rotations = 0

    def current_path(self, unix_ms):
        if not self.daily:
            return self.path
        stem, ext = os.path.splitext(self.path)
        t = time.gmtime(unix_ms // 1000)
        return "%s-%04d-%02d-%02d%s" % (stem, t[0], t[1], t[2], ext or ".csv")

    def _open(self, path):
        if self._f:
            self._f.close()
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self._f = open(path, "a", newline="", encoding="utf-8")
        self._cur = path
        if new:
            self._f.write(self._line(dict(zip(self.fields, self.fields))))
            self._f.flush()

    def _line(self, row):
        buf = io.StringIO()
        csv.DictWriter(buf, self.fields, extrasaction="ignore", lineterminator="\n").writerow(row)
        return buf.getvalue()

    def _shift(self, path):
        # path -> path.1 -> path.2 ...; the oldest beyond `backups` is dropped.
        if self.backups <= 0:
            os.remove(path)
            return
        last = "%s.%d" % (path, self.backups)
        if os.path.exists(last):
            os.remove(last)
        for i in range(self.backups - 1, 0, -1):
            src = "%s.%d" % (path, i)
            if os.path.exists(src):
                os.replace(src, "%s.%d" % (path, i + 1))
        os.replace(path, path + ".1")
        self.rotations += 1

    def write_rows(self, rows, unix_ms=None):
        """Appends rows (dicts); rotates first when the day changed or the
        size limit would be exceeded. A batch is never split across files."""
        if unix_ms is None:
            unix_ms = self._now_ms()
        text = "".join(self._line(r) for r in rows)
        path = self.current_path(unix_ms)
        if path != self._cur:
            if self._cur is not None and self.daily:
                self.rotations += 1
            self._open(path)
        if self.max_bytes and self._f is not None:
            size = self._f.tell()
            header = len(self._line(dict(zip(self.fields, self.fields))))
            if size > header and size + len(text) > self.max_bytes:
                self._f.close()
                self._f = None
                self._shift(path)
                self._open(path)
        assert self._f is not None
        self._f.write(text)
        self._f.flush()

    def close(self):
        if self._f:
            self._f.close()
            self._f = None
