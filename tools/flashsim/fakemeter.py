"""Stand-in for energy.Meter (same public surface the store uses) so store
tests and benchmarks do not depend on the engine: exact integer totals,
state(ch) = (imp_kwh, imp_mwh, imp_rem, exp_kwh, exp_mwh, exp_rem, gap_s,
gap_ms, n_preset)."""


class FakeMeter:
    def __init__(self, nch):
        self.n = nch
        self.import_kwh = [0] * nch
        self.import_mwh = [0] * nch
        self.export_kwh = [0] * nch
        self.export_mwh = [0] * nch
        self.irem = [0] * nch
        self.erem = [0] * nch
        self.gap_s = [0] * nch
        self.gap_ms = [0] * nch
        self.npreset = [0] * nch

    def add(self, ch, p_mw, dt_ms):
        if p_mw >= 0:
            r = self.irem[ch] + p_mw * dt_ms
            q = r // 3600000
            self.irem[ch] = r - q * 3600000
            m = self.import_mwh[ch] + q
            self.import_kwh[ch] += m // 1000000
            self.import_mwh[ch] = m % 1000000
        else:
            r = self.erem[ch] - p_mw * dt_ms
            q = r // 3600000
            self.erem[ch] = r - q * 3600000
            m = self.export_mwh[ch] + q
            self.export_kwh[ch] += m // 1000000
            self.export_mwh[ch] = m % 1000000

    def add_gap(self, ch, dt_ms):
        t = self.gap_ms[ch] + dt_ms
        self.gap_s[ch] += t // 1000
        self.gap_ms[ch] = t % 1000

    def state(self, ch):
        return (self.import_kwh[ch], self.import_mwh[ch], self.irem[ch],
                self.export_kwh[ch], self.export_mwh[ch], self.erem[ch],
                self.gap_s[ch], self.gap_ms[ch], self.npreset[ch])

    def restore(self, ch, t):
        if len(t) != 9:
            raise ValueError("state length")
        (self.import_kwh[ch], self.import_mwh[ch], self.irem[ch],
         self.export_kwh[ch], self.export_mwh[ch], self.erem[ch],
         self.gap_s[ch], self.gap_ms[ch], self.npreset[ch]) = t

    def preset(self, ch, imp_mwh, exp_mwh):
        self.import_kwh[ch] = imp_mwh // 1000000
        self.import_mwh[ch] = imp_mwh % 1000000
        self.export_kwh[ch] = exp_mwh // 1000000
        self.export_mwh[ch] = exp_mwh % 1000000
        self.irem[ch] = self.erem[ch] = 0
        self.npreset[ch] += 1

    def imp_total(self, ch):
        return self.import_kwh[ch] * 1000000 + self.import_mwh[ch]

    def exp_total(self, ch):
        return self.export_kwh[ch] * 1000000 + self.export_mwh[ch]
