"""Where the MicroPython source comes from, and what identifies it.

Order: $MICROPY_DIR (a user's checkout at v1.28.0), else the bundle in
../shared/micropython/ unpacked into the cache, else a git clone of the tag
(with the submodules the rp2 and unix+NimBLE builds need) into the cache.
"""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

from .lock import locked

TAG = "v1.28.0"
BUNDLE_NAME = "micropython-1.28.0-src.tar.xz"
GIT_URL = "https://github.com/micropython/micropython"
SUBMODULES = ("lib/pico-sdk", "lib/tinyusb", "lib/mbedtls", "lib/micropython-lib", "lib/mynewt-nimble")


class BuildError(RuntimeError):
    pass


class Source:
    """A MicroPython tree: `path` (the `micropython` folder), `ident` (stable
    string naming its content), `origin` (for logs/docs)."""

    def __init__(self, path, ident, origin):
        self.path = path
        self.ident = ident
        self.origin = origin

    @property
    def short(self):
        return hashlib.sha256(self.ident.encode()).hexdigest()[:12]

    @property
    def mpy_cross(self):
        return os.path.join(self.path, "mpy-cross", "build", "mpy-cross")

    def version(self):
        txt = open(os.path.join(self.path, "py", "mpconfig.h")).read()
        parts = [re.search(r"#define MICROPY_VERSION_%s \(?(\d+)" % k, txt) for k in ("MAJOR", "MINOR", "MICRO")]
        return ".".join(m.group(1) if m else "?" for m in parts)


def check_submodules(src, needed):
    """Stop early, naming the git command, when a tree lacks a submodule a build needs."""
    missing = [m for m in needed if not os.path.isdir(os.path.join(src.path, m))
               or not os.listdir(os.path.join(src.path, m))]
    if missing:
        raise BuildError("%s lacks the submodules %s: run `git -C %s submodule update --init %s`"
                         % (src.origin, " ".join(missing), src.path, " ".join(missing)))


def _git(path, *args):
    r = subprocess.run(["git", "-C", path] + list(args), capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def _from_dir(path):
    path = os.path.realpath(path)
    if not os.path.isfile(os.path.join(path, "py", "mpconfig.h")):
        raise BuildError("MICROPY_DIR=%s is not a MicroPython source tree (no py/mpconfig.h)" % path)
    head = _git(path, "rev-parse", "HEAD")
    if head:
        dirty = _git(path, "diff", "HEAD") or ""      # local edits to tracked files are part of the identity
        ident = "git:%s:%s" % (head, hashlib.sha256(dirty.encode()).hexdigest()[:12] if dirty else "clean")
    else:
        ident = "dir:" + path
    return Source(path, ident, "MICROPY_DIR=" + path)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundle_path(repo):
    return os.path.normpath(os.path.join(repo, "..", "shared", "micropython", BUNDLE_NAME))


def _from_bundle(bundle, cache, log):
    digest = _sha256(bundle)
    dest = os.path.join(cache, "src", "bundle-" + digest[:12])
    tree = os.path.join(dest, "micropython")
    done = os.path.join(dest, ".unpacked")
    if not os.path.exists(done):
        with locked(cache, "src-" + digest[:12]):
            if not os.path.exists(done):
                log("unpacking %s -> %s" % (bundle, dest))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                tmp = tempfile.mkdtemp(prefix=".unpack-", dir=os.path.dirname(dest))
                try:
                    subprocess.run(["tar", "-xJf", bundle, "-C", tmp], check=True)
                    if os.path.exists(dest):
                        shutil.rmtree(dest)
                    os.rename(tmp, dest)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                open(done, "w").write(digest + "\n")
    return Source(tree, "bundle:" + digest, "bundle " + bundle)


def _from_git(cache, log):
    dest = os.path.join(cache, "src", "git-" + TAG)
    tree = os.path.join(dest, "micropython")
    done = os.path.join(dest, ".cloned")
    if not os.path.exists(done):
        if not shutil.which("git"):
            raise BuildError("no MICROPY_DIR, no source bundle and no git: install git or set MICROPY_DIR")
        with locked(cache, "src-git-" + TAG):
            if not os.path.exists(done):
                shutil.rmtree(dest, ignore_errors=True)
                os.makedirs(dest)
                log("cloning %s %s -> %s" % (GIT_URL, TAG, tree))
                try:
                    subprocess.run(["git", "clone", "--depth", "1", "-b", TAG, GIT_URL, tree], check=True)
                    subprocess.run(["git", "-C", tree, "submodule", "update", "--init", "--depth", "1"]
                                   + list(SUBMODULES), check=True)
                except BaseException:
                    shutil.rmtree(dest, ignore_errors=True)
                    raise
                open(done, "w").write(TAG + "\n")
    head = _git(tree, "rev-parse", "HEAD") or TAG
    return Source(tree, "git:%s:clean" % head, "git clone %s %s" % (GIT_URL, TAG))


def resolve(repo, cache, log=print):
    """The Source to build from (see module doc)."""
    env = os.environ.get("MICROPY_DIR")
    if env:
        return _from_dir(env)
    # The bundle sits next to the clone; a copy of the tree elsewhere (tests) uses this clone's.
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for bundle in (bundle_path(repo), bundle_path(here)):
        if os.path.isfile(bundle):
            return _from_bundle(bundle, cache, log)
    # A clone elsewhere on a machine that has unpacked the bundle before shares that source.
    cached = _cached_bundle(cache)
    if cached:
        return cached
    try:
        return _from_git(cache, log)
    except (subprocess.CalledProcessError, OSError) as e:
        raise BuildError("no MicroPython source: MICROPY_DIR is not set, there is no bundle at %s or in "
                         "the cache %s, and `git clone -b %s %s` failed (%s)"
                         % (bundle_path(repo), cache, TAG, GIT_URL, e)) from None


def _cached_bundle(cache):
    """The newest bundle tree unpacked in the cache, if any."""
    d = os.path.join(cache, "src")
    found = []
    for name in os.listdir(d) if os.path.isdir(d) else ():
        done = os.path.join(d, name, ".unpacked")
        if name.startswith("bundle-") and os.path.exists(done):
            found.append((os.path.getmtime(done), name, open(done).read().strip()))
    if not found:
        return None
    _, name, digest = max(found)
    return Source(os.path.join(d, name, "micropython"), "bundle:" + digest, "bundle (cached) " + name)
