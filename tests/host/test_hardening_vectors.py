"""The worked example of docs/protocol.md recomputed independently with
CPython's hmac/hashlib, and checked against lib/proto (the node), rbmeter's
client (the host) and the text of the document itself."""
import hashlib
import hmac
import os
import re

from proto import auth
from rbmeter import client as rbc
import test_proto_auth as V

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def H(k, m):
    return hmac.new(k, m, hashlib.sha256).digest()


def test_vectors_independent_of_our_hmac():
    nonce = bytes(range(16))
    assert nonce.hex() == V.EX_NONCE
    nid = V.EX_ID.encode()
    assert H(V.EX_SECRET, b"rbmeter/auth/1" + nid + nonce).hex() == V.EX_ANSWER
    ks = H(V.EX_SECRET, b"rbmeter/session/1" + nid + nonce)
    assert ks.hex() == V.EX_KS
    assert H(ks, b"rbmeter/cmd/1" + (1).to_bytes(4, "big") + V.EX_LINE1.encode())[:16].hex() == V.EX_TAG1
    assert H(ks, b"rbmeter/cmd/1" + (2).to_bytes(4, "big") + b"SAVE")[:16].hex() == V.EX_TAG2
    pad = (H(ks, b"rbmeter/key/1" + (3).to_bytes(4, "big"))
           + H(ks, b"rbmeter/key/1" + (3).to_bytes(4, "big") + (1).to_bytes(4, "big")))[:40]
    assert pad.hex() == V.EX_PAD3
    assert bytes(a ^ b for a, b in zip(bytes.fromhex(V.EX_NEW), pad)).hex() == V.EX_KEY3
    # node and host implementations agree
    assert auth.session_key(V.EX_SECRET, V.EX_ID, nonce) == ks == rbc.session_key(V.EX_SECRET, V.EX_ID, V.EX_NONCE)
    assert rbc.auth_answer(V.EX_SECRET, V.EX_ID, V.EX_NONCE) == V.EX_ANSWER
    assert rbc.sign(ks, 1, V.EX_LINE1) == auth.sign(ks, 1, V.EX_LINE1)
    assert rbc.key_pad(ks, 3, 40) == auth.key_pad(ks, 3, 40) == pad


def test_document_shows_these_vectors():
    with open(os.path.join(ROOT, "docs", "protocol.md"), encoding="utf-8") as f:
        doc = f.read()
    for v in (V.EX_NONCE, V.EX_ANSWER, V.EX_KS, V.EX_TAG1, V.EX_TAG2, V.EX_PAD3, V.EX_KEY3):
        assert v in doc, v
    assert re.search(r'secret\s+= "%s"' % V.EX_SECRET.decode(), doc)
