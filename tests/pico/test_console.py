"""The console over UART0 of the emulated Pico: every command through the
host pty with the rbmeter client, the IEC 62056-21 readout with the PyPI
client, and replies far larger than the firmware's 256-byte UART TX ring
(READ with eight modules, CONFIG) complete and in order with the UART line
rate modelled, while metering goes on without gaps."""
import threading
import time

import pytest

import iecread
import rbamp_sim
from picoboard import board_config, default_files
from rbmeter.client import Client, parse_text_record

SECRET = "pico-console-secret-1"


@pytest.fixture
def live_board(board_factory):
    cfg = board_config()
    cfg["auth"]["secret"] = SECRET
    cfg["modules"] = [{"addr": 0x50, "label": "grid"}, {"addr": 0x51, "label": "pv"}]
    b = board_factory(pty=True, files=default_files(cfg), modules="0x50:UI2,0x51:I3", seed=5,
                      profile=rbamp_sim.Profile.constant([1200.0, -700.0, 300.0]))
    b.run_for(2.0, slice_s=0.5)
    # paced to wall time: the host clients' timing (IEC reaction time, the
    # PyPI client reopening its port after the ACK) is wall-clock
    b.start_free_run(speed=1.0)
    yield b
    b.stop_free_run()


@pytest.mark.xdist_group("pico_a")
def test_every_command_over_uart0(live_board):
    b = live_board
    with Client(b.console, timeout=10.0, retries=2) as c:
        inf = c.info()
        assert [m["addr"] for m in inf["modules"]] == ["0x50", "0x51"]
        chans = c.channels()
        assert [(x["module"], x["ch"]) for x in chans] == [("0x50", 0), ("0x50", 1), ("0x51", 0), ("0x51", 1),
                                                           ("0x51", 2)]
        assert len(c.channels("0x50", 1)) == 1
        st = c.status()
        assert "uptime_s" in st
        cfg = c.config()
        assert cfg and not any(SECRET in str(v) for v in cfg.values())
        assert c.command("HELP").ok
        got = []
        stop = threading.Event()
        c.live(200, lambda rec: (got.append(rec), len(got) >= 10 and stop.set()), stop.is_set)
        assert len(got) >= 10
        # changing anything needs AUTH
        c.auth(SECRET.encode())
        c.save()
        c.set("save.max_interval_s", "900")
        assert str(c.config()["save.max_interval_s"]) == "900"
        c.preset("0x50", 0, 12345678000, 0)
        assert c.channels("0x50", 0)[0]["import_mwh"] >= 12345678000
        c.reset("counters")
        c.logout()
        c.auth(SECRET.encode())
        c.reboot()
    # REBOOT is machine.reset(): a watchdog reboot of the chip (scratch kept)
    deadline = b.t_ns + 5 * 10 ** 9
    while not b.resets and b.t_ns < deadline:
        b._thread.join(0.1)
    assert b.resets, "REBOOT did not reset the chip"
    with Client(b.console, timeout=10.0, retries=3) as c:
        assert c.channels("0x50", 0)[0]["import_mwh"] >= 12345678000


@pytest.mark.xdist_group("pico_b")
def test_iec_readout_pypi_client(live_board):
    b = live_board
    with Client(b.console, timeout=10.0, json_mode=False) as c:   # text mode, as the reader expects
        chans = c.channels()
    vals = {k: v for k, (v, unit) in iecread.readout(b.console, 10).items()}
    assert "1-1:1.8.0" in vals and "1-2:2.8.0" in vals, vals
    # the totals are the node's, moving only forward since READ
    imp = float(vals["1-1:1.8.0"]) * 1e6
    assert imp >= chans[0]["import_mwh"] - 1


def _ch_lines(data):
    return [parse_text_record(ln.strip()) for ln in data.decode().split("\n") if ln.startswith("CH ")]


@pytest.mark.xdist_group("pico_a")
def test_large_replies_line_rate(board_factory):
    mods = ",".join("0x%02x:UI3" % a for a in range(0x50, 0x58))
    cfg = board_config()
    cfg["modules"] = [{"addr": a, "label": "m%d" % i} for i, a in enumerate(range(0x50, 0x58))]
    b = board_factory(modules=mods, files=default_files(cfg), line_rate=True, seed=9,
                      profile=rbamp_sim.Profile.constant([900.0, -400.0, 150.0]))
    b.run_for(3.0, slice_s=0.5)
    st0 = b.status(timeout_s=10)
    # READ (24 channels, ~2.6 KB) and CONFIG (~4 KB) go through the firmware's
    # 256-byte UART TX ring at 115200 Bd, a few hundred ms of line time each
    want = [("0x%02x" % a, str(ch)) for a in range(0x50, 0x58) for ch in range(3)]
    for cmd in ("READ", "CONFIG", "READ", "READ"):
        t0 = b.t_ns
        out = b.console_cmd(cmd, timeout_s=5.0, slice_s=0.002)
        assert out.endswith(b"OK\r\n"), out[-300:]
        # the line model holds every byte for its 10 bit-times
        assert b.t_ns - t0 >= len(out) * 10 * 10 ** 9 // 115200
        if cmd == "READ":
            recs = _ch_lines(out)
            assert [(r["module"], r["ch"]) for r in recs] == want, out[:300]
            assert len(out) > 1024
        else:
            conf = [ln for ln in out.decode().split("\r\n") if ln.startswith("CONFIG ")]
            assert len(out) > 1024 and len(conf) == out.count(b"\r\n") - 1, out[-300:]
            assert any("modules.7." in ln for ln in conf) and any(ln.startswith("CONFIG uart.") for ln in conf)
    assert b.stats()["rxOverrun"][0] == 0
    st1 = b.status(timeout_s=10)
    tot = b.totals(timeout_s=10)
    assert all(c["gap_ms"] == 0 for c in tot), tot
    assert st1["gap_events"] == st0["gap_events"] == "0"
    assert int(st1["missed"]) == int(st0["missed"])


@pytest.mark.xdist_group("pico_b")
def test_iec_optical_port_rates_honoured(board_factory):
    """The IEC port on UART1 signs on at 300 Bd 7E1 and switches to the
    acknowledged 9600 Bd: through a bridge that passes bytes only while the
    host's termios speed matches what the firmware programmed, a reader that
    stays at 300 Bd gets no data block, and the PyPI client (which switches)
    reads 1.8.0/2.8.0."""
    import serial
    cfg = board_config()
    cfg["iec"] = {"uart": {"id": 1, "tx": 8, "rx": 9}, "baud": 9600}
    b = board_factory(pty1=True, honour_baud=True, files=default_files(cfg), seed=6,
                      profile=rbamp_sim.Profile.constant([1500.0, -800.0]))
    b.run_for(2.5, slice_s=0.5)
    b.start_free_run(speed=1.0)
    vals = {k: v for k, (v, unit) in iecread.readout(b.console1, 10).items()}
    assert float(vals["1-1:1.8.0"]) > 0 and float(vals["1-2:2.8.0"]) > 0, vals
    # back at 300 Bd after the readout
    for _ in range(100):
        if [x[2] for x in b.uart_log if x[1] == 1][-1] == 300:
            break
        time.sleep(0.1)
    # (a Linux pty takes the speed but refuses 7E1: framing stays the board's business)
    with serial.Serial(b.console1, 300, timeout=6) as s:
        s.write(b"/?!\r\n")
        assert s.readline().startswith(b"/RBM5")
        s.write(b"\x06050\r\n")          # acknowledges 9600 Bd, but stays at 300
        s.timeout = 4
        assert b"\x02" not in s.read(64)
        for _ in range(50):
            if b.baud_drops[0]:
                break
            time.sleep(0.1)
    assert b.baud_drops[0] > 0, (b.uart_log, bytes(b.tx1))
    rates = []
    for x in b.uart_log:
        if x[1] == 1 and (not rates or rates[-1] != x[2]):
            rates.append(x[2])
    assert rates[:3] == [300, 9600, 300], b.uart_log
