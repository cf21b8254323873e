"""Runs every tests/lib module on the two MicroPython runtimes: the unix port
(64-bit) and the WebAssembly port (32-bit object model of ESP32/RP2040).
CPython runs the same modules directly through pytest."""
import pytest

import runtimes

MODS = runtimes.lib_test_modules()


@pytest.fixture(scope="session")
def wasm_results():
    r = runtimes.run_wasm(MODS)
    res = runtimes.split_by_module(r.stdout)
    return res, r


def _check(request, runtime, mod, res, stdout, stderr):
    if mod not in res:
        pytest.fail("[%s] %s did not report\nstdout:\n%s\nstderr:\n%s" % (runtime, mod, stdout[-4000:], stderr[-4000:]))
    p, f, s, lines = res[mod]
    request.node.user_properties.append(("runtime_counts", (runtime, p, f, s)))
    print("[%s] %s: %d passed, %d failed, %d skipped" % (runtime, mod, p, f, s))
    if f:
        pytest.fail("[%s] %s: %d failed\n%s\n%s" % (runtime, mod, f, lines[-6000:], stderr[-3000:]))
    assert p > 0 or s > 0


@pytest.mark.parametrize("mod", MODS)
def test_unix_port(request, mod):
    r = runtimes.run_unix([mod])
    _check(request, "unix", mod, runtimes.split_by_module(r.stdout), r.stdout, r.stderr)


# One node process runs every module on the wasm port: keep those items on one
# xdist worker so the session fixture runs once.
@pytest.mark.xdist_group("wasm32")
@pytest.mark.parametrize("mod", MODS)
def test_wasm32_port(request, mod, wasm_results):
    res, r = wasm_results
    _check(request, "wasm32", mod, res, r.stdout, r.stderr)
