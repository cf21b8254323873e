"""HMAC-SHA256 (RFC 2104 over hashlib.sha256; MicroPython has no hmac module),
the challenge-response login and the per-command signatures (docs/protocol.md
"Authentication"). Pure functions + one small state object per transport:
clients (rbmeter) import the same functions to answer and sign."""
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
MAX_OPEN = const(4)                # open challenges; a 5th replaces the oldest
IDLE_MS = const(300_000)           # session ends 5 min after the last *signed* command
FAIL_DELAY_MS = const(100)         # a wrong answer's reply is held back this long (never blocks)
TAG_LEN = const(16)                # signature: first 16 bytes of the HMAC, 32 hex chars
N_MAX = 0xFFFFFFFF                 # counter: 4 bytes big-endian in the MAC input
SECRET_MIN = const(16)             # bytes
SECRET_MAX = const(64)

CTX_AUTH = b"rbmeter/auth/1"
CTX_SESSION = b"rbmeter/session/1"
CTX_CMD = b"rbmeter/cmd/1"
CTX_KEY = b"rbmeter/key/1"

# answer results
OK = const(0)
FAIL = const(1)
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


def _b(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def be32(n):
    return bytes(((n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255))


def unhex(s):
    """Hex str/bytes -> bytes, or None if it is not even-length hex."""
    try:
        return binascii.unhexlify(_b(s))
    except (ValueError, TypeError):
        return None


def hexs(b):
    return binascii.hexlify(b).decode()


def answer_mac(secret, node_id, nonce):
    """HMAC-SHA256(secret, "rbmeter/auth/1" || node_id || nonce); nonce = the 16 raw bytes."""
    return hmac_sha256(secret, CTX_AUTH + _b(node_id) + nonce)


def session_key(secret, node_id, nonce):
    """Ks = HMAC-SHA256(secret, "rbmeter/session/1" || node_id || nonce)."""
    return hmac_sha256(secret, CTX_SESSION + _b(node_id) + nonce)


def cmd_tag(ks, n, line):
    """First 16 bytes of HMAC-SHA256(Ks, "rbmeter/cmd/1" || n (4 bytes BE) || command line)."""
    return hmac_sha256(ks, CTX_CMD + be32(n) + _b(line))[:TAG_LEN]


def key_pad(ks, n, length):
    """Keystream for KEY: T0 = HMAC(Ks, "rbmeter/key/1" || n4), then for i >= 1
    Ti = HMAC(Ks, "rbmeter/key/1" || n4 || i4) (counter mode), cut to length."""
    out = hmac_sha256(ks, CTX_KEY + be32(n))
    i = 1
    while len(out) < length:
        out += hmac_sha256(ks, CTX_KEY + be32(n) + be32(i))
        i += 1
    return out[:length]


def xor(a, b):
    return bytes([a[i] ^ b[i] for i in range(len(a))])


def response(secret, node_id, nonce_hex):
    """Client side: the AUTH answer line's arguments for a printed nonce ->
    '<nonce hex> <mac hex>'."""
    nonce = unhex(nonce_hex)
    if nonce is None:
        raise ValueError("nonce is not hex")
    return hexs(nonce) + " " + hexs(answer_mac(secret, node_id, nonce))


def sign(ks, n, line):
    """Client side: '<line> @<n> <tag hex>' for session key ks and counter n."""
    return "%s @%d %s" % (line, n, hexs(cmd_tag(ks, n, line)))


def split_signed(text):
    """'<line> @<n> <32 hex>' -> (line, n, tag bytes); None when the text
    does not end in a well-formed signature (then it is unsigned)."""
    i = text.rfind(" @")
    if i < 0:
        return None
    rest = text[i + 2:]
    sp = rest.find(" ")
    if sp < 1 or sp > 10:
        return None
    ns = rest[:sp]
    tag = rest[sp + 1:]
    if not ns.isdigit() or len(tag) != 2 * TAG_LEN:
        return None
    t = unhex(tag)
    if t is None:
        return None
    n = int(ns)
    if n < 1 or n > N_MAX:
        return None
    return text[:i], n, t


def ct_equal(a, b):
    """Compares two byte strings in time independent of where they differ."""
    if len(a) != len(b):
        return False
    acc = 0
    for i in range(len(a)):
        acc |= a[i] ^ b[i]
    return acc == 0


def secret_problem(text):
    """None if text is an acceptable provisioned secret, else why not.
    'hex:' + 32..128 hex digits = a binary key of 16..64 bytes; anything
    else is a passphrase of 16..64 characters used as its UTF-8 bytes."""
    if not isinstance(text, str):
        return "must be a string"
    if text.startswith("hex:"):
        k = unhex(text[4:])
        if k is None:
            return "bad hex after 'hex:'"
        if not SECRET_MIN <= len(k) <= SECRET_MAX:
            return "hex key must be %d..%d bytes (%d..%d hex digits)" % (
                SECRET_MIN, SECRET_MAX, 2 * SECRET_MIN, 2 * SECRET_MAX)
        return None
    if not SECRET_MIN <= len(text) <= SECRET_MAX:
        return "passphrase must be %d..%d characters (or hex:<%d+ hex digits>)" % (
            SECRET_MIN, SECRET_MAX, 2 * SECRET_MIN)
    return None


def secret_bytes(text):
    """Provisioned secret text -> key bytes (see secret_problem)."""
    if text.startswith("hex:"):
        return unhex(text[4:])
    return text.encode()


class Auth:
    """Challenge-response state of one transport: up to MAX_OPEN single-use
    challenges, and one session (key Ks, last accepted counter n). No
    lockout: a wrong answer burns only its own challenge."""

    def __init__(self, clock, urandom):
        self._clock = clock
        self._urandom = urandom
        self._ch = []              # [nonce (16 raw bytes), ticks issued]
        self.session = False
        self.ks = None
        self.n = 0                 # last accepted counter
        self._last = 0             # ticks of the last signed command (or login)
        self.fail_total = 0
        self.logins = 0

    def _prune(self, now):
        d = self._clock.ticks_diff
        self._ch = [c for c in self._ch if 0 <= d(now, c[1]) <= NONCE_TTL_MS]

    def challenge(self, now):
        """A fresh nonce (raw bytes); the oldest open one goes when MAX_OPEN are open."""
        self._prune(now)
        if len(self._ch) >= MAX_OPEN:
            self._ch.pop(0)
        nonce = bytes(self._urandom(NONCE_LEN))
        self._ch.append([nonce, now])
        return nonce

    def open_challenges(self, now):
        self._prune(now)
        return len(self._ch)

    def answer(self, secret, node_id, nonce_hex, mac_hex, now):
        """Checks an answer for one open challenge and burns that challenge
        whatever the outcome. OK opens a new session (counter 0)."""
        self._prune(now)
        nonce = unhex(nonce_hex)
        ch = None
        if nonce is not None:
            for c in self._ch:
                if c[0] == nonce:
                    ch = c
                    break
        if ch is None:
            self.fail_total += 1
            return NO_CHALLENGE
        self._ch.remove(ch)
        got = unhex(mac_hex)
        want = answer_mac(secret, node_id, nonce)
        if secret and got is not None and ct_equal(want, got):
            self.session = True
            self.ks = session_key(secret, node_id, nonce)
            self.n = 0
            self._last = now
            self.logins += 1
            return OK
        self.fail_total += 1
        return FAIL

    def active(self, now):
        """True if a session is open and a signed command came within IDLE_MS."""
        if self.session and not 0 <= self._clock.ticks_diff(now, self._last) <= IDLE_MS:
            self.logout()
        return self.session

    def verify(self, line, n, tag, now):
        """Accepts a signed command once: session active, n above the last
        accepted counter, tag right. Accepting keeps the session alive."""
        if not self.active(now) or n <= self.n:
            return False
        if not ct_equal(cmd_tag(self.ks, n, line), tag):
            return False
        self.n = n
        self._last = now
        return True

    def logout(self):
        self.session = False
        self.ks = None
        self.n = 0

    def reset(self):
        """Transport gone (break, disconnect): session and challenges end."""
        self.logout()
        self._ch = []
