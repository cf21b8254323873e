"""`rbmeter sim --target pico`: the same options and --json summary as the
unix target, on the emulated Pico (cuts, resets, the ticks_ms wrap)."""
import json
import os
import subprocess
import sys

import pytest

from rbmeter.sim import check_bounds, load_profile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.xdist_group("pico_b")
def test_sim_target_pico_json(tmp_path, fw):
    prof = tmp_path / "p.csv"
    prof.write_text("t_s,p0_w,p1_w\n0,2500,-1200\n7,-900,600\n")
    env = dict(os.environ, PICOBOARD_FIRMWARE=fw)
    # ticks_ms starts 6.8 s before its 2^30 wrap at every power-up/reset
    argv = [sys.executable, "-m", "rbmeter", "sim", "--target", "pico", "--virtual", "--duration", "14",
            "--power-cuts", "2", "--max-downtime", "1", "--resets", "2", "--i2c-fault-rate", "0.02", "--seed", "4",
            "--profile", str(prof),
            "--start-ticks", "1073735000", "--state", str(tmp_path / "board"), "--json"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.strip().splitlines()
    assert lines[0].startswith("console: /dev/pts/")
    res = json.loads(lines[-1])
    assert set(res) == {"elapsed_ms", "downtime_ms", "reboots", "channels", "truth"}
    assert res["elapsed_ms"] == 14000 and res["reboots"] == 2
    assert [(c["module"], c["ch"]) for c in res["channels"]] == [("0x50", 0), ("0x50", 1)]
    assert check_bounds(res, load_profile(str(prof))) == [], res
    # --state keeps the board's flash for the next run
    assert os.path.getsize(tmp_path / "board" / "flash.bin") == 2 * 1024 * 1024


def test_sim_pico_only_options():
    from rbmeter import cli
    assert cli.main(["sim", "--resets", "2", "--virtual", "--duration", "1"]) == 2
