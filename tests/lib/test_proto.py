"""Line engine: commands, framing, auth gate, JSON mode, LIVE, robustness."""
import json
import binascii
import mptest
from clock import PERIOD
import proto
from proto import crc
from test_proto_fake import Rig, FakeNode, SECRET


def _status_ok(line):
    return line == "OK" or line.startswith("OK ") or line.startswith("ERR ")


def test_case_insensitive_and_terminators():
    for term in ("\n", "\r", "\r\n"):
        for cmd in ("info", "INFO", "Info"):
            r = Rig()
            lines = r.send(cmd + term)
            assert lines[0] == "NODE fw=0.3.1 id=N0001 uptime_s=42", lines
            assert lines[-1] == "OK"
            assert len(lines) == 4


def test_crlf_is_one_line_and_blank_lines_ignored():
    r = Rig()
    assert r.send("\r\n\n\r\r\n") == []
    lines = r.send("save\r\nsave\r\n")
    assert lines == ["OK", "OK"]
    assert r.node.saves == 2


def test_byte_by_byte_equals_whole():
    r1, r2 = Rig(), Rig()
    data = b"read\r\nstatus\nhelp read\rbogus\n"
    whole = r1.send(data)
    parts = []
    for i in range(len(data)):
        parts += r2.send(data[i:i + 1])
    assert whole == parts
    assert whole[-1].startswith("ERR 404")


def test_info_lists_modules():
    lines = Rig().send("INFO\n")
    assert lines[1] == ("MODULE addr=0x50 variant=UI2 channels=2 voltage_hw=true fw=1.2 fw_version=18 "
                        "tier=std read_mode=burst mode=rt online=true")
    assert lines[2].startswith("MODULE addr=0x51 variant=I1 channels=1 voltage_hw=false")


def test_read_exact_decimals():
    r = Rig()
    lines = r.send("READ\n")
    assert lines[0] == ("CH module=0x50 ch=0 import_kwh=123.456789 export_kwh=0.001000 "
                        "net_kwh=123.455789 gap_s=1.500 p_w=1500.000")
    assert lines[1] == ("CH module=0x50 ch=1 import_kwh=0.000000 export_kwh=2000000.000001 "
                        "net_kwh=-2000000.000001 gap_s=0.000 p_w=-800.123")
    assert lines[2].endswith("p_w=- enabled=false")
    assert lines[3] == "OK"
    assert r.send("totals 0x50 1\n")[0] == lines[1]
    assert r.send("TOTALS 0X50\n")[:2] == lines[:2]
    assert r.send("read 0x52\n") == ["ERR 404 no such module/channel"]
    assert r.send("read 50\n") == ["ERR 404 no such module/channel"]   # decimal 50 = 0x32
    assert r.send("read 500\n")[0].startswith("ERR 400")
    assert r.send("read 0x50 x\n")[0].startswith("ERR 400")
    assert r.send("read 0x50 0 1\n")[0].startswith("ERR 400")


def test_help():
    r = Rig()
    lines = r.send("HELP\n")
    assert lines[-1] == "OK"
    names = [l.split()[0] for l in lines[:-1]]
    for c in ("HELP", "INFO", "READ", "TOTALS", "LIVE", "STATUS", "SAVE", "JSON", "AUTH",
              "LOGOUT", "SET", "PRESET", "RESET", "REBOOT", "CONFIG"):
        assert c in names
    lines = r.send("help preset\n")
    assert lines[0] == "PRESET <module> <ch> <import_kwh> <export_kwh>"
    assert lines[-1] == "OK"
    assert r.send("help nope\n")[0].startswith("ERR 404")


def test_status_includes_node_and_engine_fields():
    r = Rig()
    r.send("set a b\n")
    r.send("\x00\n")
    text = " ".join(r.send("STATUS\n"))
    for kv in ("faults=i2c_0x51", "gaps=3", "io_errors=7", "last_save_s=12", "loss_bound_mwh=40",
               "fs=ok", "heap_free=51200", "auth_fail=0", "refused=1", "rx_errors=1", "session=false"):
        assert kv in text, kv


def test_unauthenticated_mutations_refused_and_counted():
    r = Rig()
    before = r.node.totals()
    for cmd in ("SET name x", "PRESET 0x50 0 1 1", "RESET totals", "RESET config", "reboot",
                "preset 0x50 0 0 0", "set live_ms 5"):
        assert r.send(cmd + "\n") == ["ERR 401 auth required"], cmd
    assert r.node.mut == []
    assert r.node.totals() == before
    assert r.eng.refused == 7
    assert ("refused", "PRESET") in r.node.events


def test_auth_then_mutations_reach_node_and_are_audited():
    r = Rig()
    r.login()
    assert r.send("PRESET 0x50 1 12.5 0.000001\n") == ["OK"]
    assert r.node.mut[-1] == ("preset", "0x50", 1, 12500000, 1)
    assert r.send("read 0x50 1\n")[0].startswith("CH module=0x50 ch=1 import_kwh=12.500000 export_kwh=0.000001")
    assert r.send("SET name Living Room\n") == ["OK"]
    assert r.node.mut[-1] == ("set", "name", "Living Room")
    assert r.send("RESET TOTALS 0x50 0\n") == ["OK"]
    assert r.node.mut[-1] == ("reset", "totals", "0x50", 0)
    assert r.send("reset counters\n") == ["OK"]
    assert r.send("reboot\n") == ["OK"]
    assert r.node.mut[-1] == ("reboot",)
    assert ("cmd", "PRESET 0x50 1 12.500000 0.000001") in r.node.events
    assert r.send("set secret hunter2\n")[0].startswith("ERR 400")
    assert ("cmd", "SET secret ***") in r.node.events
    assert r.eng.mutations == 6


def test_bad_arguments_do_not_mutate():
    r = Rig()
    r.login()
    for cmd in ("PRESET 0x50 0 1.0000001 0", "PRESET 0x50 0 -1 0", "PRESET 0x50 0 1e3 0",
                "PRESET 0x50 0 1", "PRESET 0x5 0 1 1", "PRESET 0x1234 0 1 1", "PRESET 500 0 1 1",
                "PRESET x50 0 1 1", "PRESET 0x50 a 1 1",
                "PRESET 0x50 0 12345678901 0", "RESET all", "RESET config 0x50", "SET name",
                "RESET totals 0x50 0 9"):
        lines = r.send(cmd + "\n")
        assert len(lines) == 1 and lines[0].startswith("ERR 400"), (cmd, lines)
    assert r.node.mut == []
    # the node's own validation: ValueError message passed through
    assert r.send("PRESET 0x52 0 1 1\n") == ["ERR 400 no such channel"]
    assert r.send("SET nope 1\n") == ["ERR 400 unknown key nope"]


def test_module_argument_forms():
    # hex address, decimal address, or the module's position in INFO
    r = Rig()
    r.login()
    assert r.send("PRESET 0X50 0 1 2\n") == ["OK"]
    assert r.node.mut[-1] == ("preset", "0x50", 0, 1000000, 2000000)
    assert r.send("PRESET 80 1 3 4\n") == ["OK"]
    assert r.node.mut[-1] == ("preset", "0x50", 1, 3000000, 4000000)
    addrs = [m["addr"] for m in r.node.info()["modules"]]
    assert r.send("PRESET 1 0 5 6\n") == ["OK"]
    assert r.node.mut[-1] == ("preset", addrs[1], 0, 5000000, 6000000)
    assert r.send("PRESET 7 0 5 6\n") == ["ERR 404 no module #7"]
    assert r.send("read 0\n")[0].startswith("CH module=%s ch=0 " % addrs[0])
    assert r.send("RESET TOTALS 80 1\n") == ["OK"]
    assert r.node.mut[-1] == ("reset", "totals", "0x50", 1)


def test_wrong_answers_rate_limited():
    r = Rig()
    assert r.send("AUTH\n")[-1] == "OK"
    assert r.send("AUTH " + "00" * 32 + "\n") == ["ERR 403 auth failed, retry in 1 s"]
    assert r.send("AUTH\n") == ["ERR 429 locked, retry in 1 s"]
    r.step(1000)
    r.send("AUTH\n")
    assert r.send("AUTH " + "00" * 32 + "\n") == ["ERR 403 auth failed, retry in 2 s"]
    r.step(1999)
    assert r.send("AUTH\n")[0].startswith("ERR 429")
    # a transport reset (reconnect) does not clear the lockout
    r.eng.reset(r.now())
    assert r.send("AUTH\n")[0].startswith("ERR 429")
    r.step(1)
    assert r.send("AUTH\n")[-1] == "OK"
    assert r.eng.auth.fail_total == 2
    assert [e for e in r.node.events if e[0] == "auth_fail"] == [("auth_fail", "fails=1"), ("auth_fail", "fails=2")]
    assert "auth_fail=2" in " ".join(r.send("status\n"))
    r.send("AUTH\n")
    r.login()
    assert r.eng.auth.fails == 0


def test_replayed_answer_rejected():
    r = Rig()
    lines = r.send("AUTH\n")
    nonce = lines[0].split("=")[1]
    mac = binascii.hexlify(proto.hmac_sha256(SECRET, nonce.encode())).decode()
    assert r.send("AUTH %s\n" % mac) == ["OK authenticated"]
    assert r.send("LOGOUT\n") == ["OK"]
    assert not r.eng.authenticated
    assert r.send("AUTH %s\n" % mac)[0].startswith("ERR 409")
    assert r.send("SET name x\n") == ["ERR 401 auth required"]


def test_no_secret_and_auth_usage():
    r = Rig(FakeNode(secret=b""))
    assert r.send("AUTH\n") == ["ERR 403 no secret provisioned"]
    r = Rig()
    assert r.send("AUTH a b\n")[0].startswith("ERR 400")


def test_idle_timeout_and_reset_log_out():
    r = Rig(start=PERIOD - 1000)
    r.login()
    r.step(599_000)
    assert r.send("SET name a\n") == ["OK"]          # activity keeps the session
    r.step(600_000)
    assert r.eng.authenticated
    r.step(1)
    assert not r.eng.authenticated
    assert ("logout", "idle") in r.node.events
    assert r.send("SET name b\n") == ["ERR 401 auth required"]
    r.login()
    r.eng.reset(r.now())
    assert r.send("SET name b\n") == ["ERR 401 auth required"]


def test_overlong_line_discarded_until_newline():
    r = Rig(max_line=32)
    assert r.send("S" * 31 + "\n")[0].startswith("ERR 404")          # 31 fits
    assert r.send("x" * 32 + "\n")[0].startswith("ERR 404")          # exactly max fits
    lines = r.send("SAVE" + " " * 40)
    assert lines == []
    lines = r.send("more garbage SAVE\nSAVE\n")
    assert lines == ["ERR 414 line too long (max 32)", "OK"]
    assert r.node.saves == 1


def test_binary_noise_gives_err_never_mutates():
    r = Rig()
    r.login()
    before = r.node.totals()
    for junk in (b"\x00\n", b"\xff\xfe\n", b"SAVE\x00\n", b"PRESET 0x50 0 1 1\xff\n", b"\x06050\n",
                 b"\x1b[A\n", b"\xc3\xa9t\xc3\xa9\n"):
        lines = r.send(junk)
        assert lines == ["ERR 400 bad character"], (junk, lines)
    assert r.node.totals() == before and r.node.mut == [] and r.node.saves == 0


def test_backspace_edits_line():
    r = Rig()
    assert r.send("SAVX\x08E\n") == ["OK"]
    assert r.send("\x7f\x7fSAVE\n") == ["OK"]


def test_reset_drops_partial_line():
    r = Rig()
    r.send("PRES")
    r.eng.reset(r.now())
    assert r.send("AVE\n")[0].startswith("ERR 404")
    r.send("SA")
    r.eng.reset(r.now())
    assert r.send("SAVE\n") == ["OK"]


def _raise(e):
    raise e


def test_node_errors_become_err_lines():
    r = Rig()
    r.node.fail_info = True
    assert r.send("INFO\n") == ["ERR 500 io error 5"]
    r.node.save = lambda: _raise(OSError(5, "commit failed"))
    assert r.send("SAVE\n") == ["ERR 500 io error 5 commit failed"]
    r.node.save = lambda: "saved 3 records"
    assert r.send("SAVE\n") == ["OK saved 3 records"]
    r.node.status = None        # broken node: TypeError inside the command
    assert r.send("STATUS\n") == ["ERR 500 internal error"]


def test_writer_errors_are_swallowed():
    node = FakeNode()
    calls = []

    def bad_write(b):
        calls.append(b)
        raise OSError(11)
    from clock import Ticks
    e = proto.Engine(node, bad_write, Ticks(), lambda n: b"\x00" * n)
    e.feed(b"READ\nSAVE\n", 0)
    assert len(calls) == 5 and e.write_errors == 5 and node.saves == 1


def test_reboot_optional():
    class NoReboot(FakeNode):
        reboot = None
    r = Rig(NoReboot())
    r.login()
    assert r.send("REBOOT\n") == ["ERR 501 reboot not supported"]


def _json_lines(lines):
    out = []
    for l in lines:
        p = crc.verify(l.encode())
        assert p is not None, l
        out.append(json.loads(p))
    return out


def test_json_mode_every_line_sealed():
    r = Rig()
    assert r.send("JSON ON\n") == ['{"ok":true}*9D13']
    objs = _json_lines(r.send("READ\n"))
    assert objs[0]["t"] == "ch" and objs[0]["import_mwh"] == 123456789
    assert objs[0]["import_kwh"] == "123.456789" and objs[0]["p_mw"] == 1500000
    assert objs[1]["export_mwh"] == 2000000000001 and objs[1]["net_kwh"] == "-2000000.000001"
    assert objs[2]["p_mw"] is None and objs[2]["enabled"] is False
    assert objs[-1] == {"ok": True}
    for cmd in ("INFO", "STATUS", "HELP", "HELP read", "CONFIG", "AUTH", "bogus", "SET a b", "\x01"):
        objs = _json_lines(r.send(cmd + "\n"))
        assert "ok" in objs[-1]
        for o in objs[:-1]:
            assert "t" in o and "ok" not in o
    e = _json_lines(r.send("SET a b\n"))[0]
    assert e == {"ok": False, "err": 401, "msg": "auth required"}
    st = _json_lines(r.send("STATUS\n"))[0]
    assert st["faults"] == ["i2c_0x51"] and st["heap_free"] == 51200 and st["session"] is False
    assert r.send("json off\n") == ["OK"]


def test_json_input_checksum():
    r = Rig()
    r.send("JSON ON\n")
    good = crc.seal(b"SAVE").decode()
    assert _json_lines(r.send(good + "\n")) == [{"ok": True}]
    assert r.node.saves == 1
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert _json_lines(r.send(bad + "\n")) == [{"ok": False, "err": 400, "msg": "bad checksum"}]
    assert r.node.saves == 1
    assert _json_lines(r.send("SAVE\n")) == [{"ok": True}]     # unsealed input still accepted


def test_live_stream_framed_and_timed():
    r = Rig(start=PERIOD - 700)
    assert r.send("LIVE 500\n") == ["OK"]
    out = r.step(0).decode().splitlines()
    assert out[0] == "LIVE module=0x50 ch=0 p_w=1500.000 u_v=230.5 i_a=6.5 pf=0.98"
    assert out[1] == "LIVE module=0x50 ch=1 p_w=-800.123 u_v=230.5 i_a=3.5 pf=-0.9"
    assert out[2] == "LIVE module=0x51 ch=0 p_w=-"
    assert len(out) == 3
    assert r.step(499) == b""
    assert len(r.step(1).decode().splitlines()) == 3
    assert r.eng.poll(r.now()) == 500
    # replies and LIVE lines never mix within a line; every reply still ends with a status line
    lines = r.send("READ\n")
    assert lines[-1] == "OK" and not any(l.startswith("LIVE") for l in lines)
    # a long stall gives one batch, not a burst of catch-up lines
    assert len(r.step(5000).decode().splitlines()) == 3
    assert r.send("LIVE OFF\n") == ["OK"]
    assert r.step(5000) == b""
    assert r.eng.poll(r.now()) is None


def test_live_arguments():
    r = Rig()
    assert r.send("LIVE\n") == ["OK"] and r.eng.live_ms == 1000
    for bad in ("LIVE 199", "LIVE 60001", "LIVE -5", "LIVE x", "LIVE 1 2"):
        assert r.send(bad + "\n")[0].startswith("ERR 400"), bad
    assert r.eng.live_ms == 1000
    r.send("JSON ON\n")
    r.step(1000)
    objs = _json_lines(r.step(1000).decode().splitlines())
    assert objs[0] == {"t": "live", "module": "0x50", "ch": 0, "p_mw": 1500000, "u_v": 230.5, "i_a": 6.5, "pf": 0.98}


def test_config_show():
    r = Rig()
    assert r.send("CONFIG\n") == ["CONFIG live_ms=1000", "CONFIG name=meter1", "OK"]
    assert r.send("config NAME\n") == ["CONFIG name=meter1", "OK"]
    assert r.send("config x\n")[0].startswith("ERR 404")


def test_text_values_quoted_when_needed():
    from proto.engine import tval, jval
    assert tval(["a b", "c"]) == '"a b,c"'
    assert tval([]) == "-" and tval(None) == "-" and tval(True) == "true"
    assert tval('say "hi"') == '"say \\"hi\\""'
    assert jval({"b": [1, None], "a": "\u00e9\n"}) == '{"a":"\\u00e9\\u000a","b":[1,null]}'
    assert jval(float("nan")) == "null" and jval(0.5) == "0.5"
    r = Rig()
    r.login()
    r.send("SET name a b=c\n")
    assert r.send("config name\n")[0] == 'CONFIG name="a b=c"'


def test_memoryview_and_bytearray_input():
    r = Rig()
    buf = bytearray(b"xxSAVE\r\nINFO\n")
    r.eng.feed(memoryview(buf)[2:8], r.now())
    r.eng.feed(bytearray(b"SAVE\n"), r.now())
    assert b"".join(r.out) == b"OK\r\nOK\r\n"
    assert r.node.saves == 2


def test_echo_for_terminals():
    r = Rig()
    assert r.send("ECHO ON\r\n") == ["OK"]
    k = len(r.out)
    r.eng.feed(b"SA", r.now())
    r.eng.feed(b"VX\x7fE\r", r.now())
    r.eng.feed(b"\nINFO\n", r.now())
    out = b"".join(r.out[k:])
    assert out.startswith(b"SAVX\x08 \x08E\r\nOK\r\nINFO\r\nNODE ")
    assert r.node.saves == 1
    assert r.send("echo off\n") == ["echo off", "OK"]
    assert r.send("SAVE\n") == ["OK"]
    assert r.send("ECHO\n")[0].startswith("ERR 400")


def test_no_status_line_injection_from_node_text():
    r = Rig()
    r.login()
    r.node.cfg["name"] = "x\r\nOK"
    assert r.send("CONFIG name\n") == ['CONFIG name="x\\u000d\\u000aOK"', "OK"]
    r.node.save = lambda: _raise(ValueError("bad\r\nOK fake"))
    assert r.send("SAVE\n") == ["ERR 400 bad??OK fake"]
    r.node.save = lambda: "done\nOK"
    assert r.send("SAVE\n") == ["OK done?OK"]
    r.send("JSON ON\n")
    assert len(r.send("CONFIG name\n")) == 2
