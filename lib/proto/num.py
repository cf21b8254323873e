"""Exact fixed-point decimals without floats (kWh from mWh, W from mW)."""


def fmt_fixed(v, places):
    """int v scaled by 10**places -> '-12.003400' style exact decimal."""
    s = str(-v if v < 0 else v)
    if len(s) <= places:
        s = "0" * (places + 1 - len(s)) + s
    s = s[:len(s) - places] + "." + s[len(s) - places:]
    return "-" + s if v < 0 else s


def fmt_kwh(mwh):
    """Total mWh -> exact kWh with 6 decimals."""
    return fmt_fixed(mwh, 6)


def parse_fixed(s, places, max_int_digits=10, signed=False):
    """'123.45' -> 123450 for places=3; no floats, no exponent, at most
    `places` decimals. Raises ValueError with a short reason."""
    if not s:
        raise ValueError("empty number")
    neg = False
    if s[0] in "+-":
        if s[0] == "-":
            if not signed:
                raise ValueError("negative not allowed")
            neg = True
        s = s[1:]
    dot = s.find(".")
    if dot < 0:
        ip, fp = s, ""
    else:
        ip, fp = s[:dot], s[dot + 1:]
    if not ip and not fp:
        raise ValueError("bad number")
    for c in ip + fp:
        if not "0" <= c <= "9":
            raise ValueError("bad number")
    if len(fp) > places:
        raise ValueError("max %d decimals" % places)
    ip = ip.lstrip("0")
    if len(ip) > max_int_digits:
        raise ValueError("number too large")
    v = int((ip or "0") + fp + "0" * (places - len(fp)))
    return -v if neg else v
