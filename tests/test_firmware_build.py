"""The firmware we ship: RPI_PICO with lib/ frozen (and the unix + NimBLE build), built by
tools/fwbuild from MicroPython v1.28.0 into the cache outside the clone.

Cost: a cold cache builds mpy-cross + rp2 + unix-ble (~2-4 min on 2 cores); a warm one
re-freezes and relinks (~4 s per image); an unchanged tree does nothing. All tests share one
xdist group so two workers never build at once (the cache is also flock'ed)."""
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

import fwbuild
from fwbuild.uf2 import FLASH_BASE, RP2040_FAMILY, bin_to_uf2, uf2_to_bin

pytestmark = pytest.mark.xdist_group("firmware")

ROOT = fwbuild.repo_root()


def lib_modules():
    """lib/ modules as frozen names: 'node/app.py', 'clock.py', ..."""
    out = []
    base = os.path.join(ROOT, "lib")
    for d, dirs, files in os.walk(base):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        out += [os.path.relpath(os.path.join(d, f), base) for f in files if f.endswith(".py")]
    return sorted(out)


@pytest.fixture(scope="module")
def rp2():
    return fwbuild.rp2_firmware()


def test_rp2_outputs_and_budget(rp2):
    info = rp2["info"]
    size = os.path.getsize(rp2["bin"])
    assert size == info["bin_bytes"]
    print("RPI_PICO firmware.bin %d B = %.1f %% of the %d B before the filesystem (text %s)"
          % (size, 100.0 * size / fwbuild.FLASH_BUDGET, fwbuild.FLASH_BUDGET, info.get("text")))
    assert size <= fwbuild.FLASH_BUDGET
    with open(rp2["elf"], "rb") as f:
        assert f.read(4) == b"\x7fELF"
    assert info["version"] == "1.28.0"


def test_rp2_freezes_every_lib_module(rp2):
    """Each lib/ module is in the frozen table (mp_frozen_names), so `import node` etc. come from flash."""
    data = open(rp2["bin"], "rb").read()
    missing = [m for m in lib_modules() if (m.encode() + b"\0") not in data]
    assert not missing, "not frozen (add to firmware/manifest_lib.py): %s" % missing
    assert b"asyncio/core.py\0" in data  # the port's own frozen set is kept
    nm = subprocess.run(["arm-none-eabi-nm", rp2["elf"]], capture_output=True, text=True).stdout
    assert " mp_frozen_mpy_content" in nm and " mp_qstr_frozen_const_pool" in nm


def test_uf2_round_trip(rp2):
    data = open(rp2["bin"], "rb").read()
    uf2 = open(rp2["uf2"], "rb").read()
    blocks = (len(data) + 255) // 256
    assert len(uf2) == 512 * blocks
    back = uf2_to_bin(uf2)
    assert back[:len(data)] == data and set(back[len(data):]) <= {0}
    assert int.from_bytes(uf2[12:16], "little") == FLASH_BASE
    assert int.from_bytes(uf2[28:32], "little") == RP2040_FAMILY
    # The reader is strict: a wrong family, a lost block or a broken magic is refused.
    bad = bytearray(uf2)
    bad[28:32] = (0xADA52840).to_bytes(4, "little")
    with pytest.raises(ValueError):
        uf2_to_bin(bytes(bad))
    with pytest.raises(ValueError):
        uf2_to_bin(uf2[:512] + uf2[1024:])
    bad = bytearray(uf2)
    bad[510] ^= 0xFF
    with pytest.raises(ValueError):
        uf2_to_bin(bytes(bad))
    assert uf2_to_bin(bin_to_uf2(b"\x01\x02\x03")) == b"\x01\x02\x03" + b"\0" * 253


def test_unchanged_tree_is_a_no_op(rp2):
    first = fwbuild.rp2_firmware()  # lib/ may have changed since the fixture ran
    again = fwbuild.rp2_firmware()
    assert again["built"] is False and again["key"] == first["key"]


def test_lib_change_only_refreezes_and_relinks(rp2, tmp_path):
    """A copy of the tree with one lib/ function added, built by two processes at once (two xdist
    workers, two users): the file lock lets one of them build, the other takes its output from the
    cache; the shared build dir recompiles only frozen_content.c and relinks; the new code is in
    the image."""
    # the shared build dir must hold this tree's build (a pruned cache could have dropped it)
    bdir = os.path.join(fwbuild.cache_dir(), "build", fwbuild.source.resolve(ROOT, fwbuild.cache_dir(), log=lambda m: None).short, "RPI_PICO")
    try:
        warm = open(os.path.join(bdir, "inputs.key")).read() == rp2["key"]
    except OSError:
        warm = False
    if not warm:
        fwbuild.rp2_firmware(force=True)
    probe = "fwbuild_probe_%s" % uuid.uuid4().hex[:12]
    repo = tmp_path / "clone"
    shutil.copytree(os.path.join(ROOT, "lib"), repo / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.mpy"))
    shutil.copytree(os.path.join(ROOT, "firmware"), repo / "firmware")
    with open(repo / "lib" / "clock.py", "a") as f:
        f.write("\n\ndef %s():\n    return 1\n" % probe)
    code = ("import json, sys; sys.path.insert(0, %r); import fwbuild; r = fwbuild.rp2_firmware(repo=%r); "
            "print('RESULT ' + json.dumps({k: r[k] for k in ('built', 'key', 'bin', 'uf2', 'info')}))"
            % (os.path.join(ROOT, "tools"), str(repo)))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    res = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
        res.append(json.loads(out.split("RESULT ", 1)[1]))
    assert res[0]["key"] == res[1]["key"] != rp2["key"]
    assert sorted(r["built"] for r in res) == [False, True]
    info = res[0]["info"]
    print("relink after a lib/ change: %.1f s, compiled %s" % (info["seconds"], info["compiled"]))
    assert [os.path.basename(o) for o in info["compiled"]] == ["frozen_content.c.o"]
    assert info["linked"]
    data = open(res[0]["bin"], "rb").read()
    assert probe.encode() in data
    assert uf2_to_bin(open(res[0]["uf2"], "rb").read())[:len(data)] == data
    assert probe.encode() not in open(rp2["bin"], "rb").read()


def test_unix_ble_runs_frozen_lib_with_nimble():
    exe = fwbuild.unix_ble()
    code = ("import sys, bluetooth, asyncio, node, store, energy, proto, rbamp, clock\n"
            "print(sys.implementation.version[:3], hasattr(bluetooth, 'BLE'), node.__file__)\n")
    r = subprocess.run([exe, "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:4] == ["(1,", "28,", "0)", "True"], r.stdout
    # cwd "/" and no MICROPYPATH: the packages can only come from the frozen set
    assert r.stdout.split()[-1] == "node/__init__.py", r.stdout


# -- the filesystem way: BUILD.md's mpremote commands, run by mpremote's own code into an image --

MOUNT_AND_IMPORT = r"""
import sys, vfs
class Bdev:
    def __init__(self, data):
        self.d = data
    def readblocks(self, n, buf, off=0):
        a = n * 4096 + off
        buf[:] = self.d[a:a + len(buf)]
    def writeblocks(self, n, buf, off=0):
        a = n * 4096 + off
        self.d[a:a + len(buf)] = buf
    def ioctl(self, op, arg):
        if op == 4: return len(self.d) // 4096
        if op == 5: return 4096
        if op == 6:
            self.d[arg * 4096:(arg + 1) * 4096] = b"\xff" * 4096
        return 0
vfs.mount(vfs.VfsLfs2(Bdev(bytearray(open(sys.argv[1], "rb").read())), progsize=256), "/flash")
sys.path[:] = ["/flash/lib", ".frozen"]
import node.app, store.journal, ble
print("FROM", node.__file__, node.app.__file__)
print("BOOT", len(open("/flash/boot.py").read()) > 0, len(open("/flash/config.json").read()) > 0)
"""


def test_fsimage_is_what_build_md_deploys(tmp_path):
    """`make fsimage`: the rp2 LittleFS image made by BUILD.md's mpremote block puts the .mpy
    files in /lib/<pkg>/, where the firmware's import finds them, next to boot.py, main.py and
    /config.json; MicroPython's own LittleFS (progsize=256) mounts it and imports the node."""
    from fwbuild import fsimage
    out = str(tmp_path / "fs.bin")
    r = fsimage.build_image(out=out)
    image = open(out, "rb").read()
    assert len(image) == 352 * 4096
    files = fsimage.walk(fsimage.new_fs(image))
    expect = {"/lib/" + m[:-3] + ".mpy" for m in lib_modules()} | {"/boot.py", "/main.py", "/config.json"}
    assert set(files) == expect
    assert files["/main.py"] == open(os.path.join(ROOT, "main.py"), "rb").read()
    assert files["/lib/node/app.mpy"][:1] == b"M"          # .mpy header, version 6
    print("fsimage: %d files, %d of 352 blocks" % (len(files), r["blocks_used"]))
    script = tmp_path / "mount.py"
    script.write_text(MOUNT_AND_IMPORT)
    p = subprocess.run([fwbuild.unix_ble(), "-X", "heapsize=4M", str(script), out],
                       capture_output=True, text=True, cwd="/", timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "FROM /flash/lib/node/__init__.mpy /flash/lib/node/app.mpy" in p.stdout, p.stdout
    assert "BOOT True True" in p.stdout


def test_old_build_md_commands_landed_in_lib_mpy(tmp_path):
    """The check is live: the deploy lines BUILD.md had before (mkdir :lib; cp -r build/mpy/ :lib/)
    put the packages in /lib/mpy/, where `import node` cannot find them."""
    from fwbuild import fsimage
    (tmp_path / "build" / "mpy" / "node").mkdir(parents=True)
    (tmp_path / "build" / "mpy" / "node" / "__init__.mpy").write_bytes(b"M\x06")
    fs = fsimage.new_fs()
    fsimage.run_mpremote(fs, "mpremote connect /dev/ttyUSB0 mkdir :lib", str(tmp_path))
    fsimage.run_mpremote(fs, "mpremote connect /dev/ttyUSB0 cp -r build/mpy/ :lib/", str(tmp_path))
    assert set(fsimage.walk(fs)) == {"/lib/mpy/node/__init__.mpy"}


def test_rp2_stock_firmware():
    r = fwbuild.rp2_stock()
    data = open(r["bin"], "rb").read()
    assert len(data) <= fwbuild.FLASH_BUDGET
    assert b"node/app.py\0" not in data and b"asyncio/core.py\0" in data
    assert uf2_to_bin(open(r["uf2"], "rb").read())[:len(data)] == data


@pytest.mark.parametrize("board", ["ESP32_GENERIC", "ESP32_GENERIC_S3"])
def test_esp32_manifest_freezes_lib(board):
    """ESP32 cannot be built here (no ESP-IDF), but its manifest can be evaluated: MicroPython's
    own manifestfile.py, in freeze mode, against the esp32 port of the same v1.28.0 source
    resolves firmware/manifest.py to the port's frozen set plus every lib/ module."""
    import importlib.util
    mp = fwbuild.micropython_dir()
    spec = importlib.util.spec_from_file_location("mp_manifestfile", os.path.join(mp, "tools", "manifestfile.py"))
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    port = os.path.join(mp, "ports", "esp32")
    m = mf.ManifestFile(mf.MODE_FREEZE, {"MPY_DIR": mp, "PORT_DIR": port,
                                         "BOARD_DIR": os.path.join(port, "boards", board),
                                         "MPY_LIB_DIR": os.path.join(mp, "lib", "micropython-lib")})
    m.execute(os.path.join(ROOT, "firmware", "manifest.py"))
    targets = {r.target_path for r in m.files()}
    missing = [x for x in lib_modules() if x not in targets]
    assert not missing, "not frozen for %s: %s" % (board, missing)
    assert {"asyncio/core.py", "inisetup.py", "flashbdev.py"} <= targets   # the port's own set is kept


def test_source_from_micropy_dir(monkeypatch, tmp_path):
    """MICROPY_DIR wins over the bundle and is checked; its identity keys the cache."""
    from fwbuild import source
    tree = fwbuild.micropython_dir()
    monkeypatch.setenv("MICROPY_DIR", tree)
    s = source.resolve(ROOT, str(tmp_path), log=lambda m: None)
    assert s.path == os.path.realpath(tree) and s.version() == "1.28.0"
    assert s.ident.startswith(("dir:", "git:")) and not s.ident.startswith("bundle:")
    monkeypatch.setenv("MICROPY_DIR", str(tmp_path))
    with pytest.raises(fwbuild.BuildError, match="not a MicroPython source tree"):
        source.resolve(ROOT, str(tmp_path), log=lambda m: None)
    # a checkout without its submodules is refused with the command that fetches them
    (tmp_path / "py").mkdir()
    (tmp_path / "py" / "mpconfig.h").write_text("")
    (tmp_path / "lib" / "pico-sdk").mkdir(parents=True)
    bare = source.resolve(ROOT, str(tmp_path), log=lambda m: None)
    with pytest.raises(fwbuild.BuildError, match="submodule update --init lib/pico-sdk lib/tinyusb"):
        source.check_submodules(bare, ("lib/pico-sdk", "lib/tinyusb"))
    source.check_submodules(s, fwbuild._Rp2.submodules + fwbuild._UnixBle.submodules)


def test_missing_toolchain_is_a_clear_error(monkeypatch):
    """Without root (or apt) a missing toolchain stops with the Debian packages to install."""
    from fwbuild import toolchain
    monkeypatch.setitem(toolchain.CHECKS, "arm", (lambda: False, ["gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "cmake"]))
    monkeypatch.setattr(toolchain, "_ok", set())
    monkeypatch.setattr(toolchain.os, "geteuid", lambda: 1000)
    with pytest.raises(fwbuild.BuildError, match="apt-get install -y cmake gcc-arm-none-eabi libnewlib-arm-none-eabi"):
        toolchain.ensure("arm", log=lambda m: None)


def test_stock_firmware_boots_the_fsimage_on_the_emulated_pico():
    """Smoke test of the filesystem way: the stock RPI_PICO firmware with BUILD.md's LittleFS
    image (lib/ as .mpy in /lib) on the emulated RP2040 boots, meters the module on I2C0 and
    answers on UART0. ~15 s."""
    from fwbuild import fsimage
    from picoboard import PicoBoard
    img = os.path.join(ROOT, "build", "firmware", "fs", "rp2-lfs.bin")
    fsimage.build_image(out=img)
    files = fsimage.walk(fsimage.new_fs(open(img, "rb").read()))
    b = PicoBoard(files=files, firmware_bin=fwbuild.rp2_stock()["bin"], pty=False)
    try:
        b.start()
        b.run_for(8.0)
        status = b.console_cmd("STATUS")
        totals = b.console_cmd("TOTALS")
    finally:
        b.close()
    st = dict(kv.split(b"=", 1) for line in status.split(b"\r\n") for kv in line.split()[1:] if b"=" in kv)
    print("stock + .mpy on the emulated Pico: heap_used %s B, heap_free %s B" % (st[b"heap_used"].decode(),
                                                                               st[b"heap_free"].decode()))
    assert status.endswith(b"OK\r\n") and st[b"fs"] == b"ok" and int(st[b"windows"]) > 0, status
    ch0 = [ln for ln in totals.split(b"\r\n") if ln.startswith(b"CH module=0x50 ch=0 ")]
    assert ch0 and totals.endswith(b"OK\r\n"), totals
    kv = dict(x.split(b"=", 1) for x in ch0[0].split()[1:])
    assert float(kv[b"import_kwh"]) + float(kv[b"export_kwh"]) > 0, ch0


def test_clone_elsewhere_shares_the_cached_source(tmp_path, monkeypatch):
    """A clone with no ../shared next to it (a CI checkout in /tmp) reuses the bundle unpacked in
    the cache instead of trying the network; with neither, the error says what to do."""
    from fwbuild import source
    here = source.resolve(ROOT, fwbuild.cache_dir(), log=lambda m: None)   # unpacked in the cache
    clone = tmp_path / "ci" / "clone"
    clone.mkdir(parents=True)
    monkeypatch.setattr(source, "bundle_path", lambda repo: os.path.join(repo, "..", "shared", "none.tar.xz"))
    s = source.resolve(str(clone), fwbuild.cache_dir(), log=lambda m: None)
    assert s.ident == here.ident and s.path == here.path
    monkeypatch.setattr(source, "GIT_URL", str(tmp_path / "no-such-repo"))   # no network in tests
    with pytest.raises(fwbuild.BuildError, match="MICROPY_DIR is not set"):
        source.resolve(str(clone), str(tmp_path / "empty-cache"), log=lambda m: None)


def test_build_key_covers_every_frozen_input(tmp_path):
    """The cache key changes with the manifests, lib/ and the frozen
    boot.py/main.py, and with nothing else under firmware/ (board configs,
    docs): a stale image is never reused, a docs edit never rebuilds."""
    for rel, text in (("firmware/manifest.py", "include('manifest_lib.py')\n"),
                      ("firmware/manifest_lib.py", "package('node')\n"),
                      ("firmware/frozen/main.py", "import node\n"),
                      ("firmware/boards/rp2040.json", "{}\n"),
                      ("firmware/BUILD.md", "# build\n"),
                      ("lib/node/__init__.py", "VERSION = '1'\n")):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    key = fwbuild._inputs_digest(str(tmp_path))
    seen = {key}
    for rel in ("firmware/manifest.py", "firmware/manifest_lib.py", "firmware/frozen/main.py",
                "lib/node/__init__.py"):
        (tmp_path / rel).write_text((tmp_path / rel).read_text() + "# changed\n")
        k = fwbuild._inputs_digest(str(tmp_path))
        assert k not in seen, rel
        seen.add(k)
    for rel in ("firmware/boards/rp2040.json", "firmware/BUILD.md"):
        (tmp_path / rel).write_text("changed\n")
        assert fwbuild._inputs_digest(str(tmp_path)) in seen, rel
