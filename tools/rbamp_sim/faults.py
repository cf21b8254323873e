"""Seeded, runtime-independent fault settings and random sources."""

M32 = 0xFFFFFFFF
ONE = 1 << 32


def mix(a, b, c=0):
    """Stateless 32-bit hash of three ints: per-window decisions that do not
    depend on how often the master polled (same answer on every runtime).
    Multipliers stay below 2**29 so every product fits a 62-bit small int of
    the MicroPython unix port (no bigint allocation per window)."""
    h = ((a & M32) * 0x1B873593 + (b & M32) * 0x19E3779B + (c & M32) * 0x0D2A6E35
         + 0x27D4EB2F) & M32
    h ^= h >> 15
    h = (h * 0x12EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0x1C2B2AE3) & M32
    h ^= h >> 16
    return h


def thresh(p):
    """Probability (0..1) -> u32 threshold (u32 < thresh == event)."""
    if p <= 0:
        return 0
    if p >= 1:
        return ONE
    return int(p * ONE)


class Rng:
    """xorshift32 stream (same algorithm as tests/support/mptest.Rng)."""

    def __init__(self, seed=1):
        self.s = (seed * 2654435761 + 1) & M32 or 1

    def u32(self):
        s = self.s
        s ^= (s << 13) & M32
        s ^= s >> 17
        s ^= (s << 5) & M32
        self.s = s
        return s

    def below(self, n):
        return self.u32() % n


# NACK rate seen by ESP-IDF hosts on reads, by bus speed (fact sheet §1)
def esp32_nack_rate(freq):
    if freq >= 100000:
        return 0.20
    if freq > 50000:
        return 0.003 + (0.20 - 0.003) * (freq - 50000) / 50000
    return 0.003


class Faults:
    """All knobs default to 'healthy'. Rates are probabilities 0..1.

    Bus level (per transaction, one xorshift stream seeded by `seed`):
      nack_rate, eio_rate, timeout_rate; host="esp32" adds the speed-keyed
      read NACK rate; emi=[(t0_ms, t1_ms), ...] windows with emi_rate NACKs;
      ghost_rate: chance that the read right after a NACK returns the ESP-IDF
      ghost pattern 3C 2F FB 3F without an error; wedge_at=(t0, t1): every
      transaction times out in [t0, t1) (bus stuck); wedge_clocks=N: the
      stuck target lets SDA go after N SCL clocks (a bus clear) or a chip
      reset (emulated Pico only; None: only t1 ends it).
    Module level (per RT window, stateless hash of seed/address/window):
      nan_rate, inf_rate (P registers of one channel), stale_rate (commit
      skipped: no SEQ/DRDY/accumulation), stale_at=[(t0, t1)] (no commits in
      the interval), reboot_at=[t, ...] and reboot_rate_per_h (watchdog
      reboots), jitter_ms (each commit +-jitter), window_ppm (200 ms windows
      stretched by ppm vs master time), chip_skew (chip time base for 0xEC
      and 0xCA, ~0.73 on real modules)."""

    def __init__(self, seed=1, nack_rate=0.0, eio_rate=0.0, timeout_rate=0.0,
                 host=None, emi=(), emi_rate=0.67, ghost_rate=0.0, wedge_at=None, wedge_clocks=None,
                 nan_rate=0.0, inf_rate=0.0, stale_rate=0.0, stale_at=(),
                 reboot_at=(), reboot_rate_per_h=0.0, jitter_ms=0, window_ppm=0,
                 chip_skew=0.73):
        self.seed = seed
        self.nack_rate = nack_rate
        self.eio_rate = eio_rate
        self.timeout_rate = timeout_rate
        self.host = host
        self.emi = [(int(a), int(b)) for a, b in emi]
        self.emi_rate = emi_rate
        self.ghost_rate = ghost_rate
        self.wedge_at = wedge_at
        self.wedge_clocks = wedge_clocks
        self.nan_rate = nan_rate
        self.inf_rate = inf_rate
        self.stale_rate = stale_rate
        self.stale_at = [(int(a), int(b)) for a, b in stale_at]
        self.reboot_at = sorted(int(t) for t in reboot_at)
        self.reboot_rate_per_h = reboot_rate_per_h
        self.jitter_ms = int(jitter_ms)
        self.window_ppm = int(window_ppm)
        self.chip_skew = chip_skew
