"""Signed sessions for tests that drive a node's console client directly:
AUTH, then a signer that seals mutating lines (docs/protocol.md)."""
from proto import auth as pauth


def login(cl, secret, node_id):
    """AUTH over client cl; returns sign(line) -> the signed command line."""
    r = cl.command("AUTH")
    nonce = r.of("nonce")[0]["nonce"]
    cl.command("AUTH " + pauth.response(secret.encode(), node_id, nonce))
    ks = pauth.session_key(secret.encode(), node_id, bytes.fromhex(nonce))
    n = [0]

    def sign(line):
        n[0] += 1
        return pauth.sign(ks, n[0], line)
    return sign
