"""Seeded protocol fuzz: garbage, mutated commands, IEC fragments, random
chunking and timing. Invariants: no exception escapes, every reply ends with a
status line, JSON lines verify, nothing mutates without auth. `fuzz()` is also
driven with 100k inputs on the unix port by tests/host/test_proto_fuzz.py."""
import mptest
from proto import crc
from test_proto_fake import Rig

_WORDS = (b"HELP", b"INFO", b"READ", b"TOTALS", b"LIVE", b"STATUS", b"SAVE", b"JSON", b"CONFIG",
          b"AUTH", b"LOGOUT", b"SET", b"PRESET", b"RESET", b"REBOOT", b"read", b"live", b"json",
          b"ON", b"OFF", b"on", b"0x50", b"0x51", b"0x52", b"0X50", b"0", b"1", b"2", b"-1", b"255",
          b"1.5", b"0.000001", b"1.0000001", b"99999999999", b"totals", b"counters", b"config",
          b"name", b"live_ms", b"secret", b"200", b"500", b"60001", b"1e3", b"nan", b"x", b"",
          b"00" * 32, b"ff" * 32, b"0" * 64, b"/?!", b"/?N0001!", b"\x06050", b"\x06051", b"*", b"=")
_LONG = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ SAVE read 0x50 " * 10
_NOISE = b"\x00\xff\r\n\x06\x02\x03\x08\x7f\x1b\t /?!*\x80\xc3"


def _dec(r):
    v = r.u32() % 100000
    d = r.below(8)
    return (b"%d" % v) if d == 7 else (b"%d." % v + b"%d" % r.below(10) * d)


def _mutating(r):
    k = r.below(5)
    if k == 0:
        return b"PRESET 0x5%d %d %s %s" % (r.below(3), r.below(3), _dec(r), _dec(r))
    if k == 1:
        return b"SET %s %s" % ((b"name", b"live_ms", b"x")[r.below(3)], _dec(r))
    if k == 2:
        return b"RESET %s" % (b"totals", b"counters", b"config", b"totals 0x50 1")[r.below(4)]
    if k == 3:
        return b"REBOOT"
    return b"reset TOTALS 0x51"


def _gen(r):
    """One random input chunk (bytes)."""
    k = r.below(11)
    if k == 10:
        return _mutating(r) + b"\n"
    if k < 4:                                   # plausible command line
        n = 1 + r.below(5)
        s = b" ".join([_WORDS[r.below(len(_WORDS))] for _ in range(n)])
        if r.chance(100):
            s = bytes(crc.seal(s))
        if r.chance(300):                      # mutate a few bytes
            b = bytearray(s)
            for _ in range(1 + r.below(3)):
                if b:
                    i = r.below(len(b))        # explicit order: same stream on every runtime
                    b[i] = r.below(256)
            s = bytes(b)
        return s + (b"\n", b"\r\n", b"\r", b"")[r.below(4)]
    if k < 6:                                   # binary noise, 4 bytes per draw
        b = bytearray(4 * r.below(11))
        for i in range(0, len(b), 4):
            v = r.u32()
            b[i] = v & 255
            b[i + 1] = (v >> 8) & 255
            b[i + 2] = (v >> 16) & 255
            b[i + 3] = v >> 24
        return bytes(b)
    if k < 8:                                   # noise from a biased alphabet
        return bytes([_NOISE[r.below(len(_NOISE))] for _ in range(r.below(40))])
    if k < 9:                                   # long line
        i = r.below(26)
        return _LONG[i:i + 100 + r.below(200)] + (b"\n" if r.chance(700) else b"")
    return (b"/?!\r\n", b"\x06050\r\n", b"LIVE 200\n", b"JSON ON\n", b"JSON OFF\n", b"AUTH\n",
            b"LIVE OFF\n", b"ECHO ON\n", b"ECHO OFF\n", b"ECHO OFF\n")[r.below(10)]


def _status(line):
    if line.startswith(b"{"):
        p = crc.verify(line)
        assert p is not None, line
        return p.startswith(b'{"ok":')
    return line == b"OK" or line.startswith(b"OK ") or line.startswith(b"ERR ")


_OWNER_EXP = 777777777777          # mWh: attackers' decimals (< 100000 kWh) never hit it


def _owner_cmd(i):
    """An owner's mutating command and the node call it must produce."""
    if i % 2:
        return "SET name o%d" % i, ("set", "name", "o%d" % i)
    return ("PRESET 0x50 1 %d.5 777777.777777" % i,
            ("preset", "0x50", 1, i * 1000000 + 500000, _OWNER_EXP))


def fuzz(seed, n, authed=False):
    """Runs n random inputs; returns (lines_out, replies, mutations).
    authed: an owner logs in and now and then sends a correctly signed
    command, while the fuzzer replays and alters captured signed lines and
    sends unsigned mutating ones. Every node mutation must be one the owner
    signed (counted: unauthorised mutations must stay 0)."""
    r = mptest.Rng(seed)
    rig = Rig(start=r.u32() & ((1 << 30) - 1))
    node = rig.node
    if authed:
        rig.login()
    totals = node.totals()
    cfg = node.get_config()
    lines_out = replies = 0
    echo = False
    captured = []                               # owner's signed lines seen on the wire
    owner_i = 0
    muts = 0
    for i in range(n):
        data = _gen(r)
        call = None
        if authed:
            k = r.below(40)
            if k == 0:                          # the owner signs a fresh command
                if not rig.eng.authenticated:
                    rig.eng.reset(rig.now())
                    rig.login()
                owner_i += 1
                line, call = _owner_cmd(owner_i)
                s = rig.signed(line)
                captured.append(s)
                if len(captured) > 16:
                    captured.pop(0)
                data = b"\n" + s.encode() + b"\n"
            elif k == 1 and captured:           # replay of a captured signed line
                data = captured[r.below(len(captured))].encode() + b"\n"
            elif k == 2 and captured:           # a captured line, altered
                b = bytearray(captured[r.below(len(captured))].encode())
                j = r.below(len(b))
                b[j] = 32 + r.below(95)
                data = bytes(b) + b"\n"
        del rig.out[:]                          # bounded memory on the 2 MB heap
        k = 0
        # random chunking of the input
        pos = 0
        while pos < len(data):
            step = 1 + r.below(len(data) - pos)
            rig.eng.feed(data[pos:pos + step], rig.now())
            pos += step
        out = b"".join(rig.out[k:])
        # the only mutation an input may cause: the owner's signed command, once
        if node.mut:
            assert len(node.mut) == 1 and node.mut[0] == call, (data, node.mut, call)
            muts += 1
            del node.mut[:]
        if echo or rig.eng.echo:                # echoed input is not framed
            echo = rig.eng.echo
        elif out:
            lines = out.split(b"\r\n")
            assert lines[-1] == b"", out
            assert _status(lines[-2]), (data, out)
            for l in lines[:-1]:
                assert len(l) < 4096
                if l.startswith(b"{"):
                    assert crc.verify(l) is not None, l
                if _status(l):
                    replies += 1
            lines_out += len(lines) - 1
        if r.chance(300):
            rig.clock.advance(r.below(3000))
            k = len(rig.out)
            rig.eng.poll(rig.now())
            timed = b"".join(rig.out[k:])
            if timed and not rig.eng.echo:
                tl = timed.split(b"\r\n")
                assert tl[-1] == b"" or timed.startswith(b"/") or b"\x02" in timed, timed
                for l in tl:
                    if l.startswith(b"{"):
                        assert crc.verify(l) is not None, l
        if authed and r.chance(2000):
            rig.clock.advance(301000)            # the session idles out now and then
    if not authed:
        assert muts == 0
        assert node.totals() == totals
        assert node.get_config() == cfg
        assert rig.eng.mutations == 0
    return lines_out, replies, muts


def test_fuzz_unauthenticated():
    n = 400 if mptest.RUNTIME == "wasm32" else 1500
    lines, replies, muts = fuzz(11, n)
    assert muts == 0 and replies > n // 4


def test_fuzz_with_owner_signing_no_unauthorised_mutation():
    n = 300 if mptest.RUNTIME == "wasm32" else 1000
    lines, replies, muts = fuzz(5, n, authed=True)
    assert replies > n // 4 and muts > n // 100
