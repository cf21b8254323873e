"""The filesystem way of shipping (stock firmware + .mpy files on LittleFS).

1. stage(): lib/ compiled with the firmware source's own mpy-cross into
   build/deploy/<port>/lib/<pkg>/<mod>.mpy, plus boot.py and main.py;
2. build_image(): an RPI_PICO LittleFS image made by running the `mpremote` commands of
   firmware/BUILD.md (the block after `<!-- fsimage -->`) through mpremote's own `cp`/`mkdir`
   code against the image, so the test image lands files exactly where those commands land
   them on a board.

rp2 mounts LittleFS v2 at flash offset 640 KB: 352 blocks of 4096 B, `progsize=256`
(ports/rp2/modules/_boot.py), readsize and lookahead at VfsLfs2's defaults (32, 32;
extmod/vfs_lfs.c), cache = min(block, 4 x max(read, prog)) = 1024, block_cycles 100.
"""
import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import types

from . import BuildError, cache_dir, mpy_cross, repo_root
from .lock import locked

RP2_FS = {"offset": 0xA0000, "block_size": 4096, "block_count": 352, "prog_size": 256,
          "read_size": 32, "lookahead_size": 32, "block_cycles": 100, "cache_size": 1024}
ARCH = {"rp2": "armv6m", "esp32": "xtensawin"}
MARK = "<!-- fsimage -->"


def _lock(repo):
    """Staging and imaging write build/deploy/ and read it back: one at a time per clone."""
    return locked(cache_dir(), "deploy-" + hashlib.sha256(repo.encode()).hexdigest()[:12])


def stage(port="rp2", repo=None):
    """Compile lib/ to .mpy for `port` into build/deploy/<port>/; returns that folder."""
    repo = os.path.abspath(repo or repo_root())
    with _lock(repo):
        return _stage(port, repo)


def _stage(port, repo):
    out = os.path.join(repo, "build", "deploy", port)
    cross = mpy_cross(repo)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".%s-" % port, dir=os.path.dirname(out))
    lib = os.path.join(repo, "lib")
    for d, dirs, files in os.walk(lib):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__")
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(d, f), lib)
            dst = os.path.join(tmp, "lib", rel[:-3] + ".mpy")
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            r = subprocess.run([cross, "-march=" + ARCH[port], "-msmall-int-bits=31", "-s", rel,
                                "-o", dst, os.path.join(d, f)], capture_output=True, text=True)
            if r.returncode:
                raise BuildError("mpy-cross %s: %s" % (rel, r.stderr.strip()))
    for f in ("boot.py", "main.py"):
        shutil.copy2(os.path.join(repo, f), os.path.join(tmp, f))
    shutil.rmtree(out, ignore_errors=True)
    try:
        os.rename(tmp, out)
    except OSError:
        # another process staged the same tree at the same moment: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def deploy_commands(repo=None):
    """The mpremote command lines of BUILD.md's filesystem deploy block."""
    repo = os.path.abspath(repo or repo_root())
    text = open(os.path.join(repo, "firmware", "BUILD.md")).read()
    if MARK not in text:
        raise BuildError("firmware/BUILD.md has no %s block" % MARK)
    block = text.split(MARK, 1)[1].split("```", 2)[1]
    return [ln.split("#", 1)[0].strip() for ln in block.splitlines()[1:]
            if ln.strip().startswith("mpremote ")]


class LfsTransport:
    """mpremote's filesystem transport calls, served by a littlefs-python LittleFS (cwd '/')."""
    in_raw_repl = True

    def __init__(self, fs):
        self.fs = fs

    @staticmethod
    def _p(path):
        return "/" + path.strip("/")

    def fs_stat(self, src):
        import littlefs
        try:
            st = self.fs.stat(self._p(src))
        except littlefs.errors.LittleFSError as e:
            raise FileNotFoundError(2, src) from e
        mode = 0x4000 if st.type == 2 else 0x8000
        return os.stat_result((mode, 0, 0, 0, 0, 0, st.size, 0, 0, 0))

    def fs_exists(self, src):
        try:
            self.fs_stat(src)
            return True
        except OSError:
            return False

    def fs_isdir(self, src):
        try:
            return bool(self.fs_stat(src).st_mode & 0x4000)
        except OSError:
            return False

    def fs_listdir(self, src=""):
        from mpremote.transport import listdir_result
        out = []
        for name in self.fs.listdir(self._p(src)):
            st = self.fs_stat(self._p(src) + "/" + name)
            out.append(listdir_result(name, st.st_mode, 0, st.st_size))
        return out

    def fs_readfile(self, src, chunk_size=256, progress_callback=None):
        with self.fs.open(self._p(src), "rb") as f:
            return bytearray(f.read())

    def fs_writefile(self, dest, data, chunk_size=256, progress_callback=None):
        with self.fs.open(self._p(dest), "wb") as f:
            f.write(bytes(data))

    def fs_mkdir(self, path):
        if self.fs_exists(path):
            raise FileExistsError(17, path)
        self.fs.mkdir(self._p(path))

    def fs_rmdir(self, path):
        self.fs.remove(self._p(path))

    def fs_rmfile(self, path):
        self.fs.remove(self._p(path))

    def fs_touchfile(self, path):
        if not self.fs_exists(path):
            self.fs_writefile(path, b"")

    def fs_hashfile(self, path, algo, chunk_size=256):
        return hashlib.new(algo, self.fs_readfile(path)).digest()


class _State:
    def __init__(self, transport):
        self.transport = transport

    def did_action(self):
        pass

    def ensure_raw_repl(self, soft_reset=None):
        pass

    ensure_connected = ensure_friendly_repl = ensure_raw_repl


def run_mpremote(fs, line, cwd):
    """Run one `mpremote ...` command line against `fs` with mpremote's own argument
    expansion and filesystem code. connect/reset/soft-reset are no-ops here."""
    _need("mpremote")
    from mpremote import commands, main as mpmain
    mpmain.prepare_command_expansions(types.SimpleNamespace(commands={}))
    args = shlex.split(line)[1:]
    state = _State(LfsTransport(fs))
    ran = []
    here = os.getcwd()
    os.chdir(cwd)
    try:
        while args:
            if args[0] == "+":
                args.pop(0)
                continue
            if args[0] == "connect":
                args = args[2:]
                continue
            mpmain.do_command_expansion(args)
            cmd = args.pop(0)
            if "+" in args:
                cmd_args, extra = args[:args.index("+")], args[args.index("+"):]
            else:
                cmd_args, extra = args, []
            if cmd in ("reset", "soft-reset", "exec", "resume"):
                # board control, nothing to do on an image (exec: `reset` expands to one)
                ran.append(cmd)
                args = extra
                continue
            if cmd != "fs":
                raise BuildError("fsimage: mpremote command %r is not supported: %s" % (cmd, line))
            parser = mpmain.argparse_filesystem()
            parser.add_argument("next_command", nargs=argparse.REMAINDER)
            a = parser.parse_args(cmd_args)
            a.verbose = False
            commands.do_filesystem(state, a)
            ran.append(" ".join([a.command[0]] + a.path))
            args = a.next_command + extra
    finally:
        os.chdir(here)
    return ran


def walk(fs, top="/"):
    """{path: bytes} of every file in a littlefs-python LittleFS."""
    out = {}
    for root, dirs, files in fs.walk(top):
        for f in files:
            p = root.rstrip("/") + "/" + f
            with fs.open(p, "rb") as fh:
                out[p] = fh.read()
    return out


def _need(mod):
    try:
        return __import__(mod)
    except ImportError:
        raise BuildError("Python package %r missing: run `make setup` and use .venv/bin/python "
                         "(pinned in tools/requirements-dev.txt)" % mod) from None


def new_fs(image=None):
    littlefs = _need("littlefs")
    fs = littlefs.LittleFS(block_size=RP2_FS["block_size"], block_count=RP2_FS["block_count"],
                           prog_size=RP2_FS["prog_size"], read_size=RP2_FS["read_size"],
                           lookahead_size=RP2_FS["lookahead_size"], block_cycles=RP2_FS["block_cycles"],
                           cache_size=RP2_FS["cache_size"], mount=image is None)
    if image is not None:
        fs.context.buffer[:] = image
        fs.mount()
    return fs


def build_image(out=None, config=None, repo=None):
    """Stage the files, run BUILD.md's deploy commands into a fresh rp2 LittleFS and write
    the image (1408 KB, for flash offset 0xA0000). Returns a summary dict."""
    repo = os.path.abspath(repo or repo_root())
    out = out or os.path.join(repo, "build", "firmware", "fs", "rp2-lfs.bin")
    fs = new_fs()
    ran = []
    with _lock(repo):
        _stage("rp2", repo)
        for line in deploy_commands(repo):
            ran += run_mpremote(fs, line, repo)
    if config:
        with fs.open("/config.json", "wb") as f:
            f.write(open(config, "rb").read())
    files = walk(fs)
    used = fs.used_block_count
    image = bytes(fs.context.buffer)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = "%s.%d.tmp" % (out, os.getpid())
    with open(tmp, "wb") as f:
        f.write(image)
    os.replace(tmp, out)
    summary = {"image": out, "offset": RP2_FS["offset"], "block_size": RP2_FS["block_size"],
               "block_count": RP2_FS["block_count"], "prog_size": RP2_FS["prog_size"],
               "blocks_used": used, "commands": ran,
               "files": {p: len(b) for p, b in sorted(files.items())}}
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(tmp, out + ".json")
    return summary
