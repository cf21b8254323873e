"""Seed-compatible BASIC energy accumulator (`dev.energy`).

Integrates the latched period averages (clamped >= 0 by BASIC firmware, so the
total is monotonic consumption) with the MASTER clock dt of each consumed
latch (the chip clock undercounts by ~25-30 %). Totals are exact integers:
kWh + mWh (0..999_999) + a sub-mWh carry in mW*ms (0..3_599_999); every
intermediate stays a 31-bit small int."""

try:
    from micropython import const
except ImportError:  # CPython
    def const(__x):
        return __x

_MWMS_PER_MWH = const(3_600_000)
_WMS_PER_MWH = const(3_600)
_CHUNK_MS = const(20_000)        # 50_000 W * 20_000 ms stays below 2**30
_MAX_CH = const(3)


class RbAmpEnergy:
    def __init__(self, nch=_MAX_CH):
        self.nch = nch
        self.kwh = [0] * nch
        self.mwh = [0] * nch
        self.rem = [0] * nch      # mW*ms carry
        self.is_enabled = True
        self.ticks = 0            # integrated snapshots

    def enable(self):
        self.is_enabled = True

    def disable(self):
        self.is_enabled = False

    def reset(self, ch):
        self.kwh[ch] = 0
        self.mwh[ch] = 0
        self.rem[ch] = 0

    def reset_all(self):
        for ch in range(self.nch):
            self.reset(ch)

    def add(self, ch, p_mw, dt_ms):
        """Add p_mw (int mW) held for dt_ms; negative power is ignored
        (BASIC: consumption only)."""
        if p_mw <= 0 or dt_ms <= 0:
            return
        pw = p_mw // 1000                 # whole watts
        pm = p_mw - pw * 1000             # 0..999 mW
        mwh = self.mwh[ch]
        rem = self.rem[ch]
        while dt_ms > 0:
            d = dt_ms if dt_ms < _CHUNK_MS else _CHUNK_MS
            dt_ms -= d
            wms = pw * d                  # W*ms (< 2**30)
            q = wms // _WMS_PER_MWH
            mwh += q
            rem += (wms - q * _WMS_PER_MWH) * 1000 + pm * d
            while rem >= _MWMS_PER_MWH:
                rem -= _MWMS_PER_MWH
                mwh += 1
            while mwh >= 1_000_000:
                mwh -= 1_000_000
                self.kwh[ch] += 1
        self.mwh[ch] = mwh
        self.rem[ch] = rem

    def tick(self, snap):
        """Integrate one period snapshot (skips invalid ones)."""
        if not self.is_enabled or not snap.valid or snap.master_dt_ms <= 0:
            return
        n = self.nch if self.nch < len(snap.avg_p_mw) else len(snap.avg_p_mw)
        for ch in range(n):
            p = snap.avg_p_mw[ch]
            if p > 0:                     # BAD sentinel is negative too
                self.add(ch, p, snap.master_dt_ms)
        self.ticks += 1

    def mwh_total(self, ch):
        """Total as int mWh (may exceed a small int on 31-bit ports)."""
        return self.kwh[ch] * 1_000_000 + self.mwh[ch]

    def wh(self, ch=0):
        """Accumulated consumption in Wh (float, for humans)."""
        return self.kwh[ch] * 1000.0 + self.mwh[ch] / 1000.0 + self.rem[ch] / 3.6e9
