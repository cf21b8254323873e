"""picoboard.profile: PC samples -> firmware.elf functions (sized C symbols,
the unsized assembly labels of pico-sdk's divider, the boot ROM), and the
grouping bench_pico prints. CPython only; needs the built firmware."""
import os
import subprocess

from picoboard import profile


def _addr(elf, name):
    out = subprocess.run([profile.NM, "--defined-only", elf], check=True, capture_output=True, text=True).stdout
    for ln in out.splitlines():
        p = ln.split()
        if len(p) == 3 and p[2] == name:
            return int(p[0], 16) & ~1
    raise AssertionError(name)


def test_samples_map_to_functions_and_groups(fw):
    elf = os.path.join(os.path.dirname(fw), "firmware.elf")
    look = _addr(elf, "mp_map_lookup")
    div = _addr(elf, "divmod_u32u32_unsafe")       # assembly: no size in the symbol table
    hist = {look + 8: 5, look + 2: 1, div + 4: 3, 0x1234: 1}
    total, funcs, groups = profile.summarize(hist, elf)
    assert total == 10
    assert dict(funcs) == {"mp_map_lookup": 6, "divmod_u32u32_unsafe": 3, "[bootrom]": 1}
    assert groups == {"map lookup": 6, "integer division": 3}
