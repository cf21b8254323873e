"""proto.auth: HMAC (RFC 4231), the login and command-signature construction
(the vectors of docs/protocol.md), challenges, sessions, secrets."""
import binascii
import mptest
from clock import Ticks, PERIOD
from proto import auth

# RFC 4231 test cases 1-4, 6, 7 (case 5 is a truncated output)
_LONG = b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."
VECTORS = (
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), b"\xcd" * 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, _LONG, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
)

# docs/protocol.md "Worked example" (tests/host/test_hardening_vectors.py recomputes
# them with CPython's hmac module)
EX_SECRET = b"rbmeter-example-secret"
EX_ID = "N0001"
EX_NONCE = "000102030405060708090a0b0c0d0e0f"
EX_ANSWER = "9eee8563a27b3e198558b89dfdc9d3934bdd3fabbd9005bda18a187fd4c54199"
EX_KS = "9dedbd750b9cbbc4eb335a639fbfe248afcb26c7a5822f62d9db56756014305e"
EX_LINE1 = "PRESET 0x50 0 1234.5 0"
EX_TAG1 = "c72cfe6c097a2eb8904f81e6de9d4666"
EX_TAG2 = "fcde12da79392a8066bdf4cb48a371c8"          # SAVE, n = 2
EX_NEW = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f6061626364656667"
EX_PAD3 = "52dd6f368c2d9067f8ae3155eb261726af8b25ae21856604e9eb1f526e2369fae7e024902d42a03e"
EX_KEY3 = "129c2d75c868d620b0e77b1ea76b5969ffda77fd75d03053b1b24509327e37a5878146f34927c659"


def _h(b):
    return binascii.hexlify(b).decode()


def test_rfc4231_vectors():
    for key, msg, want in VECTORS:
        assert _h(auth.hmac_sha256(key, msg)) == want


def test_key_exactly_block_size():
    a = auth.hmac_sha256(b"k" * 64, b"m")
    b = auth.hmac_sha256(b"k" * 65, b"m")
    assert len(a) == 32 and a != b


def test_ct_equal():
    assert auth.ct_equal(b"abc", b"abc")
    assert not auth.ct_equal(b"abc", b"abd")
    assert not auth.ct_equal(b"xbc", b"abc")
    assert not auth.ct_equal(b"abc", b"abcd")
    assert auth.ct_equal(b"", b"")


def test_worked_example_vectors():
    nonce = auth.unhex(EX_NONCE)
    assert auth.response(EX_SECRET, EX_ID, EX_NONCE) == EX_NONCE + " " + EX_ANSWER
    assert _h(auth.answer_mac(EX_SECRET, EX_ID, nonce)) == EX_ANSWER
    ks = auth.session_key(EX_SECRET, EX_ID, nonce)
    assert _h(ks) == EX_KS
    assert auth.sign(ks, 1, EX_LINE1) == EX_LINE1 + " @1 " + EX_TAG1
    assert auth.sign(ks, 2, "SAVE") == "SAVE @2 " + EX_TAG2
    assert _h(auth.key_pad(ks, 3, 40)) == EX_PAD3
    assert _h(auth.xor(auth.unhex(EX_NEW), auth.key_pad(ks, 3, 40))) == EX_KEY3
    # the first 32 pad bytes are HMAC(Ks, "rbmeter/key/1" || n) itself
    assert auth.key_pad(ks, 3, 32) == auth.hmac_sha256(ks, b"rbmeter/key/1" + b"\x00\x00\x00\x03")
    assert auth.key_pad(ks, 3, 16) == auth.key_pad(ks, 3, 40)[:16]


def test_split_signed():
    t = "a" * 32
    assert auth.split_signed("SAVE @1 " + t) == ("SAVE", 1, b"\xaa" * 16)
    assert auth.split_signed("SET name x @y @12 " + t) == ("SET name x @y", 12, b"\xaa" * 16)
    assert auth.split_signed("SAVE @4294967295 " + t)[1] == 4294967295
    for bad in ("SAVE", "SAVE @1", "SAVE @1 " + t[:-2], "SAVE @1 " + t + " ", "SAVE @0 " + t,
                "SAVE @4294967296 " + t, "SAVE @-1 " + t, "SAVE @1x " + t, "SAVE @1 " + "g" * 32,
                "SAVE  @1" + t, "SAVE @ 1 " + t):
        assert auth.split_signed(bad) is None, bad


class _Rand:
    def __init__(self):
        self.n = 0

    def __call__(self, k):
        self.n += 1
        return bytes([self.n & 255]) * k


def _ans(a_nonce, secret=b"k" * 16, nid="N1"):
    return _h(auth.answer_mac(secret, nid, a_nonce))


def test_login_sign_replay_across_tick_wrap():
    clk = Ticks(start=PERIOD - 500)
    a = auth.Auth(clk, _Rand())
    now = clk.ticks_ms()
    n = a.challenge(now)
    assert len(n) == 16
    clk.advance(1000)
    now = clk.ticks_ms()
    assert a.answer(b"k" * 16, "N1", _h(n), _ans(n).upper(), now) == auth.OK
    assert a.active(now) and a.n == 0
    ks = auth.session_key(b"k" * 16, "N1", n)
    assert a.verify("SAVE", 5, auth.cmd_tag(ks, 5, "SAVE"), now)
    assert not a.verify("SAVE", 5, auth.cmd_tag(ks, 5, "SAVE"), now)       # replay
    assert not a.verify("SAVE", 4, auth.cmd_tag(ks, 4, "SAVE"), now)       # older
    assert not a.verify("SAVE", 6, auth.cmd_tag(ks, 6, "SAVF"), now)       # other line
    assert a.verify("SAVE", 6, auth.cmd_tag(ks, 6, "SAVE"), now)
    # the same answer again: its challenge is gone
    a.logout()
    assert a.answer(b"k" * 16, "N1", _h(n), _ans(n), now) == auth.NO_CHALLENGE
    assert not a.verify("SAVE", 7, auth.cmd_tag(ks, 7, "SAVE"), now)


def test_wrong_answer_burns_only_its_challenge():
    a = auth.Auth(Ticks(), _Rand())
    n1 = a.challenge(0)
    n2 = a.challenge(0)
    assert a.answer(b"k" * 16, "N1", _h(n1), "00" * 32, 0) == auth.FAIL
    assert a.answer(b"k" * 16, "N1", _h(n1), _ans(n1), 0) == auth.NO_CHALLENGE
    assert a.answer(b"k" * 16, "N1", _h(n2), _ans(n2), 0) == auth.OK
    assert a.fail_total == 2
    # a MAC for another node id does not fit
    n3 = a.challenge(0)
    assert a.answer(b"k" * 16, "N1", _h(n3), _ans(n3, nid="N2"), 0) == auth.FAIL


def test_up_to_four_open_challenges_then_oldest_goes():
    a = auth.Auth(Ticks(), _Rand())
    ns = [a.challenge(0) for _ in range(5)]
    assert a.open_challenges(0) == auth.MAX_OPEN == 4
    assert a.answer(b"k" * 16, "N1", _h(ns[0]), _ans(ns[0]), 0) == auth.NO_CHALLENGE
    assert a.answer(b"k" * 16, "N1", _h(ns[1]), _ans(ns[1]), 0) == auth.OK


def test_challenge_expires_after_60_s():
    clk = Ticks(start=PERIOD - 30_000)
    a = auth.Auth(clk, _Rand())
    n = a.challenge(clk.ticks_ms())
    clk.advance(auth.NONCE_TTL_MS + 1)
    assert a.answer(b"k" * 16, "N1", _h(n), _ans(n), clk.ticks_ms()) == auth.NO_CHALLENGE
    n = a.challenge(clk.ticks_ms())
    clk.advance(auth.NONCE_TTL_MS)
    assert a.answer(b"k" * 16, "N1", _h(n), _ans(n), clk.ticks_ms()) == auth.OK


def test_empty_secret_never_authenticates():
    a = auth.Auth(Ticks(), _Rand())
    n = a.challenge(0)
    assert a.answer(b"", "N1", _h(n), _ans(n, secret=b""), 0) == auth.FAIL


def test_idle_timeout_300_s_after_last_signed_command():
    clk = Ticks(start=PERIOD - 100)
    a = auth.Auth(clk, _Rand())
    n = a.challenge(clk.ticks_ms())
    assert a.answer(b"k" * 16, "N1", _h(n), _ans(n), clk.ticks_ms()) == auth.OK
    ks = auth.session_key(b"k" * 16, "N1", n)
    clk.advance(auth.IDLE_MS)
    assert a.active(clk.ticks_ms())
    assert a.verify("X", 1, auth.cmd_tag(ks, 1, "X"), clk.ticks_ms())
    clk.advance(auth.IDLE_MS)
    assert a.active(clk.ticks_ms())
    clk.advance(1)
    assert not a.active(clk.ticks_ms())
    clk.advance(-10)            # once ended it stays ended
    assert not a.active(clk.ticks_ms())
    assert auth.IDLE_MS == 300_000


def test_reset_ends_session_and_challenges():
    a = auth.Auth(Ticks(), _Rand())
    n = a.challenge(0)
    a.challenge(0)
    assert a.answer(b"k" * 16, "N1", _h(n), _ans(n), 0) == auth.OK
    a.reset()
    assert not a.active(0) and a.open_challenges(0) == 0


def test_secret_rules():
    ok = ("a" * 16, "correct horse battery staple", "hex:" + "00" * 16, "hex:" + "AB" * 64, "")
    for s in ok[:-1]:
        assert auth.secret_problem(s) is None, s
    for s in ("a" * 15, "s3cret horse", "hex:" + "00" * 15, "hex:" + "0" * 33, "hex:zz" + "0" * 30,
              "a" * 65, "hex:" + "00" * 65, None):
        assert auth.secret_problem(s), s
    assert auth.secret_bytes("hex:" + "0a" * 16) == b"\n" * 16
    assert auth.secret_bytes("x" * 16) == b"x" * 16
