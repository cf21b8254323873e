"""Debian packages the builds need: installed with apt when missing (as root),
otherwise a clear error naming them."""
import os
import shutil
import subprocess
import tempfile

from .source import BuildError


def _have_newlib():
    if not shutil.which("arm-none-eabi-gcc"):
        return False
    r = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0plus", "-print-file-name=libc.a"],
                       capture_output=True, text=True)
    return os.path.isabs(r.stdout.strip())


def _have_m32():
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "t.c")
        open(src, "w").write("#include <stdio.h>\nint main(void){return 0;}\n")
        r = subprocess.run(["gcc", "-m32", src, "-o", os.path.join(d, "t")], capture_output=True)
        return r.returncode == 0


CHECKS = {
    # name: (test, Debian packages)
    "arm": (lambda: _have_newlib() and shutil.which("cmake") is not None,
            ["gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "cmake"]),
    "host": (lambda: all(shutil.which(t) for t in ("gcc", "make", "python3", "tar", "xz")),
             ["build-essential", "python3", "xz-utils"]),
    "m32": (_have_m32, ["gcc-multilib"]),
}
_ok = set()


def ensure(*names, log=print):
    """Install the packages for each check in `names` that fails."""
    missing = []
    for n in names:
        if n in _ok:
            continue
        test, pkgs = CHECKS[n]
        if test():
            _ok.add(n)
        else:
            missing.append(n)
    if not missing:
        return
    pkgs = sorted({p for n in missing for p in CHECKS[n][1]})
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BuildError("missing build tools (%s): install the Debian packages %s, e.g. "
                         "`sudo apt-get install -y %s`" % (", ".join(missing), " ".join(pkgs), " ".join(pkgs)))
    log("apt-get install -y " + " ".join(pkgs))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True)
    if r.returncode == 0:
        r = subprocess.run(["apt-get", "install", "-y"] + pkgs, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError("apt-get could not install %s:\n%s" % (" ".join(pkgs), (r.stdout + r.stderr)[-2000:]))
    for n in missing:
        if not CHECKS[n][0]():
            raise BuildError("%s still missing after installing %s" % (n, " ".join(pkgs)))
        _ok.add(n)
