"""Result objects of the human-level reads."""


class RbAmpPeriodSnapshot:
    """One latched period. avg_p/max_p in W (floats, for humans); avg_p_mw in
    exact int mW (what the energy accumulator integrates); master_dt_ms is the
    master-clock time since the previous consumed latch (0 for the first one
    or with skip_latch)."""

    def __init__(self, valid, avg_p, avg_p_mw, max_p, latch_ms, master_dt_ms, commit_count):
        self.valid = valid
        self.avg_p = avg_p
        self.avg_p_mw = avg_p_mw
        self.max_p = max_p
        self.latch_ms = latch_ms
        self.master_dt_ms = master_dt_ms
        self.commit_count = commit_count

    def __repr__(self):
        return "RbAmpPeriodSnapshot(valid=%r, avg_p=%r, max_p=%r, latch_ms=%r, master_dt_ms=%r)" % (
            self.valid, self.avg_p, self.max_p, self.latch_ms, self.master_dt_ms)


class _Indexed:
    """`dev.power[ch]`-style view: indexing performs a fresh read."""

    def __init__(self, fn, n):
        self._fn = fn
        self._n = n

    def __getitem__(self, ch):
        return self._fn(ch)

    def __len__(self):
        return self._n()
