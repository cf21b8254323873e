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


def test_rfc4231_vectors():
    for key, msg, want in VECTORS:
        assert binascii.hexlify(auth.hmac_sha256(key, msg)).decode() == want


def test_key_exactly_block_size():
    # 64-byte key is used as is, 65-byte key is hashed first: both differ
    a = auth.hmac_sha256(b"k" * 64, b"m")
    b = auth.hmac_sha256(b"k" * 65, b"m")
    assert len(a) == 32 and a != b


def test_ct_equal():
    assert auth.ct_equal(b"abc", b"abc")
    assert not auth.ct_equal(b"abc", b"abd")
    assert not auth.ct_equal(b"xbc", b"abc")
    assert not auth.ct_equal(b"abc", b"abcd")
    assert auth.ct_equal(b"", b"")


def test_lock_backoff():
    assert auth.lock_ms(0) == 0
    assert auth.lock_ms(1) == 1000
    assert auth.lock_ms(2) == 2000
    assert auth.lock_ms(5) == 16000
    assert auth.lock_ms(9) == 256000
    assert auth.lock_ms(10) == 300000
    assert auth.lock_ms(1000) == 300000


class _Rand:
    def __init__(self):
        self.n = 0

    def __call__(self, k):
        self.n += 1
        return bytes([self.n & 255]) * k


def _mac(secret, nonce):
    return binascii.hexlify(auth.hmac_sha256(secret, nonce))


def test_challenge_response_single_use_and_wrap():
    clk = Ticks(start=PERIOD - 500)        # crosses the 2^30 wrap during the session
    a = auth.Auth(clk, _Rand())
    now = clk.ticks_ms()
    n = a.challenge(now)
    assert len(n) == 32
    mac = _mac(b"s3", n)
    clk.advance(1000)
    now = clk.ticks_ms()
    assert a.answer(b"s3", mac, now) == auth.OK
    assert a.active(now)
    # replay of the same answer: the nonce is gone
    a.logout()
    assert a.answer(b"s3", mac, now) == auth.NO_CHALLENGE
    assert not a.active(now)
    # a fresh nonce differs and the old MAC does not fit it
    n2 = a.challenge(now)
    assert n2 != n
    assert a.answer(b"s3", mac, now) == auth.FAIL
    assert a.fails == 1 and a.fail_total == 1


def test_upper_case_hex_and_str_answer_accepted():
    clk = Ticks()
    a = auth.Auth(clk, _Rand())
    n = a.challenge(0)
    assert a.answer(b"k", _mac(b"k", n).decode().upper(), 0) == auth.OK


def test_nonce_expires():
    clk = Ticks()
    a = auth.Auth(clk, _Rand())
    n = a.challenge(0)
    assert a.answer(b"k", _mac(b"k", n), auth.NONCE_TTL_MS + 1) == auth.NO_CHALLENGE


def test_lockout_grows_and_success_resets():
    clk = Ticks(start=PERIOD - 3000)
    a = auth.Auth(clk, _Rand())
    t = clk.ticks_ms()
    for k in range(1, 5):
        assert a.challenge(t) is not None
        assert a.answer(b"k", b"00" * 32, t) == auth.FAIL
        lock = auth.lock_ms(k)
        assert a.locked_ms(t) == lock
        assert a.challenge(t) is None                       # no nonce while locked
        assert a.answer(b"k", b"00", t) == auth.LOCKED
        t = clk.ticks_add(t, lock - 1)
        assert a.locked_ms(t) == 1
        t = clk.ticks_add(t, 1)
        assert a.locked_ms(t) == 0
    assert a.fails == 4 and a.fail_total == 4
    n = a.challenge(t)
    assert a.answer(b"k", _mac(b"k", n), t) == auth.OK
    assert a.fails == 0 and a.fail_total == 4


def test_empty_secret_never_authenticates():
    a = auth.Auth(Ticks(), _Rand())
    n = a.challenge(0)
    assert a.answer(b"", _mac(b"", n), 0) == auth.FAIL


def test_idle_timeout():
    clk = Ticks(start=PERIOD - 100)
    a = auth.Auth(clk, _Rand())
    n = a.challenge(clk.ticks_ms())
    assert a.answer(b"k", _mac(b"k", n), clk.ticks_ms()) == auth.OK
    clk.advance(auth.IDLE_MS - 1)
    assert a.active(clk.ticks_ms())
    a.touch(clk.ticks_ms())
    clk.advance(auth.IDLE_MS)
    assert a.active(clk.ticks_ms())
    clk.advance(1)
    assert not a.active(clk.ticks_ms())
    clk.advance(-10)            # once ended it stays ended
    assert not a.active(clk.ticks_ms())


def test_client_response_helper():
    n = b"00112233445566778899aabbccddeeff"
    want = binascii.hexlify(auth.hmac_sha256(b"k", n)).decode()
    assert auth.response(b"k", n) == want
    assert auth.response(b"k", n.decode()) == want
    assert len(want) == 64
