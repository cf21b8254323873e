"""Load profiles: piecewise-constant power per channel (+ voltage) over
master time, with exact integer ground truth.

Internally everything is integer: time in ms, power in mW, voltage in mV,
energy in mW*ms. A row holds from its time until the next row; the last row
holds forever, unless the profile repeats every `period_ms`."""

INF = 1 << 61  # "never"; still a small int on the 64-bit unix port


def _dec(text, scale):
    """Exact decimal string -> int in units of 1/scale (scale 1000 = milli).
    More digits than the scale allows is an error (no silent rounding)."""
    s = text.strip()
    neg = s.startswith("-")
    if neg or s.startswith("+"):
        s = s[1:]
    if "." in s:
        ip, fp = s.split(".", 1)
    else:
        ip, fp = s, ""
    digits = 0
    while scale > 1:
        scale //= 10
        digits += 1
    fp = fp.rstrip("0")
    if len(fp) > digits or not (ip + fp).isdigit() and (ip + fp) != "":
        raise ValueError("not an exact decimal with <= %d places: %r" % (digits, text))
    if ip == "" and fp == "":
        raise ValueError("empty number")
    v = int(ip or "0") * 10 ** digits + int((fp + "0" * digits)[:digits] or "0")
    return -v if neg else v


def _milli(x):
    """float/int/str in base units -> int milli-units (exact for str)."""
    if isinstance(x, str):
        return _dec(x, 1000)
    if isinstance(x, int):
        return x * 1000
    return int(round(x * 1000))


class Profile:
    """ts: ascending row start times (ms); p: list per channel of row powers
    (mW); u: row voltages (mV); pf: per-channel |power factor| (float)."""

    def __init__(self, ts, p, u=None, pf=None, period_ms=0):
        ts = [int(t) for t in ts]
        if not ts:
            raise ValueError("profile needs at least one row")
        for i in range(1, len(ts)):
            if ts[i] <= ts[i - 1]:
                raise ValueError("row times must increase")
        nrow = len(ts)
        if ts[0] < 0:
            raise ValueError("row times must be >= 0")
        if ts[0] != 0:  # value before the first row = first row
            ts = [0] + ts
        pad = len(ts) - nrow
        p = [[int(v) for v in ([c[0]] * pad + list(c))] for c in p]
        if u is None:
            u = [230000] * nrow
        u = [int(v) for v in ([u[0]] * pad + list(u))]
        for c in p:
            if len(c) != len(ts):
                raise ValueError("channel length differs from row count")
        if len(u) != len(ts):
            raise ValueError("voltage length differs from row count")
        self.ts = ts
        self.p = p
        self.u = u
        self.nch = len(p)
        if pf is None:
            pf = 1.0
        if not isinstance(pf, (list, tuple)):
            pf = [pf] * max(self.nch, 1)
        self.pf = [float(x) for x in pf] + [1.0] * (3 - len(pf))
        self.period_ms = int(period_ms or 0)
        if self.period_ms and self.period_ms <= ts[-1]:
            raise ValueError("period_ms must exceed the last row time")
        # prefix integrals at each row start: import, export per channel, U
        self._ci = []
        self._ce = []
        for c in p:
            ci = [0] * len(ts)
            ce = [0] * len(ts)
            for i in range(1, len(ts)):
                dt = ts[i] - ts[i - 1]
                v = c[i - 1]
                ci[i] = ci[i - 1] + (v * dt if v > 0 else 0)
                ce[i] = ce[i - 1] + (-v * dt if v < 0 else 0)
            self._ci.append(ci)
            self._ce.append(ce)
        cu = [0] * len(ts)
        for i in range(1, len(ts)):
            cu[i] = cu[i - 1] + u[i - 1] * (ts[i] - ts[i - 1])
        self._cu = cu
        if self.period_ms:
            last = self.period_ms - ts[-1]
            self._pi = [ci[-1] + (c[-1] * last if c[-1] > 0 else 0) for ci, c in zip(self._ci, p)]
            self._pe = [ce[-1] + (-c[-1] * last if c[-1] < 0 else 0) for ce, c in zip(self._ce, p)]
            self._pu = cu[-1] + u[-1] * last

    # ---- construction -------------------------------------------------
    @classmethod
    def constant(cls, p_w, u_v=230.0, pf=1.0):
        """Constant powers (W, list per channel or one number) and voltage."""
        if not isinstance(p_w, (list, tuple)):
            p_w = [p_w]
        return cls([0], [[_milli(x)] for x in p_w], [_milli(u_v)], pf=pf)

    @classmethod
    def from_csv(cls, text, period_s=None, pf=None, u_v=230.0):
        """CSV text, header `t_s,p0_w[,p1_w,p2_w][,u_v]`; '#' comments and
        blank lines ignored. Numbers are exact decimals (t to the ms, P and U
        to the milli-unit). period_s: repeat the profile with that period."""
        lines = []
        for ln in text.replace("\r", "").split("\n"):
            ln = ln.strip()
            if ln and not ln.startswith("#"):
                lines.append(ln)
        if not lines:
            raise ValueError("empty CSV")
        head = [h.strip().lower() for h in lines[0].split(",")]
        if head[0] != "t_s":
            raise ValueError("first column must be t_s")
        pcols = []
        ucol = -1
        for i, h in enumerate(head[1:]):
            if h == "u_v":
                ucol = i + 1
            elif len(h) == 4 and h[0] == "p" and h[2:] == "_w" and h[1] in "012":
                if int(h[1]) != len(pcols):
                    raise ValueError("power columns must be p0_w, p1_w, p2_w in order")
                pcols.append(i + 1)
            else:
                raise ValueError("unknown column %r" % h)
        if not pcols:
            raise ValueError("need at least p0_w")
        ts, u = [], []
        p = [[] for _ in pcols]
        for ln in lines[1:]:
            f = ln.split(",")
            if len(f) != len(head):
                raise ValueError("wrong field count: %r" % ln)
            ts.append(_dec(f[0], 1000))
            for k, c in enumerate(pcols):
                p[k].append(_dec(f[c], 1000))
            u.append(_dec(f[ucol], 1000) if ucol > 0 else _milli(u_v))
        per = _dec(str(period_s), 1000) if period_s else 0
        return cls(ts, p, u, pf=pf, period_ms=per)

    @classmethod
    def solar_home_day(cls, seed=1, step_s=300):
        """24 h, repeating daily. ch0 = grid connection (import > 0, midday
        export < 0), ch1 = PV inverter (generation reads negative), plus a
        voltage that rises with export. Deterministic small load noise."""
        s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1
        ts, grid, pv, u = [], [], [], []
        step = step_s * 1000
        t = 0
        while t < 86400000:
            h = t // 60000  # minute of day
            s ^= (s << 13) & 0xFFFFFFFF
            s ^= s >> 17
            s ^= (s << 5) & 0xFFFFFFFF
            noise = (s % 121) - 60  # +-60 W
            load = 250 + noise  # night base load
            if 390 <= h < 510:  # 06:30-08:30 breakfast, kettle, shower pump
                load += 1400
            elif 720 <= h < 780:  # lunch
                load += 900
            elif 1050 <= h < 1320:  # 17:30-22:00 evening peak
                load += 2300 if h < 1200 else 1200
            # PV: triangle-ish bell 07:00..19:00, 3.6 kW peak at 13:00
            gen = 0
            if 420 <= h < 1140:
                x = h - 420  # 0..719
                gen = 3600 * (360 - abs(x - 360)) // 360
            ts.append(t)
            pv.append(-gen * 1000)
            grid.append((load - gen) * 1000 + 37)  # +37 mW keeps it non-round
            u.append(228500 + gen * 3 + (noise * 10))  # export lifts the voltage
            t += step
        return cls(ts, [grid, pv], u, pf=[0.92, 0.99], period_ms=86400000)

    # ---- lookups ------------------------------------------------------
    def _idx(self, t):
        """Row index holding at t (0 <= t < period or unbounded)."""
        ts = self.ts
        lo, hi = 0, len(ts) - 1
        if t >= ts[hi]:
            return hi
        while lo < hi:  # largest i with ts[i] <= t
            mid = (lo + hi + 1) >> 1
            if ts[mid] <= t:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _fold(self, t):
        """(whole periods, time within period)."""
        if self.period_ms:
            n = t // self.period_ms
            return n, t - n * self.period_ms
        return 0, t

    def value_mw(self, ch, t):
        if ch >= self.nch:
            return 0
        if t < 0 and not self.period_ms:
            return self.p[ch][0]
        return self.p[ch][self._idx(self._fold(t)[1])]

    def u_mv(self, t):
        if t < 0 and not self.period_ms:
            return self.u[0]
        return self.u[self._idx(self._fold(t)[1])]

    def _cum(self, ch, t):
        """(import, export) integrals from 0 to t; negative t counts back."""
        n, r = self._fold(t)
        if r < 0:  # before 0 without a period: first row extends back
            v = self.p[ch][0]
            return (v * r if v > 0 else 0), (-v * r if v < 0 else 0)
        i = self._idx(r)
        v = self.p[ch][i]
        dt = r - self.ts[i]
        a = self._ci[ch][i] + (v * dt if v > 0 else 0)
        b = self._ce[ch][i] + (-v * dt if v < 0 else 0)
        if n:
            a += n * self._pi[ch]
            b += n * self._pe[ch]
        return a, b

    def _cum_u(self, t):
        n, r = self._fold(t)
        if r < 0:
            return self.u[0] * r
        i = self._idx(r)
        a = self._cu[i] + self.u[i] * (r - self.ts[i])
        return a + n * self._pu if n else a

    def energy_mwms(self, ch, t0_ms, t1_ms):
        """Exact (import, export) energy in mW*ms over [t0, t1], both >= 0."""
        if ch >= self.nch:
            return 0, 0
        a0, b0 = self._cum(ch, t0_ms)
        a1, b1 = self._cum(ch, t1_ms)
        return a1 - a0, b1 - b0

    def u_integral(self, t0_ms, t1_ms):
        """Integral of U in mV*ms over [t0, t1]."""
        return self._cum_u(t1_ms) - self._cum_u(t0_ms)

    def next_change(self, t):
        """First row start strictly after t (INF if the value never changes)."""
        n, r = self._fold(t)
        ts = self.ts
        if r < 0:
            return 0 if len(ts) > 1 or self.period_ms else INF
        i = self._idx(r)
        if i + 1 < len(ts):
            return t - r + ts[i + 1]
        if self.period_ms:
            return (n + 1) * self.period_ms + ts[0]
        return INF

    def max_abs_mw(self, ch, t0_ms, t1_ms):
        """Largest |P| in mW of channel ch on [t0, t1) (values are held
        between rows, so only the change points need looking at)."""
        m = abs(self.value_mw(ch, t0_ms))
        t = self.next_change(t0_ms)
        while t < t1_ms:
            m = max(m, abs(self.value_mw(ch, t)))
            t = self.next_change(t)
        return m

    def step_sum_mw(self, ch, t0_ms, t1_ms):
        """Sum of |P steps| in mW of channel ch at change points in (t0, t1):
        what holding a window's power past a step can mis-attribute."""
        s = 0
        prev = self.value_mw(ch, t0_ms)
        t = self.next_change(t0_ms)
        while t < t1_ms:
            v = self.value_mw(ch, t)
            s += abs(v - prev)
            prev = v
            t = self.next_change(t)
        return s

    def row_span(self, t):
        """(start, end, p0, p1, p2, u) of the constant row holding at t, in
        absolute ms (end exclusive, INF if it never ends); missing channels 0."""
        n, r = self._fold(t)
        ts = self.ts
        if r < 0:
            i = 0
            start, end = -INF, 0
        else:
            i = self._idx(r)
            base = t - r
            start = base + ts[i]
            end = base + (ts[i + 1] if i + 1 < len(ts) else (self.period_ms or INF))
            if not self.period_ms and i + 1 == len(ts):
                end = INF
        p = self.p
        nch = self.nch
        return (start, end, p[0][i] if nch > 0 else 0, p[1][i] if nch > 1 else 0,
                p[2][i] if nch > 2 else 0, self.u[i])

    def window(self, a, b, nch, out):
        """Signed integrals over [a, b): out[ch] (mW*ms) for ch < nch and
        out[3] = U integral (mV*ms). One bisection when [a, b) lies in a row."""
        n, r = self._fold(a)
        if r >= 0:
            ts = self.ts
            i = self._idx(r)
            end = ts[i + 1] if i + 1 < len(ts) else (self.period_ms or INF)
            if b - a <= end - r:
                dt = b - a
                for ch in range(nch):
                    out[ch] = self.p[ch][i] * dt if ch < self.nch else 0
                out[3] = self.u[i] * dt
                return out
        for ch in range(nch):
            if ch < self.nch:
                x, y = self.energy_mwms(ch, a, b)
                out[ch] = x - y
            else:
                out[ch] = 0
        out[3] = self.u_integral(a, b)
        return out
