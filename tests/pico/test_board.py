"""The harness itself: the real firmware boots on the emulated RP2040, the
console answers on UART0, flash writes land in LittleFS, resets keep the
watchdog scratch registers and a power cut loses them."""
import rbamp_sim


def test_boot_console_and_flash(board_factory):
    b = board_factory(profile=rbamp_sim.Profile.constant([1500.0, -800.0]))
    b.run_for(3.0)
    r = b.console_cmd("INFO")
    assert b"OK" in r and b"0x50" in r
    # the firmware programmed UART0 once, at the board profile's 115200 8N1
    assert [x[1:] for x in b.uart_log] == [(0, 115177, 8, "N", 1)]
    st = b.stats()
    assert st["flashOps"] > 0 and 0 < st["wfeNs"] < st["t"]
    assert "/config.json" in b.files_now()


def test_scratch_survives_reset_not_cut(board_factory):
    b = board_factory(profile=rbamp_sim.Profile.constant([1500.0]), modules="0x50:UI1")
    b.run_for(3.0)
    s0 = b.scratch()
    assert any(s0), "the node keeps its fast state in the scratch registers"
    b.reset("watchdog")
    assert b.scratch() == s0
    b.run_for(0.001)
    b.power_cut()
    b.power_on(b.t_ns + 10 ** 9)
    assert not any(b.scratch())


def test_soft_i2c_scan_finds_modules(board_factory):
    """No module list in the config: the node scans the bus. rp2 does the
    zero-length probes in software I2C on GP4/GP5, which only the harness'
    open-drain bus model answers."""
    from picoboard import board_config, default_files
    cfg = board_config()
    del cfg["modules"]
    b = board_factory(profile=rbamp_sim.Profile.constant([700.0, -300.0]), modules="0x50:UI2,0x5a:I1",
                      files=default_files(cfg))
    b.run_for(4.0, slice_s=0.5)
    info = b.command("INFO")
    assert any("addr=0x50" in ln and "online=true" in ln for ln in info), info
    assert any("addr=0x5a" in ln and "online=true" in ln for ln in info), info


def test_deterministic_per_seed(board_factory):
    """Same seed, same firmware, no host traffic: the same cycles, the same
    bytes on UART0 and the same flash, run after run."""
    runs = []
    for _ in range(2):
        b = board_factory(profile=rbamp_sim.Profile.constant([1500.0, -800.0]), seed=21, i2c_fault_rate=0.05)
        b.run_for(2.5, slice_s=0.25)
        out = b.console_cmd("TOTALS")
        st = b.stats()
        runs.append((st["cycles"], st["i2cTx"], out, b.flash(), b.uart_log))
        b.close()
    assert runs[0] == runs[1]
