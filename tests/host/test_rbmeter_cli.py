"""rbmeter CLI help, secret sources, CSV rotation, view formatting, pty bridge."""
import os
import subprocess
import sys
import time

import pytest
import serial

from rbmeter import cli, csvlog, secret, view
from rbmeter.ptybridge import PtyBridge

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUBCOMMANDS = ("info", "totals", "live", "log", "obis", "set", "preset", "reset", "sim")


def test_top_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for c in SUBCOMMANDS:
        assert "\n    %s " % c in out, c


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_subcommand_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rbmeter " + cmd)
    assert "example" in out
    if cmd != "sim":
        assert "--port" in out and "--json" in out
    if cmd in ("set", "preset", "reset"):
        assert "--secret" in out and "--secret-file" in out


def test_sim_help_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sim", "--help"])
    out = capsys.readouterr().out
    for opt in ("--profile", "--modules", "--virtual", "--duration", "--start-ticks", "--i2c-fault-rate",
                "--power-cuts", "--seed", "--state", "--watch", "--json"):
        assert opt in out, opt


def test_console_script_runs():
    exe = os.path.join(ROOT, ".venv", "bin", "rbmeter")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("rbmeter ")
    r = subprocess.run([sys.executable, "-m", "rbmeter", "sim", "--virtual"], capture_output=True, text=True,
                       timeout=30, cwd=os.path.join(ROOT, "tools"))
    assert r.returncode == 2 and "--duration" in r.stderr


# -- secret ------------------------------------------------------------------------------

def test_secret_sources_in_order(tmp_path):
    f = tmp_path / "s"
    f.write_text("from-file\n")
    d = tmp_path / "default"
    d.write_text("from-default")
    env = {"RBMETER_SECRET": "from-env"}
    assert secret.load("cli", str(f), env, str(d)) == (b"cli", "--secret")
    assert secret.load(None, str(f), env, str(d))[0] == b"from-file"
    assert secret.load(None, None, env, str(d))[0] == b"from-env"
    assert secret.load(None, None, {"RBMETER_SECRET_FILE": str(f)}, str(d))[0] == b"from-file"
    assert secret.load(None, None, {}, str(d))[0] == b"from-default"
    assert secret.load("hex:00ff", None, {}, None)[0] == b"\x00\xff"
    with pytest.raises(secret.SecretError):
        secret.load(None, None, {}, str(tmp_path / "missing"))
    with pytest.raises(secret.SecretError):
        secret.load(None, str(tmp_path / "missing"), {}, None)
    with pytest.raises(secret.SecretError):
        secret.load("hex:zz", None, {}, None)


# -- CSV log --------------------------------------------------------------------------

CH = [{"module": "0x50", "ch": 0, "p_mw": -1, "import_mwh": 5, "export_mwh": 6, "gap_ms": 0},
      {"module": "0x50", "ch": 1, "p_mw": None, "import_mwh": 7, "export_mwh": 8, "gap_ms": 9}]


def test_csv_rows_and_time():
    assert csvlog.utc_iso(1700000000123) == "2023-11-14T22:13:20.123Z"
    rows = csvlog.rows_from_channels(CH, 1700000000123)
    assert rows[1]["p_mw"] == "" and rows[0]["p_mw"] == -1 and rows[1]["gap_ms"] == 9


def test_csv_rotation_by_size(tmp_path):
    p = str(tmp_path / "m.csv")
    w = csvlog.RotatingCsv(p, max_bytes=300, backups=2)
    t = 1700000000000
    for i in range(20):
        w.write_rows(csvlog.rows_from_channels(CH, t + i), t + i)
    w.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["m.csv", "m.csv.1", "m.csv.2"]
    for n in names:
        text = (tmp_path / n).read_text()
        assert text.startswith("time_utc,unix_ms,")
        assert len(text) <= 300
        body = text.splitlines()[1:]
        assert body and len(body) % 2 == 0          # a batch is never split
    assert w.rotations >= 3
    last = (tmp_path / "m.csv").read_text().splitlines()[-1]
    assert last.split(",")[1] == str(t + 19)


def test_csv_rotation_by_day(tmp_path):
    p = str(tmp_path / "m.csv")
    w = csvlog.RotatingCsv(p, daily=True)
    day = 86400000
    t = 1700000000000
    for i in range(3):
        w.write_rows(csvlog.rows_from_channels(CH, t + i * day), t + i * day)
    w.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["m-2023-11-14.csv", "m-2023-11-15.csv", "m-2023-11-16.csv"]
    assert len((tmp_path / names[0]).read_text().splitlines()) == 3
    # appending later to an existing day file keeps one header
    w = csvlog.RotatingCsv(p, daily=True)
    w.write_rows(csvlog.rows_from_channels(CH, t), t)
    w.close()
    assert (tmp_path / names[0]).read_text().count("time_utc") == 1


# -- view -----------------------------------------------------------------------------

def test_exact_formatting():
    assert view.fmt_kwh(0) == "0.000000"
    assert view.fmt_kwh(1000000000000001) == "1000000000.000001"
    assert view.fmt_kwh(-1) == "-0.000001"
    assert view.fmt_w(-230500) == "-230.500"
    assert view.fmt_w(None) == "-"
    assert view.fmt_s(61001) == "61.001"


def test_table_render():
    t = view.render_table(CH, title="x", ansi=True)
    assert t.startswith(view.CLEAR)
    lines = view.render_table(CH, ansi=False).splitlines()
    assert lines[0].split()[:2] == ["module", "ch"]
    assert lines[2].split() == ["0x50", "0", "-0.001", "0.000005", "0.000006", "-0.000001", "0"]
    assert lines[3].split()[2] == "-"


# -- pty bridge -----------------------------------------------------------------------

def test_ptybridge_both_directions_and_drop():
    with PtyBridge(max_pending=8192) as br:
        a = serial.Serial(br.host_path, 115200, timeout=1)
        b = serial.Serial(br.node_path, 115200, timeout=1)
        payload = bytes(range(256))              # raw: every byte value passes unchanged
        a.write(payload)
        got = b""
        end = time.monotonic() + 2
        while len(got) < 256 and time.monotonic() < end:
            got += b.read(256 - len(got))
        assert got == payload
        b.write(b"pong\r\n")
        assert a.readline() == b"pong\r\n"
        # nobody reading the host end: the node side never blocks, excess is dropped
        t0 = time.monotonic()
        b.write(b"x" * 100000)
        b.flush()
        assert time.monotonic() - t0 < 2
        time.sleep(0.2)
        assert br.dropped_n2h > 0
        a.reset_input_buffer()
        time.sleep(0.1)
        a.reset_input_buffer()
        b.write(b"still alive\n")
        assert a.readline().endswith(b"still alive\n")
        assert br.bytes_h2n == 256
        a.close()
        b.close()
    assert not br.alive
