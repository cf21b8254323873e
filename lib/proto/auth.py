"""HMAC-SHA256 (RFC 2104 over hashlib.sha256; MicroPython has no hmac module)
and the challenge-response session state used by the engine."""
import hashlib
import binascii

try:
    from micropython import const
except ImportError:  # CPython
    def const(__x):
        return __x

_BLOCK = const(64)
NONCE_LEN = const(16)
NONCE_TTL_MS = const(60_000)       # an unanswered challenge expires
IDLE_MS = const(600_000)           # session ends after 10 min without a command
LOCK_BASE_MS = const(1_000)        # 1st wrong answer: 1 s, then doubling
LOCK_MAX_MS = const(300_000)       # capped at 5 min

# auth results
OK = const(0)
FAIL = const(1)
LOCKED = const(2)
NO_CHALLENGE = const(3)


def hmac_sha256(key, msg):
    """RFC 2104 HMAC with SHA-256; key and msg are bytes. Returns 32 bytes."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    ipad = bytearray(_BLOCK)
    opad = bytearray(_BLOCK)
    for i in range(_BLOCK):
        k = key[i] if i < len(key) else 0
        ipad[i] = k ^ 0x36
        opad[i] = k ^ 0x5C
    h = hashlib.sha256(ipad)
    h.update(msg)
    inner = h.digest()
    h = hashlib.sha256(opad)
    h.update(inner)
    return h.digest()


def response(secret, nonce_hex):
    """Client side: the AUTH answer for a nonce as printed (hex str/bytes) -> hex str."""
    if isinstance(nonce_hex, str):
        nonce_hex = nonce_hex.encode()
    return binascii.hexlify(hmac_sha256(secret, nonce_hex)).decode()


def ct_equal(a, b):
    """Compares two byte strings in time independent of where they differ."""
    if len(a) != len(b):
        return False
    acc = 0
    for i in range(len(a)):
        acc |= a[i] ^ b[i]
    return acc == 0


def lock_ms(fails):
    """Lockout after `fails` consecutive wrong answers (exponential backoff)."""
    if fails <= 0:
        return 0
    if fails > 9:
        return LOCK_MAX_MS
    return min(LOCK_BASE_MS << (fails - 1), LOCK_MAX_MS)


class Auth:
    """Challenge-response state: one nonce at a time, single use; the session
    ends on logout/idle timeout; wrong answers lock AUTH out for a growing time.
    Survives transport resets on purpose (reconnecting must not clear the lockout)."""

    def __init__(self, clock, urandom):
        self._clock = clock
        self._urandom = urandom
        self.nonce = None          # hex bytes of the open challenge
        self._nonce_t = 0
        self.session = False
        self._last = 0             # ticks of the last command in the session
        self.fails = 0             # consecutive wrong answers
        self.fail_total = 0
        self._lock_t = 0
        self._lock_ms = 0

    def locked_ms(self, now):
        """Remaining lockout in ms (0 = not locked)."""
        if not self._lock_ms:
            return 0
        left = self._lock_ms - self._clock.ticks_diff(now, self._lock_t)
        if left <= 0 or left > self._lock_ms:   # expired (or clock went backwards)
            self._lock_ms = 0
            return 0
        return left

    def challenge(self, now):
        """New nonce (hex bytes), replacing any open one; None while locked."""
        if self.locked_ms(now):
            return None
        self.nonce = binascii.hexlify(self._urandom(NONCE_LEN))
        self._nonce_t = now
        return self.nonce

    def answer(self, secret, mac_hex, now):
        """Checks hex(HMAC-SHA256(secret, nonce_hex)). Consumes the nonce whatever the outcome."""
        if self.locked_ms(now):
            return LOCKED
        nonce = self.nonce
        self.nonce = None
        if nonce is None or self._clock.ticks_diff(now, self._nonce_t) > NONCE_TTL_MS:
            return NO_CHALLENGE
        want = binascii.hexlify(hmac_sha256(secret, nonce))
        got = mac_hex.lower()
        if isinstance(got, str):
            got = got.encode()
        if secret and ct_equal(want, got):
            self.fails = 0
            self.session = True
            self._last = now
            return OK
        self.fails += 1
        self.fail_total += 1
        self._lock_t = now
        self._lock_ms = lock_ms(self.fails)
        return FAIL

    def active(self, now):
        """True if a session is open and not idle for too long (then it ends)."""
        if self.session and not 0 <= self._clock.ticks_diff(now, self._last) <= IDLE_MS:
            self.session = False
            return False
        return self.session

    def touch(self, now):
        if self.session:
            self._last = now

    def logout(self):
        self.session = False
        self.nonce = None
