import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The same search path the MicroPython runs use: the firmware (lib/), the
# simulator (tools/rbamp_sim), the dual-runtime helpers and tests.
for p in ("lib", "tools", "tests", os.path.join("tests", "support"), os.path.join("tests", "lib")):
    full = os.path.join(ROOT, p)
    if full not in sys.path:
        sys.path.insert(0, full)


def pytest_terminal_summary(terminalreporter):
    """Say what ran where: CPython tests, the lib/ tests on each MicroPython
    runtime (counted inside the interpreters), and the build checks."""
    rt = {}
    cpython = {"passed": 0, "failed": 0, "skipped": 0}
    build = []
    for key in ("passed", "failed", "skipped"):
        for rep in terminalreporter.stats.get(key, []):
            if getattr(rep, "when", "call") not in ("call", "setup"):
                continue
            if key != "skipped" and rep.when != "call":
                continue
            nodeid = rep.nodeid
            props = dict(getattr(rep, "user_properties", []) or [])
            if "runtime_counts" in props:
                name, p, f, s = props["runtime_counts"]
                acc = rt.setdefault(name, [0, 0, 0, 0])
                acc[0] += 1
                acc[1] += p
                acc[2] += f
                acc[3] += s
            elif "test_build.py" in nodeid:
                build.append("%s %s" % (nodeid.split("::")[-1], key))
            elif "test_runtimes.py" not in nodeid:
                cpython[key] += 1
    tr = terminalreporter
    tr.write_sep("-", "runtimes")
    tr.write_line("cpython: %(passed)d passed, %(failed)d failed, %(skipped)d skipped" % cpython)
    for name in sorted(rt):
        mods, p, f, s = rt[name]
        tr.write_line("micropython %s: %d modules, %d passed, %d failed, %d skipped" % (name, mods, p, f, s))
    for b in build:
        tr.write_line("build: " + b)
