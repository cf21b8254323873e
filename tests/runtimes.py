"""Where the MicroPython runtimes live and how to run a tests/lib module on
them (shared by the pytest glue and by tools/bench)."""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
WASM_RUN = os.path.join(ROOT, "tests", "support", "wasm_run.mjs")
MICROPYPATH = os.pathsep.join(
    os.path.join(ROOT, p) for p in ("lib", "tools", "tests/support", "tests/lib"))


def lib_test_modules():
    d = os.path.join(ROOT, "tests", "lib")
    return sorted(f[:-3] for f in os.listdir(d) if f.startswith("test_") and f.endswith(".py"))


def run_unix(mods, heap="4M", timeout=600):
    env = dict(os.environ, MICROPYPATH=MICROPYPATH)
    return subprocess.run(
        [MICROPYTHON, "-X", "heapsize=" + heap, os.path.join(ROOT, "tests/support/mprun.py")] + list(mods),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def run_wasm(mods, timeout=900):
    return subprocess.run(["node", WASM_RUN] + list(mods), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def split_by_module(stdout):
    """Parse mprun output into {module: (passed, failed, skipped, lines)}."""
    res, cur = {}, []
    for line in stdout.splitlines():
        if line.startswith("MODULE "):
            _, name, p, f, s = line.split()
            res[name] = (int(p), int(f), int(s), "\n".join(cur))
            cur = []
        else:
            cur.append(line)
    return res
