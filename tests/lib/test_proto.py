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
    lines = r.send("json off\r\nlogout\r\n")
    assert lines == ["OK", "OK"]


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
              "LOGOUT", "SET", "PRESET", "RESET", "REBOOT", "CONFIG", "KEY", "AUDIT"):
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
                "preset 0x50 0 0 0", "set live_ms 5", "SAVE", "KEY " + "00" * 16):
        assert r.send(cmd + "\n") == ["ERR 401 auth required"], cmd
    assert r.node.mut == [] and r.node.saves == 0
    assert r.node.totals() == before
    assert r.eng.refused == 9
    assert ("refused", "PRESET") in r.node.events
    # an open session does not authorise unsigned commands
    r.login()
    assert r.send("PRESET 0x50 0 1 1\n") == ["ERR 401 auth required"]
    assert r.send("SAVE\n") == ["ERR 401 auth required"]
    assert r.node.mut == [] and r.node.saves == 0


def test_auth_then_signed_mutations_reach_node_and_are_audited():
    r = Rig()
    r.login()
    assert r.ssend("PRESET 0x50 1 12.5 0.000001") == ["OK"]
    assert r.node.mut[-1] == ("preset", "0x50", 1, 12500000, 1)
    assert r.send("read 0x50 1\n")[0].startswith("CH module=0x50 ch=1 import_kwh=12.500000 export_kwh=0.000001")
    assert r.ssend("SET name Living Room") == ["OK"]
    assert r.node.mut[-1] == ("set", "name", "Living Room")
    assert r.ssend("RESET TOTALS 0x50 0") == ["OK"]
    assert r.node.mut[-1] == ("reset", "totals", "0x50", 0)
    assert r.ssend("reset counters") == ["OK"]
    assert r.ssend("SAVE") == ["OK"] and r.node.saves == 1
    assert r.ssend("reboot") == ["OK"]
    assert r.node.mut[-1] == ("reboot",)
    # audit records are written after the change, with the outcome
    assert ("cmd", "PRESET 0x50 1 12.500000 0.000001 -> ok") in r.node.events
    assert r.ssend("set secret hunter2")[0].startswith("ERR 400")
    assert ("cmd", "SET secret *** -> failed 400") in r.node.events
    assert r.eng.mutations == 6
    k = r.node.events.index(("cmd", "SET name Living Room -> ok"))
    assert r.node.mut.index(("set", "name", "Living Room")) < k
    lines = r.send("AUDIT 2\n")
    assert lines[-1] == "OK" and len(lines) == 3
    assert lines[1] == 'AUDIT seq=%d uptime_s=42 kind=cmd detail="SET secret *** -> failed 400"' % len(r.node.audits)
    assert r.send("AUDIT 0\n")[0].startswith("ERR 400")


def test_signature_replay_reorder_alter_other_node():
    r = Rig()
    r.login()
    s1 = r.signed("PRESET 0x50 0 1 1")
    s2 = r.signed("PRESET 0x50 0 2 2")
    assert r.send(s2 + "\n") == ["OK"]
    assert r.send(s1 + "\n") == ["ERR 401 bad signature"]          # reordered (n lower)
    assert r.send(s2 + "\n") == ["ERR 401 bad signature"]          # replayed
    s3 = r.signed("PRESET 0x50 0 3 3")
    assert r.send(s3.replace("3 3", "3 4", 1) + "\n") == ["ERR 401 bad signature"]   # altered
    assert r.send(s3.lower() + "\n") == ["ERR 401 bad signature"]  # case is signed too
    assert r.send(s3 + "\n") == ["OK"]                               # n was not burnt by fakes
    # the same signature from another node's session (other node_id) does not fit
    other = Rig()
    other.node.node_id = lambda: "N0002"
    other.login()
    other.n = r.n
    assert r.send(other.signed("PRESET 0x50 0 9 9") + "\n") == ["ERR 401 bad signature"]
    assert r.node.mut == [("preset", "0x50", 0, 2000000, 2000000), ("preset", "0x50", 0, 3000000, 3000000)]
    # after LOGOUT nothing signed with the old key passes
    s4 = r.signed("SAVE")
    r.send("LOGOUT\n")
    assert r.send(s4 + "\n") == ["ERR 401 bad signature"]
    # a counter beyond 2^32-1, or malformed signatures, are not signatures
    assert r.send("SAVE @4294967296 " + "00" * 16 + "\n") == ["ERR 401 auth required"]
    assert r.send("SAVE @0 " + "00" * 16 + "\n") == ["ERR 401 auth required"]


def test_signed_read_commands_and_logout_are_accepted():
    r = Rig()
    r.login()
    assert r.ssend("READ 0x50 0")[-1] == "OK"
    assert r.ssend("LOGOUT") == ["OK"] and not r.eng.authenticated


def test_bad_arguments_do_not_mutate():
    r = Rig()
    r.login()
    for cmd in ("PRESET 0x50 0 1.0000001 0", "PRESET 0x50 0 -1 0", "PRESET 0x50 0 1e3 0",
                "PRESET 0x50 0 1", "PRESET 0x5 0 1 1", "PRESET 0x1234 0 1 1", "PRESET 500 0 1 1",
                "PRESET x50 0 1 1", "PRESET 0x50 a 1 1",
                "PRESET 0x50 0 12345678901 0", "RESET all", "RESET config 0x50", "SET name",
                "RESET totals 0x50 0 9"):
        lines = r.ssend(cmd)
        assert len(lines) == 1 and lines[0].startswith("ERR 400"), (cmd, lines)
    assert r.node.mut == []
    # the node's own validation: ValueError message passed through
    assert r.ssend("PRESET 0x52 0 1 1") == ["ERR 400 no such channel"]
    assert r.ssend("SET nope 1") == ["ERR 400 unknown key nope"]


def test_module_argument_forms():
    # hex address, decimal address, or the module's position in INFO
    r = Rig()
    r.login()
    assert r.ssend("PRESET 0X50 0 1 2") == ["OK"]
    assert r.node.mut[-1] == ("preset", "0x50", 0, 1000000, 2000000)
    assert r.ssend("PRESET 80 1 3 4") == ["OK"]
    assert r.node.mut[-1] == ("preset", "0x50", 1, 3000000, 4000000)
    addrs = [m["addr"] for m in r.node.info()["modules"]]
    assert r.ssend("PRESET 1 0 5 6") == ["OK"]
    assert r.node.mut[-1] == ("preset", addrs[1], 0, 5000000, 6000000)
    assert r.ssend("PRESET 7 0 5 6") == ["ERR 404 no module #7"]
    assert r.send("read 0\n")[0].startswith("CH module=%s ch=0 " % addrs[0])
    assert r.ssend("RESET TOTALS 80 1") == ["OK"]
    assert r.node.mut[-1] == ("reset", "totals", "0x50", 1)


def _answer(r, nonce, secret=SECRET):
    return "AUTH " + proto.auth.response(secret, r.node.node_id(), nonce) + "\n"


def test_wrong_answer_burns_its_challenge_only_and_is_held_back():
    r = Rig()
    r.eng.auth._urandom = _counter_rand()
    n1 = r.send("AUTH\n")[0].split("=")[1]
    n2 = r.send("AUTH\n")[0].split("=")[1]
    assert n1 != n2 and len(n1) == 32
    # a wrong answer for n1: no reply now, ERR 403 about 100 ms later
    assert r.send("AUTH %s %s\n" % (n1, "00" * 32)) == []
    assert r.send("INFO\n")[-1] == "OK"                   # nothing else waits for it
    assert r.eng.poll(r.now()) == 100
    assert r.step(99) == b""
    assert r.step(1) == b"ERR 403 auth failed\r\n"
    # n1 is burnt, n2 still open: no lockout
    assert r.send(_answer(r, n1)) == []
    assert r.step(100) == b"ERR 409 no such open challenge, send AUTH first\r\n"
    assert r.send(_answer(r, n2)) == ["OK authenticated"]
    assert r.eng.auth.fail_total == 2
    assert ("auth_fail", "") in r.node.events
    assert "auth_fail=2" in " ".join(r.send("status\n"))
    # malformed answers are held back too
    assert r.send("AUTH 00\n") == []
    assert r.step(100).startswith(b"ERR 400 usage")


def _counter_rand():
    state = [0]

    def rnd(k):
        state[0] += 1
        return bytes([state[0] & 255]) * k
    return rnd


def test_four_open_challenges_a_stranger_cannot_cancel_the_owners():
    r = Rig()
    r.eng.auth._urandom = _counter_rand()
    mine = r.send("AUTH\n")[0].split("=")[1]
    for _ in range(3):                                      # a stranger asks 3 more
        r.send("AUTH\n")
    assert r.eng.auth.open_challenges(r.now()) == 4
    assert r.send(_answer(r, mine)) == ["OK authenticated"]
    # a 5th challenge replaces the oldest
    r2 = Rig()
    r2.eng.auth._urandom = _counter_rand()
    old = r2.send("AUTH\n")[0].split("=")[1]
    for _ in range(4):
        r2.send("AUTH\n")
    r2.send(_answer(r2, old))
    assert r2.step(100).startswith(b"ERR 409")


def test_nonce_single_use_and_expiry():
    r = Rig()
    nonce = r.send("AUTH\n")[0].split("=")[1]
    ans = _answer(r, nonce)
    assert r.send(ans) == ["OK authenticated"]
    assert r.send("LOGOUT\n") == ["OK"]
    assert not r.eng.authenticated
    assert r.send(ans) == []
    assert r.step(100).startswith(b"ERR 409")
    assert r.send("SET name x\n") == ["ERR 401 auth required"]
    nonce = r.send("AUTH\n")[0].split("=")[1]
    r.step(60_001)
    r.send(_answer(r, nonce))
    assert r.step(100).startswith(b"ERR 409")


def test_no_secret_and_auth_usage():
    r = Rig(FakeNode(secret=b""))
    assert r.send("AUTH\n") == ["ERR 403 no secret provisioned"]
    r = Rig()
    r.send("AUTH a b c\n")
    assert r.step(100).startswith(b"ERR 400")


def test_idle_timeout_only_signed_commands_keep_the_session():
    r = Rig(start=PERIOD - 1000)
    r.login()
    r.step(299_000)
    assert r.ssend("SET name a") == ["OK"]          # a signed command keeps the session
    r.step(150_000)
    assert r.send("READ\n")[-1] == "OK"              # a READ does not
    r.step(150_000)
    assert r.eng.authenticated
    r.step(1)
    assert not r.eng.authenticated
    assert ("logout", "idle") in r.node.events
    assert r.ssend("SET name b") == ["ERR 401 bad signature"]
    r.login()
    r.eng.reset(r.now())                              # UART break / BLE disconnect
    assert r.ssend("SET name b") == ["ERR 401 bad signature"]
    assert r.eng.auth.open_challenges(r.now()) == 0


def test_key_change_xor_keystream():
    r = Rig()
    r.login()
    new = bytes(range(100, 140))                      # 40 bytes: two keystream blocks
    n = r.n + 1
    ct = proto.auth.xor(new, proto.auth.key_pad(r.ks, n, len(new)))
    assert r.ssend("KEY " + binascii.hexlify(ct).decode()) == ["OK key changed"]
    assert r.node.mut[-1] == ("key", new) and r.node.secret() == new
    assert ("cmd", "KEY (40 bytes) -> ok") in r.node.events
    assert binascii.hexlify(new).decode() not in repr(r.node.events)
    assert r.ssend("KEY 00") [0].startswith("ERR 400")
    r.send("LOGOUT\n")
    r.login()                                         # the new secret works
    assert r.eng.authenticated


def test_overlong_line_discarded_until_newline():
    r = Rig(max_line=32)
    assert r.send("S" * 31 + "\n")[0].startswith("ERR 404")          # 31 fits
    assert r.send("x" * 32 + "\n")[0].startswith("ERR 404")          # exactly max fits
    lines = r.send("INFO" + " " * 40)
    assert lines == []
    lines = r.send("more garbage INFO\nLOGOUT\n")
    assert lines == ["ERR 414 line too long (max 32)", "OK"]


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
    assert r.send("LOGOUX\x08T\n") == ["OK"]
    assert r.send("\x7f\x7fLOGOUT\n") == ["OK"]


def test_reset_drops_partial_line():
    r = Rig()
    r.send("PRES")
    r.eng.reset(r.now())
    assert r.send("AVE\n")[0].startswith("ERR 404")
    r.send("LOG")
    r.eng.reset(r.now())
    assert r.send("LOGOUT\n") == ["OK"]


def _raise(e):
    raise e


def test_node_errors_become_err_lines():
    r = Rig()
    r.login()
    r.node.fail_info = True
    assert r.send("INFO\n") == ["ERR 500 io error 5"]
    r.node.save = lambda: _raise(OSError(5, "commit failed"))
    assert r.ssend("SAVE") == ["ERR 500 io error 5 commit failed"]
    assert ("cmd", "SAVE -> failed 500") in r.node.events
    r.node.save = lambda: "saved 3 records"
    assert r.ssend("SAVE") == ["OK saved 3 records"]
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
    e.feed(b"READ\nLOGOUT\n", 0)
    assert len(calls) == 5 and e.write_errors == 5


def test_reboot_optional():
    class NoReboot(FakeNode):
        reboot = None
    r = Rig(NoReboot())
    r.login()
    assert r.ssend("REBOOT") == ["ERR 501 reboot not supported"]


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
    r.login()
    r.send("JSON ON\n")
    # the signature goes inside the sealed payload: '<cmd> @<n> <tag>*XXXX'
    good = crc.seal(r.signed("SAVE")).decode()
    assert _json_lines(r.send(good + "\n")) == [{"ok": True}]
    assert r.node.saves == 1
    good = crc.seal(r.signed("SAVE")).decode()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert _json_lines(r.send(bad + "\n")) == [{"ok": False, "err": 400, "msg": "bad checksum"}]
    assert r.node.saves == 1
    assert _json_lines(r.ssend("SAVE")) == [{"ok": True}]     # unsealed input still accepted
    assert r.node.saves == 2
    # a sealed line with a NUL or a CR inside a field: nothing runs
    sealed = crc.seal(r.signed("SET name a\x00b"))
    assert _json_lines(r.send(sealed + b"\n")) == [{"ok": False, "err": 400, "msg": "bad character"}]
    sealed = crc.seal(r.signed("SET name a\rRESET TOTALS"))
    objs = _json_lines(r.send(sealed + b"\n"))
    assert [o.get("err") for o in objs] == [401, 400]
    assert r.node.mut == []


def test_live_stream_framed_and_timed():
    r = Rig(start=PERIOD - 700)
    assert r.send("LIVE 500\n") == ["OK live_ms=500"]
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


def test_live_arguments_and_clamp():
    r = Rig()
    assert r.send("LIVE\n") == ["OK live_ms=1000"] and r.eng.live_ms == 1000
    for bad in ("LIVE 60001", "LIVE -5", "LIVE x", "LIVE 1 2", "LIVE 0"):
        assert r.send(bad + "\n")[0].startswith("ERR 400"), bad
    assert r.eng.live_ms == 1000
    # 3 channels at 115200 Bd: the 200 ms floor; a shorter request is clamped
    assert r.send("LIVE 1\n") == ["OK live_ms=200"] and r.eng.live_ms == 200
    # the minimum scales with channels and line speed: 3 ch at 9600 Bd
    r.eng.baud = 9600
    assert r.eng.live_min_ms(3) == 750
    assert r.send("LIVE 200\n") == ["OK live_ms=750"]
    assert r.eng.live_min_ms(24) == 6000
    r.eng.baud = 115200
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
    r.ssend("SET name a b=c")
    assert r.send("config name\n")[0] == 'CONFIG name="a b=c"'


def test_memoryview_and_bytearray_input():
    r = Rig()
    buf = bytearray(b"xxLOGOUT\r\nINFO\n")
    r.eng.feed(memoryview(buf)[2:10], r.now())
    r.eng.feed(bytearray(b"LOGOUT\n"), r.now())
    assert b"".join(r.out) == b"OK\r\nOK\r\n"


def test_echo_for_terminals():
    r = Rig()
    assert r.send("ECHO ON\r\n") == ["OK"]
    k = len(r.out)
    r.eng.feed(b"LOGO", r.now())
    r.eng.feed(b"UX\x7fT\r", r.now())
    r.eng.feed(b"\nINFO\n", r.now())
    out = b"".join(r.out[k:])
    assert out.startswith(b"LOGOUX\x08 \x08T\r\nOK\r\nINFO\r\nNODE ")
    assert r.send("echo off\n") == ["echo off", "OK"]
    assert r.send("LOGOUT\n") == ["OK"]
    assert r.send("ECHO\n")[0].startswith("ERR 400")


def test_no_status_line_injection_from_node_text():
    r = Rig()
    r.login()
    r.node.cfg["name"] = "x\r\nOK"
    assert r.send("CONFIG name\n") == ['CONFIG name="x\\u000d\\u000aOK"', "OK"]
    r.node.save = lambda: _raise(ValueError("bad\r\nOK fake"))
    assert r.ssend("SAVE") == ["ERR 400 bad??OK fake"]
    r.node.save = lambda: "done\nOK"
    assert r.ssend("SAVE") == ["OK done?OK"]
    r.send("JSON ON\n")
    assert len(r.send("CONFIG name\n")) == 2
