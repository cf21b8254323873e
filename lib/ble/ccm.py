"""AES-CCM (RFC 3610) on top of a raw AES-128 block encryption, for
BTHome v2 encrypted adverts: 13-byte nonce (L = 2), no associated data.
ecb(block16) -> 16 bytes is cryptolib.aes(key, 1).encrypt on a board."""


def _xor(a, b, n):
    out = bytearray(n)
    for i in range(n):
        out[i] = a[i] ^ b[i]
    return out


def encrypt(ecb, nonce, data, tag_len=4):
    """-> (ciphertext, tag). len(nonce) == 13, len(data) < 65536."""
    if len(nonce) != 13:
        raise ValueError("nonce must be 13 bytes")
    n = len(data)
    # CBC-MAC over B0 and the zero-padded message
    b0 = bytearray(16)
    b0[0] = (((tag_len - 2) // 2) << 3) | 1        # Adata = 0, L - 1 = 1
    b0[1:14] = nonce
    b0[14] = n >> 8
    b0[15] = n & 0xFF
    x = bytes(ecb(bytes(b0)))
    blk = bytearray(16)
    for i in range(0, n, 16):
        for j in range(16):
            blk[j] = x[j] ^ (data[i + j] if i + j < n else 0)
        x = bytes(ecb(bytes(blk)))
    # CTR: A_i = flags | nonce | i
    a = bytearray(16)
    a[0] = 1
    a[1:14] = nonce
    out = bytearray(n)
    ctr = 1
    for i in range(0, n, 16):
        a[14] = ctr >> 8
        a[15] = ctr & 0xFF
        s = ecb(bytes(a))
        for j in range(min(16, n - i)):
            out[i + j] = data[i + j] ^ s[j]
        ctr += 1
    a[14] = 0
    a[15] = 0
    s0 = ecb(bytes(a))
    return bytes(out), bytes(_xor(x, s0, tag_len))


def aes_ecb(key):
    """AES-128 block encryption from MicroPython's cryptolib (ucryptolib on
    older ports). None where the port has neither."""
    try:
        import cryptolib
    except ImportError:
        try:
            import ucryptolib as cryptolib  # type: ignore
        except ImportError:
            return None
    c = cryptolib.aes(bytes(key), 1)
    return c.encrypt
