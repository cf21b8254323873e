"""Where the AUTH secret comes from: --secret, --secret-file, $RBMETER_SECRET,
$RBMETER_SECRET_FILE, then ~/.config/rbmeter/secret (first one found wins).

The secret is the HMAC key. Text is used as its UTF-8 bytes; a value starting
with "hex:" is decoded as hex (binary keys). It is only ever used locally to
answer a challenge and sign commands: it never crosses the link.

A secret is 16..64 bytes (128 bits or more: online guessing is hopeless, so
the node has no lockout): a passphrase of 16+ characters or hex: with 32+ hex
digits. Shorter ones are refused when provisioning (`rbmeter sim --secret`,
/config.json on the node).
"""
import os

ENV = "RBMETER_SECRET"
ENV_FILE = "RBMETER_SECRET_FILE"
DEFAULT_FILE = os.path.join("~", ".config", "rbmeter", "secret")


MIN_BYTES = 16
MAX_BYTES = 64


class SecretError(Exception):
    pass


def problem(key):
    """None if key (bytes) is an acceptable secret, else the reason."""
    if len(key) < MIN_BYTES:
        return ("secret refused: %d bytes, at least %d are needed (a passphrase of %d+ characters "
                "or hex: with %d+ hex digits)" % (len(key), MIN_BYTES, MIN_BYTES, 2 * MIN_BYTES))
    if len(key) > MAX_BYTES:
        return "secret refused: %d bytes, at most %d" % (len(key), MAX_BYTES)
    return None


def provision_text(key):
    """Key bytes -> the /config.json auth.secret value the node reads back as
    the same bytes (text as is, binary as hex:...)."""
    try:
        t = key.decode("utf-8")
        if t.isprintable() and not t.startswith("hex:"):
            return t
    except UnicodeDecodeError:
        pass
    return "hex:" + key.hex()


def decode(text):
    """str -> key bytes."""
    if text.startswith("hex:"):
        try:
            return bytes.fromhex(text[4:])
        except ValueError:
            raise SecretError("secret: bad hex after 'hex:'")
    return text.encode("utf-8")


def _read_file(path):
    path = os.path.expanduser(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SecretError("secret file %s: %s" % (path, e.strerror or e))
    text = text.strip("\r\n")           # a trailing newline from `echo x > file` is not part of it
    if not text:
        raise SecretError("secret file %s is empty" % path)
    return decode(text)


def load(secret=None, secret_file=None, environ=None, default_file: "str | None" = DEFAULT_FILE):
    """Returns (key_bytes, source) or raises SecretError when none is configured."""
    env = os.environ if environ is None else environ
    if secret:
        return decode(secret), "--secret"
    if secret_file:
        return _read_file(secret_file), "--secret-file"
    if env.get(ENV):
        return decode(env[ENV]), "$" + ENV
    if env.get(ENV_FILE):
        return _read_file(env[ENV_FILE]), "$" + ENV_FILE
    if default_file and os.path.exists(os.path.expanduser(default_file)):
        return _read_file(default_file), default_file
    raise SecretError("no secret: use --secret, --secret-file, $%s, $%s or %s"
                      % (ENV, ENV_FILE, default_file))
