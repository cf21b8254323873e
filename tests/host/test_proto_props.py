"""CPython property tests: CRC and HMAC against independent implementations,
exact decimals, and the engine under arbitrary bytes (hypothesis)."""
import binascii
import hashlib
import hmac

from hypothesis import given, settings, strategies as st

from proto import auth, crc, num
from test_proto_fake import Rig


@given(st.binary(max_size=300))
def test_crc16_matches_binascii(data):
    # binascii.crc_hqx with init 0xFFFF is CRC-16/CCITT-FALSE
    assert crc.crc16(data) == binascii.crc_hqx(data, 0xFFFF)
    assert crc.verify(crc.seal(data)) == data


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_matches_stdlib(key, msg):
    assert auth.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_ct_equal_is_equality(a, b):
    assert auth.ct_equal(a, b) == (a == b)


@given(st.integers(min_value=-10**18, max_value=10**18), st.integers(min_value=0, max_value=9))
def test_fixed_roundtrip(v, places):
    s = num.fmt_fixed(v, places)
    if places:
        assert num.parse_fixed(s, places, 30, signed=True) == v
        ip, fp = s.lstrip("-").split(".")
        assert len(fp) == places


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=20), st.lists(st.integers(0, 5000), max_size=20))
def test_engine_arbitrary_bytes(chunks, steps):
    rig = Rig()
    before = rig.node.totals()
    for i, c in enumerate(chunks):
        k = len(rig.out)
        rig.eng.feed(c, rig.now())
        out = b"".join(rig.out[k:])
        if out:
            last = out.split(b"\r\n")[-2]
            assert last.startswith((b"OK", b"ERR ", b'{"ok"')), out
        if i < len(steps):
            rig.step(steps[i])
    assert rig.node.mut == [] and rig.node.totals() == before
