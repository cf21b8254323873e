"""Save policy: when to commit totals to flash. Pure, no I/O.

Commit when any channel's unsaved energy reaches threshold_mwh, but not more
often than min_ms; commit anything that changed at least every max_ms (so
time/gap counters persist too). Power-fail, shutdown, preset and reset commit
immediately (not decided here). Hard power cut loses at most
max(threshold, min_ms x P) of energy per channel."""
try:
    from micropython import const
except ImportError:
    def const(__x):
        return __x

THRESHOLD_MWH = const(1000)    # 1 Wh
MIN_MS = const(5000)
MAX_MS = const(600000)         # 10 min
RETRY_MS = const(60000)        # after a failed commit (filesystem fault)
AGE_CAP = const(1 << 29)       # saturating ages stay 31-bit small ints

DUE_NO = const(0)
DUE_ENERGY = const(1)
DUE_MAXAGE = const(2)
DUE_URGENT = const(3)


class Policy:
    def __init__(self, threshold_mwh=THRESHOLD_MWH, min_ms=MIN_MS, max_ms=MAX_MS, retry_ms=RETRY_MS):
        self.threshold_mwh = threshold_mwh
        self.min_ms = min_ms
        self.max_ms = max_ms
        self.retry_ms = retry_ms

    @staticmethod
    def from_config(cfg):
        """Policy from a store.config dict (the `save` section)."""
        s = cfg["save"]
        return Policy(s["threshold_mwh"], s["min_interval_s"] * 1000, s["max_interval_s"] * 1000)

    def due(self, age_ms, dirty_ms, unsaved_mwh, changed, urgent=False, failing=False):
        """age_ms: since the last commit (or failed attempt); dirty_ms: since
        the first unsaved change; unsaved_mwh: max over channels (import or
        export); urgent: the fast record can no longer hold the delta."""
        if not changed:
            return DUE_NO
        lim = self.retry_ms if failing and self.retry_ms > self.min_ms else self.min_ms
        if age_ms < lim:
            return DUE_NO
        if unsaved_mwh >= self.threshold_mwh:
            return DUE_ENERGY
        if dirty_ms >= self.max_ms:
            return DUE_MAXAGE
        if urgent:
            return DUE_URGENT
        return DUE_NO

    def loss_bound_mwh(self, p_mw):
        """Worst-case energy lost per channel on a hard power cut at constant
        p_mw: the threshold, or what accumulates during the minimum interval
        (plus one tick of detection latency, tick_ms, added by the caller)."""
        e = p_mw * self.min_ms // 3600000
        return e if e > self.threshold_mwh else self.threshold_mwh


def add_age(age, dt):
    a = age + dt
    return a if a < AGE_CAP else AGE_CAP
