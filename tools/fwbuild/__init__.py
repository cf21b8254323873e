"""Build the node's MicroPython firmware (v1.28.0) with lib/ frozen in, cached
outside the clone.

    rp2_firmware()  -> {"elf", "bin", "uf2", "dir", "info", ...}  build/firmware/RPI_PICO/
    rp2_stock()     -> the same for the stock RPI_PICO firmware    build/firmware/RPI_PICO-stock/
    unix_ble()      -> path of the unix port with NimBLE           build/firmware/unix-ble/micropython
    unix_ble32()    -> the same, 32-bit (MICROPY_FORCE_32BIT=1)    build/firmware/unix-ble32/micropython
    mpy_cross()     -> path of the source's own mpy-cross

Cache (${RBMETER_CACHE:-~/.cache/rbmeter}):
    src/<origin>/micropython      the unpacked source, shared by all builds
    build/<src>/<target>/         the port's build dir, reused: a lib/ change re-freezes and relinks
    out/<target>-<key>/           finished outputs, keyed by source, target, manifest and lib/
    locks/                        one flock per source and per build dir
An unchanged tree finds its key in build/firmware/<target>/info.json and does nothing.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from . import source as _source
from . import toolchain
from .lock import locked
from .source import BuildError
from .uf2 import bin_to_uf2

__all__ = ["rp2_firmware", "rp2_stock", "unix_ble", "unix_ble32", "mpy_cross", "micropython_dir", "BuildError",
           "repo_root", "cache_dir", "FLASH_BUDGET"]

# Bump when the build recipe changes, so cached outputs are not reused.
RECIPE = 5
BOARD = "RPI_PICO"
# RPI_PICO: 2 MB flash, the last 1408 KB are the filesystem (ports/rp2 mpconfigport.h), so the
# firmware image must fit in the first 640 KB.
FLASH_BUDGET = 640 * 1024
KEEP_OUTPUTS = 12
UNIX_FLAGS = ["MICROPY_PY_BLUETOOTH=1", "MICROPY_BLUETOOTH_NIMBLE=1", "MICROPY_PY_FFI=0", "MICROPY_PY_BTREE=0"]


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cache_dir():
    return os.path.abspath(os.path.expanduser(os.environ.get("RBMETER_CACHE") or "~/.cache/rbmeter"))


def _log(msg):
    print("fwbuild: " + msg, file=sys.stderr, flush=True)


def _jobs():
    return str(int(os.environ.get("RBMETER_JOBS") or os.cpu_count() or 2))


def _env():
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(k, None)
    return env


def _tree_digest(h, root, rel):
    """Feed every file under root/rel (names and bytes) into h; ignore caches."""
    base = os.path.join(root, rel)
    for d, dirs, files in os.walk(base):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for f in sorted(files):
            if f.endswith((".pyc", ".mpy")):
                continue
            p = os.path.join(d, f)
            h.update(os.path.relpath(p, root).encode() + b"\0")
            with open(p, "rb") as fh:
                h.update(fh.read())
            h.update(b"\0")


def _inputs_digest(repo):
    h = hashlib.sha256()
    for m in ("manifest.py", "manifest_lib.py"):
        p = os.path.join(repo, "firmware", m)
        if os.path.exists(p):
            h.update(m.encode() + open(p, "rb").read())
    _tree_digest(h, repo, "lib")
    _tree_digest(h, repo, os.path.join("firmware", "frozen"))   # frozen boot.py/main.py
    return h.hexdigest()


class _Target:
    """One firmware flavour: where it builds, what it produces."""
    name = None
    bdir_name = None     # build dir under build/<source>/ (default: name)
    submodules = ()
    frozen = True
    outputs = ()
    tools = ("host",)

    compiler = "gcc"

    def key(self, src, repo):
        parts = {"recipe": RECIPE, "target": self.name, "src": src.ident, "flags": self.flags(),
                 "cc": _cc_version(self.compiler)}
        if self.frozen:
            parts["inputs"] = _inputs_digest(repo)
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    def flags(self):
        return []

    def wrapper_manifest(self, repo):
        return None

    def build(self, src, bdir, manifest, logf):
        raise NotImplementedError

    def collect(self, bdir, dest):
        raise NotImplementedError


_cc = {}


def _cc_version(cc):
    """The compiler's version (part of the output key: a toolchain upgrade rebuilds)."""
    if cc not in _cc:
        try:
            r = subprocess.run([cc, "-dumpfullversion", "-dumpversion"], capture_output=True, text=True)
            _cc[cc] = r.stdout.strip() or "?"
        except OSError:
            _cc[cc] = "missing"
    return _cc[cc]


def _run(cmd, logf, cwd=None):
    logf.write("$ %s\n" % " ".join(cmd))
    logf.flush()
    r = subprocess.run(cmd, cwd=cwd, stdout=logf, stderr=subprocess.STDOUT, env=_env())
    if r.returncode != 0:
        raise BuildError("command failed (%d): %s\nsee %s" % (r.returncode, " ".join(cmd), logf.name))


class _Rp2(_Target):
    tools = ("host", "arm")
    submodules = ("lib/pico-sdk", "lib/tinyusb", "lib/mbedtls", "lib/micropython-lib")
    compiler = "arm-none-eabi-gcc"
    outputs = ("firmware.elf", "firmware.bin", "firmware.uf2")

    def __init__(self, stock=False):
        self.frozen = not stock
        self.name = BOARD + ("-stock" if stock else "")
        # Stock and frozen differ only in frozen_content.c (same flags, and the port freezes its
        # own set either way), so they share one build dir: switching re-freezes and relinks.
        self.bdir_name = BOARD

    def flags(self):
        return ["MICROPY_BOARD=" + BOARD, "PICO_NO_PICOTOOL=1"]

    def wrapper_manifest(self, repo):
        if not self.frozen:
            return 'include("$(PORT_DIR)/boards/manifest.py")\n'   # what a stock build freezes
        return 'include(%r)\n' % os.path.join(repo, "firmware", "manifest.py")

    def build(self, src, bdir, manifest, logf):
        port = os.path.join(src.path, "ports", "rp2")
        if not os.path.exists(os.path.join(bdir, "Makefile")):
            _run(["cmake", "-S", port, "-B", bdir, "-DPICO_BUILD_DOCS=0", "-DMICROPY_BOARD=" + BOARD,
                  "-DMICROPY_BOARD_DIR=" + os.path.join(port, "boards", BOARD), "-DPICO_NO_PICOTOOL=1",
                  "-DMICROPY_FROZEN_MANIFEST=" + manifest], logf)
        _run(["make", "-C", bdir, "-j", _jobs()], logf)

    def collect(self, bdir, dest):
        shutil.copy2(os.path.join(bdir, "firmware.elf"), dest)
        shutil.copy2(os.path.join(bdir, "firmware.bin"), dest)
        data = open(os.path.join(dest, "firmware.bin"), "rb").read()
        open(os.path.join(dest, "firmware.uf2"), "wb").write(bin_to_uf2(data))
        info = {"bin_bytes": len(data), "budget_bytes": FLASH_BUDGET}
        r = subprocess.run(["arm-none-eabi-size", os.path.join(dest, "firmware.elf")],
                           capture_output=True, text=True)
        if r.returncode == 0:
            text, data_, bss = r.stdout.splitlines()[1].split()[:3]
            info.update(text=int(text), data=int(data_), bss=int(bss))
        if len(data) > FLASH_BUDGET:
            raise BuildError("firmware.bin is %d B, over the %d B before the filesystem" % (len(data), FLASH_BUDGET))
        return info


class _UnixBle(_Target):
    outputs = ("micropython",)
    submodules = ("lib/mynewt-nimble", "lib/mbedtls", "lib/micropython-lib")

    def __init__(self, bits=64):
        self.bits = bits
        self.name = "unix-ble" + ("32" if bits == 32 else "")
        if bits == 32:
            self.tools = ("host", "m32")

    def flags(self):
        return UNIX_FLAGS + (["MICROPY_FORCE_32BIT=1"] if self.bits == 32 else [])

    def wrapper_manifest(self, repo):
        # The unix port has no boards/manifest.py: take its standard variant's frozen set
        # (asyncio, ...) and add our packages.
        return ('include("$(PORT_DIR)/variants/standard/manifest.py")\ninclude(%r)\n'
                % os.path.join(repo, "firmware", "manifest_lib.py"))

    def build(self, src, bdir, manifest, logf):
        _run(["make", "-C", os.path.join(src.path, "ports", "unix"), "-j", _jobs(), "BUILD=" + bdir,
              "PROG=micropython", "VARIANT=standard", "FROZEN_MANIFEST=" + manifest] + self.flags(), logf)

    def collect(self, bdir, dest):
        shutil.copy2(os.path.join(bdir, "micropython"), dest)
        return {"bin_bytes": os.path.getsize(os.path.join(dest, "micropython"))}


def _compiled(log_text):
    """Objects compiled and whether a link ran, from a make log (cmake or the unix Makefile)."""
    objs = re.findall(r"Building (?:C|CXX|ASM) object (\S+)", log_text)
    objs += re.findall(r"^CC (\S+)", log_text, re.M)
    linked = bool(re.search(r"Linking C(?:XX)? executable|^LINK ", log_text, re.M))
    return objs, linked


def _ensure_mpy_cross(src, cache):
    if os.path.exists(src.mpy_cross):
        return src.mpy_cross
    with locked(cache, "src-" + src.short):
        if not os.path.exists(src.mpy_cross):
            _log("building mpy-cross in %s" % src.path)
            t0 = time.time()
            with open(os.path.join(cache, "mpy-cross-%s.log" % src.short), "w") as logf:
                _run(["make", "-C", os.path.join(src.path, "mpy-cross"), "-j", _jobs()], logf)
            _log("mpy-cross built in %.1f s" % (time.time() - t0))
    return src.mpy_cross


def _publish(cached, dest, outputs):
    """Copy a finished output set into the repo (atomic per file; info.json last)."""
    os.makedirs(dest, exist_ok=True)
    for f in tuple(outputs) + ("build.log",):
        s = os.path.join(cached, f)
        if os.path.exists(s):
            tmp = os.path.join(dest, ".%s.%d" % (f, os.getpid()))
            shutil.copy2(s, tmp)
            os.replace(tmp, os.path.join(dest, f))
    tmp = os.path.join(dest, ".info.json.%d" % os.getpid())
    shutil.copy2(os.path.join(cached, "info.json"), tmp)
    os.replace(tmp, os.path.join(dest, "info.json"))


def _prune(d, name):
    mine = [os.path.join(d, x) for x in os.listdir(d) if x.startswith(name + "-") and not x.startswith(".")]
    mine = [p for p in mine if os.path.basename(p)[len(name) + 1:].isalnum()]
    mine.sort(key=os.path.getmtime, reverse=True)
    for p in mine[KEEP_OUTPUTS:]:
        shutil.rmtree(p, ignore_errors=True)


def _result(target, dest, info, built):
    """built: this call ran the build (False: unchanged tree, or taken from the cache)."""
    r = {"dir": dest, "info": info, "built": built, "key": info["key"], "log": os.path.join(dest, "build.log")}
    for f in target.outputs:
        r[f.split(".")[-1] if "." in f else "path"] = os.path.join(dest, f)
    return r


def build(target, repo=None, force=False):
    """Build `target` (or reuse the cache); returns _result()."""
    repo = os.path.abspath(repo or repo_root())
    cache = cache_dir()
    dest = os.path.join(repo, "build", "firmware", target.name)
    src = _source.resolve(repo, cache, _log)
    key = target.key(src, repo)
    cached = os.path.join(cache, "out", "%s-%s" % (target.name, key))
    try:
        old = json.load(open(os.path.join(dest, "info.json")))
    except (OSError, ValueError):
        old = None
    # no-op: the repo holds this key's outputs and the cache still knows them (a new or cleared
    # cache gets built, so its build dir is warm for the next lib/ change)
    if (not force and old and old.get("key") == key and os.path.exists(os.path.join(cached, "info.json"))
            and all(os.path.exists(os.path.join(dest, f)) for f in target.outputs)):
        return _result(target, dest, old, False)

    built = False
    if force or not os.path.exists(os.path.join(cached, "info.json")):
        _source.check_submodules(src, target.submodules)
        toolchain.ensure(*target.tools, log=_log)
        _ensure_mpy_cross(src, cache)
        bname = target.bdir_name or target.name
        bdir = os.path.join(cache, "build", src.short, bname)
        with locked(cache, "build-%s-%s" % (src.short, bname)):
            # another process may have built the same key while we waited
            if force or not os.path.exists(os.path.join(cached, "info.json")):
                _build_locked(target, repo, src, bdir, key, cached)
                built = True
    info = json.load(open(os.path.join(cached, "info.json")))
    os.utime(cached)
    _publish(cached, dest, target.outputs)
    return _result(target, dest, info, built)


def _build_locked(target, repo, src, bdir, key, cached):
    os.makedirs(bdir, exist_ok=True)
    manifest = None
    text = target.wrapper_manifest(repo)
    if text is not None:
        manifest = os.path.join(bdir, "manifest-wrap.py")
        if not os.path.exists(manifest) or open(manifest).read() != text:
            open(manifest, "w").write(text)
    # makemanifest decides by timestamps, which lie when the inputs are another clone or an older
    # checkout: whenever the inputs differ from the last build here, freeze from scratch.
    stamp = os.path.join(bdir, "inputs.key")
    last = open(stamp).read() if os.path.exists(stamp) else None
    if last != key:
        shutil.rmtree(os.path.join(bdir, "frozen_mpy"), ignore_errors=True)
        for f in ("frozen_content.c",):
            if os.path.exists(os.path.join(bdir, f)):
                os.remove(os.path.join(bdir, f))
    cold = not os.listdir(bdir) or os.listdir(bdir) == ["manifest-wrap.py"]
    _log("building %s from %s (%s)%s" % (target.name, src.origin, src.version(), " cold" if cold else ""))
    t0 = time.time()
    logpath = os.path.join(bdir, "build.log")
    try:
        with open(logpath, "w") as logf:
            target.build(src, bdir, manifest, logf)
    except BuildError:
        open(stamp, "w").write("failed")
        raise
    open(stamp, "w").write(key)
    secs = round(time.time() - t0, 1)
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".%s-" % target.name, dir=os.path.dirname(cached))
    try:
        info = target.collect(bdir, tmp)
        log_text = open(logpath, errors="replace").read()
        shutil.copy2(logpath, os.path.join(tmp, "build.log"))
        objs, linked = _compiled(log_text)
        info.update(key=key, target=target.name, source=src.origin, source_ident=src.ident,
                    version=src.version(), seconds=secs, cold=cold, compiled_count=len(objs),
                    compiled=objs[:40], linked=linked,
                    frozen=target.frozen, built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        json.dump(info, open(os.path.join(tmp, "info.json"), "w"), indent=1)
        shutil.rmtree(cached, ignore_errors=True)
        os.rename(tmp, cached)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _log("%s built in %.1f s (%d objects compiled)" % (target.name, secs, len(objs)))
    _prune(os.path.dirname(cached), target.name)


def rp2_firmware(repo=None, force=False):
    """RPI_PICO firmware with firmware/manifest.py frozen in: dict with elf, bin, uf2 paths."""
    return build(_Rp2(), repo, force)


def rp2_stock(repo=None, force=False):
    """Stock RPI_PICO firmware (the port's own frozen set only), for the filesystem deploy."""
    return build(_Rp2(stock=True), repo, force)


def unix_ble(repo=None, force=False):
    """Path of the unix port built with NimBLE, lib/ frozen in."""
    return build(_UnixBle(), repo, force)["path"]


def unix_ble32(repo=None, force=False):
    """Path of the 32-bit unix port with NimBLE (heap measurements with 31-bit small ints)."""
    return build(_UnixBle(32), repo, force)["path"]


def micropython_dir(repo=None):
    """The MicroPython source tree the builds use (unpacked or cloned on first use)."""
    repo = os.path.abspath(repo or repo_root())
    return _source.resolve(repo, cache_dir(), _log).path


def mpy_cross(repo=None):
    """Path of mpy-cross built from the same source as the firmware (same .mpy ABI)."""
    repo = os.path.abspath(repo or repo_root())
    cache = cache_dir()
    src = _source.resolve(repo, cache, _log)
    toolchain.ensure("host", log=_log)
    return _ensure_mpy_cross(src, cache)
