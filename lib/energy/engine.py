"""Exact bidirectional energy accumulator in 31-bit integer fixed point.

Pure: no I/O, no clock, no floats. Power in int mW, time in int ms,
energy quantum 1 mWh = 3_600_000 mW*ms. Each total is kept as
kwh + mwh (0..999_999) + rem (mW*ms, 0..3_599_999), so the stored
value is the exact sum of p*dt: total_mWh*3_600_000 + rem == sum(p*dt).
Layout and the 31-bit argument: docs/energy.md."""
try:
    from micropython import const
except ImportError:  # CPython
    def const(__x):
        return __x

MAX_DT_MS = const(20_000)        # longest single add() (gap-bridging limit)
P_MAX_MW = const(50_000_000)     # plausibility bound per channel (50 kW)
Q_MWMS = const(3_600_000)        # one quantum (1 mWh) in mW*ms
MWH_PER_KWH = const(1_000_000)
_P_SPLIT = const(3600)           # p = a*3600 + b keeps a*dt and b*dt small
_MS_PER_S = const(1000)
GAP_MAX_MS = const(0x3FFF0000)   # add_gap() limit: > one ticks_diff() range, ms + dt < 2**30
STATE_TAG = const(1)             # first element of state(): layout version
STATE_LEN = const(11)
_SMALL_MAX = const(0x3FFFFFFF)      # largest 31-bit small int
KWH_MAX = const(1_000_000_000)   # documented capacity; kwh itself may grow to 2**30-1
_ZERO = (STATE_TAG, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


class Meter:
    """Import/export energy and integrated/gap time for nch channels.
    Attributes are lists indexed by channel (ints only)."""

    def __init__(self, nch):
        self.nch = nch
        self.import_kwh = [0] * nch
        self.import_mwh = [0] * nch
        self.import_rem = [0] * nch
        self.export_kwh = [0] * nch
        self.export_mwh = [0] * nch
        self.export_rem = [0] * nch
        self.int_s = [0] * nch
        self.int_ms = [0] * nch
        self.gap_s = [0] * nch
        self.gap_ms = [0] * nch

    def add(self, ch, p_mw, dt_ms):
        """Integrate p_mw (int mW, >0 import, <0 export) over dt_ms
        (0..MAX_DT_MS). Allocation-free; raises ValueError on bad input
        before changing anything."""
        # one flat body: calls cost more than the arithmetic on MicroPython
        if dt_ms < 0 or dt_ms > MAX_DT_MS:
            raise ValueError("dt_ms out of range")
        if p_mw > 0:
            if p_mw > P_MAX_MW:
                raise ValueError("p_mw out of range")
            e = p_mw
            kl = self.import_kwh
            ml = self.import_mwh
            rl = self.import_rem
        elif p_mw < 0:
            if p_mw < -P_MAX_MW:
                raise ValueError("p_mw out of range")
            e = -p_mw
            kl = self.export_kwh
            ml = self.export_mwh
            rl = self.export_rem
        else:
            e = 0                      # p == 0: time only
            kl = ml = rl = self.import_rem   # unused; keeps the names bound
        if e:
            # kl/ml/rl[ch] += e*dt with no intermediate beyond 31 bits:
            # e = a*3600 + b; a*dt <= 13_888*20_000, r < 7.92e7 (docs/energy.md)
            a = e // _P_SPLIT
            x = a * dt_ms
            q = x // _MS_PER_S
            r = rl[ch] + (x - q * _MS_PER_S) * _P_SPLIT + (e - a * _P_SPLIT) * dt_ms
            if r >= Q_MWMS:
                c = r // Q_MWMS
                q += c
                r -= c * Q_MWMS
            rl[ch] = r
            m = ml[ch] + q
            if m >= MWH_PER_KWH:
                # q <= 277_781 so at most one kWh carries per call
                m -= MWH_PER_KWH
                kl[ch] += 1
            ml[ch] = m
        ms = self.int_ms[ch] + dt_ms
        if ms >= _MS_PER_S:
            s = ms // _MS_PER_S
            self.int_s[ch] += s
            ms -= s * _MS_PER_S
        self.int_ms[ch] = ms

    def add_gap(self, ch, dt_ms):
        """Account dt_ms (0..GAP_MAX_MS) as gap time: counted, no energy."""
        if dt_ms < 0 or dt_ms > GAP_MAX_MS:
            raise ValueError("dt_ms out of range")
        # dt <= GAP_MAX_MS so ms + dt < 2**30
        ms = self.gap_ms[ch] + dt_ms
        if ms >= _MS_PER_S:
            s = ms // _MS_PER_S
            self.gap_s[ch] += s
            ms -= s * _MS_PER_S
        self.gap_ms[ch] = ms

    # --- read-out (not on the per-sample path; may allocate) ---

    def net(self, ch):
        """import - export as (kwh, mwh), both carrying the sign of the result."""
        return _signed(self.import_kwh[ch] - self.export_kwh[ch],
                       self.import_mwh[ch] - self.export_mwh[ch])

    def import_total_mwh(self, ch):
        return self.import_kwh[ch] * MWH_PER_KWH + self.import_mwh[ch]

    def export_total_mwh(self, ch):
        return self.export_kwh[ch] * MWH_PER_KWH + self.export_mwh[ch]

    def int_time_ms(self, ch):
        return self.int_s[ch] * _MS_PER_S + self.int_ms[ch]

    def gap_time_ms(self, ch):
        return self.gap_s[ch] * _MS_PER_S + self.gap_ms[ch]

    def state(self, ch):
        """Flat tuple of small ints for the store (layout: docs/energy.md)."""
        return (STATE_TAG,
                self.import_kwh[ch], self.import_mwh[ch], self.import_rem[ch],
                self.export_kwh[ch], self.export_mwh[ch], self.export_rem[ch],
                self.int_s[ch], self.int_ms[ch], self.gap_s[ch], self.gap_ms[ch])

    def restore(self, ch, st):
        """Inverse of state(); validates everything before touching the channel."""
        if len(st) != STATE_LEN or st[0] != STATE_TAG:
            raise ValueError("bad state layout")
        lim = (0, 0, MWH_PER_KWH, Q_MWMS, 0, MWH_PER_KWH, Q_MWMS, 0, _MS_PER_S, 0, _MS_PER_S)
        for i in range(1, STATE_LEN):
            v = st[i]
            if not isinstance(v, int) or v < 0 or (lim[i] and v >= lim[i]) or v > _SMALL_MAX:
                raise ValueError("bad state value")
        (_, self.import_kwh[ch], self.import_mwh[ch], self.import_rem[ch],
         self.export_kwh[ch], self.export_mwh[ch], self.export_rem[ch],
         self.int_s[ch], self.int_ms[ch], self.gap_s[ch], self.gap_ms[ch]) = st

    def preset(self, ch, imp_mwh, exp_mwh):
        """Set the energy registers (e.g. to match a utility meter); times
        and anything else are kept. Sub-quantum carry restarts at 0."""
        if imp_mwh < 0 or exp_mwh < 0:
            raise ValueError("negative preset")
        ik, im = imp_mwh // MWH_PER_KWH, imp_mwh % MWH_PER_KWH
        ek, em = exp_mwh // MWH_PER_KWH, exp_mwh % MWH_PER_KWH
        if ik > KWH_MAX or ek > KWH_MAX:
            raise ValueError("preset too large")
        self.import_kwh[ch], self.import_mwh[ch], self.import_rem[ch] = ik, im, 0
        self.export_kwh[ch], self.export_mwh[ch], self.export_rem[ch] = ek, em, 0

    def reset(self, ch=None):
        chans = range(self.nch) if ch is None else (ch,)
        for c in chans:
            self.restore(c, _ZERO)




def _signed(k, m):
    # normalise k + m/1e6 (|m| < 2e6) so k and m share the sign of the value
    if k > 0 and m < 0:
        k -= 1
        m += MWH_PER_KWH
    elif k < 0 and m > 0:
        k += 1
        m -= MWH_PER_KWH
    return k, m


def fmt_kwh(kwh, mwh):
    """Exact decimal kWh with 6 decimals, e.g. (12, 345) -> '12.000345'.
    Accepts any sign mix (e.g. from Meter.net)."""
    neg, k, m = _mag(kwh, mwh)
    return "%s%d.%06d" % ("-" if neg else "", k, m)


def fmt_wh(kwh, mwh):
    """Exact decimal Wh with 3 decimals, e.g. (12, 345) -> '12000.345'."""
    neg, k, m = _mag(kwh, mwh)
    s = "-" if neg else ""
    if k:
        return "%s%d%03d.%03d" % (s, k, m // 1000, m % 1000)
    return "%s%d.%03d" % (s, m // 1000, m % 1000)


def _mag(kwh, mwh):
    # -> (negative, |kwh|, mwh in 0..999_999) for the value kwh + mwh/1e6
    c = mwh // MWH_PER_KWH
    k = kwh + c
    m = mwh - c * MWH_PER_KWH
    if k < 0:
        if m:
            return True, -k - 1, MWH_PER_KWH - m
        return True, -k, 0
    return False, k, m
