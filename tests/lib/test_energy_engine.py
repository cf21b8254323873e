"""Energy engine on all three runtimes: exactness against exact integer sums,
31-bit/no-allocation proof (wasm32), import/export/net, rendering, state."""
import mptest
import energy
from energy import Meter, fmt_kwh, fmt_wh, MAX_DT_MS, P_MAX_MW, Q_MWMS

N_RANDOM = 1500 if mptest.MICROPYTHON else 4000


def _exact_check(m, ch, imp, exp):
    # stored value must equal the exact sum: total_mWh * Q + rem == sum(p*dt)
    assert m.import_total_mwh(ch) * Q_MWMS + m.import_rem[ch] == imp
    assert m.export_total_mwh(ch) * Q_MWMS + m.export_rem[ch] == exp
    # hence the total is within one quantum below the exact value
    assert 0 <= imp - m.import_total_mwh(ch) * Q_MWMS < Q_MWMS
    assert 0 <= exp - m.export_total_mwh(ch) * Q_MWMS < Q_MWMS


def _small_state(m, ch):
    for v in m.state(ch):
        mptest.small(v)


def _rand_p(r):
    k = r.below(10)
    if k == 0:
        return P_MAX_MW if r.below(2) else -P_MAX_MW
    if k == 1:
        return r.range(-3600, 3600)
    if k == 2:
        return 0
    return r.range(-P_MAX_MW, P_MAX_MW)


def _rand_dt(r):
    k = r.below(6)
    if k == 0:
        return MAX_DT_MS
    if k == 1:
        return r.range(0, 5)
    return r.range(0, MAX_DT_MS)


def test_exact_random_sequences():
    r = mptest.Rng(11)
    m = Meter(2)
    imp = [0, 0]
    exp = [0, 0]
    t = [0, 0]
    for i in range(N_RANDOM):
        ch = r.below(2)
        p = _rand_p(r)
        dt = _rand_dt(r)
        mptest.assert_no_alloc(m.add, ch, p, dt)
        if p > 0:
            imp[ch] += p * dt
        else:
            exp[ch] -= p * dt
        t[ch] += dt
        if i % 97 == 0:
            _exact_check(m, ch, imp[ch], exp[ch])
            _small_state(m, ch)
    for ch in (0, 1):
        _exact_check(m, ch, imp[ch], exp[ch])
        assert m.int_time_ms(ch) == t[ch]
        assert m.gap_time_ms(ch) == 0
        _small_state(m, ch)


def test_worst_case_no_bigint_near_capacity():
    # kWh at the documented capacity, mWh and carry one step below their
    # wrap, max |p| and dt: on wasm32 heap_lock proves no bigint was made
    m = Meter(1)
    st = (energy.STATE_TAG, energy.KWH_MAX, 999_999, Q_MWMS - 1,
          energy.KWH_MAX, 999_999, Q_MWMS - 1, 999_999_999, 999, 5, 999)
    m.restore(0, st)
    mptest.assert_no_alloc(m.add, 0, P_MAX_MW, MAX_DT_MS)
    mptest.assert_no_alloc(m.add, 0, -P_MAX_MW, MAX_DT_MS)
    mptest.assert_no_alloc(m.add, 0, P_MAX_MW - 1, MAX_DT_MS - 1)
    mptest.assert_no_alloc(m.add, 0, 3599, MAX_DT_MS)
    mptest.assert_no_alloc(m.add_gap, 0, energy.GAP_MAX_MS)
    _small_state(m, 0)
    # 1e12 mW*ms = 277_777 mWh + 2_800_000 mW*ms, plus the carried state
    base = (energy.KWH_MAX * 1_000_000 + 999_999) * Q_MWMS + Q_MWMS - 1
    e = base + P_MAX_MW * MAX_DT_MS + (P_MAX_MW - 1) * (MAX_DT_MS - 1) + 3599 * MAX_DT_MS
    assert m.import_total_mwh(0) * Q_MWMS + m.import_rem[0] == e
    assert m.import_kwh[0] == energy.KWH_MAX + 1
    assert m.gap_time_ms(0) == 5999 + energy.GAP_MAX_MS


def test_sign_split_and_net():
    m = Meter(1)
    m.add(0, 3_600_000, 1000)        # 1000 mWh import
    m.add(0, -1_800_000, 1000)       # 500 mWh export
    m.add(0, 0, 500)
    assert (m.import_kwh[0], m.import_mwh[0]) == (0, 1000)
    assert (m.export_kwh[0], m.export_mwh[0]) == (0, 500)
    assert m.net(0) == (0, 500)
    assert m.int_time_ms(0) == 2500
    m.add(0, -36_000_000, 20_000)    # 200_000 mWh export
    assert m.net(0) == (0, -199_500)
    assert fmt_kwh(*m.net(0)) == "-0.199500"
    assert fmt_wh(*m.net(0)) == "-199.500"


def test_net_equals_import_minus_export_random():
    r = mptest.Rng(5)
    m = Meter(1)
    for i in range(600):
        m.add(0, _rand_p(r), _rand_dt(r))
        k, mw = m.net(0)
        assert (k >= 0 and mw >= 0) or (k <= 0 and mw <= 0)
        assert -1_000_000 < mw < 1_000_000
        assert k * 1_000_000 + mw == m.import_total_mwh(0) - m.export_total_mwh(0)


def test_carry_into_kwh():
    m = Meter(1)
    # 1 kWh = 3.6e9 mW*ms: 50 kW for 72 s = 3.6 adds of 20 s
    for _ in range(3):
        m.add(0, P_MAX_MW, MAX_DT_MS)
    m.add(0, P_MAX_MW, 12_000)
    assert (m.import_kwh[0], m.import_mwh[0], m.import_rem[0]) == (1, 0, 0)
    assert fmt_kwh(m.import_kwh[0], m.import_mwh[0]) == "1.000000"
    assert fmt_wh(m.import_kwh[0], m.import_mwh[0]) == "1000.000"


def test_fmt_exact():
    assert fmt_kwh(12345, 678901) == "12345.678901"
    assert fmt_wh(12345, 678901) == "12345678.901"
    assert fmt_kwh(0, 0) == "0.000000"
    assert fmt_wh(0, 5) == "0.005"
    assert fmt_kwh(0, -5) == "-0.000005"
    assert fmt_kwh(-3, 0) == "-3.000000"
    assert fmt_kwh(-3, 250_000) == "-2.750000"     # mixed signs normalise
    assert fmt_kwh(2, -250_000) == "1.750000"
    assert fmt_wh(-1, -1) == "-1000.001"
    assert fmt_kwh(1_000_000_000, 999_999) == "1000000000.999999"


def test_time_split_and_gap():
    m = Meter(1)
    m.add(0, 1000, 999)
    m.add(0, 1000, 2)
    assert (m.int_s[0], m.int_ms[0]) == (1, 1)
    m.add_gap(0, 123_456)
    assert (m.gap_s[0], m.gap_ms[0]) == (123, 456)
    assert m.int_time_ms(0) == 1001 and m.gap_time_ms(0) == 123_456


def test_bad_input_rejected_without_change():
    m = Meter(1)
    m.add(0, 5000, 100)
    st = m.state(0)
    mptest.raises(ValueError, m.add, 0, 5000, MAX_DT_MS + 1)
    mptest.raises(ValueError, m.add, 0, 5000, -1)
    mptest.raises(ValueError, m.add, 0, P_MAX_MW + 1, 10)
    mptest.raises(ValueError, m.add, 0, -P_MAX_MW - 1, 10)
    mptest.raises(ValueError, m.add_gap, 0, -1)
    assert m.state(0) == st


def test_state_roundtrip_restore_preset_reset():
    r = mptest.Rng(3)
    a = Meter(2)
    for _ in range(200):
        a.add(r.below(2), _rand_p(r), _rand_dt(r))
    a.add_gap(1, 777)
    b = Meter(2)
    for ch in (0, 1):
        st = a.state(ch)
        assert isinstance(st, tuple) and len(st) == energy.STATE_LEN and st[0] == energy.STATE_TAG
        b.restore(ch, st)
        assert b.state(ch) == st
    # continuing both gives identical results
    a.add(0, -12345, 777)
    b.add(0, -12345, 777)
    assert a.state(0) == b.state(0)
    bad = list(a.state(0))
    bad[2] = 1_000_000                              # mWh out of range
    mptest.raises(ValueError, b.restore, 0, tuple(bad))
    mptest.raises(ValueError, b.restore, 0, (2,) + a.state(0)[1:])
    mptest.raises(ValueError, b.restore, 0, a.state(0)[:-1])
    assert b.state(0) == a.state(0)
    b.preset(0, 12_345_678_901, 5)
    assert (b.import_kwh[0], b.import_mwh[0], b.import_rem[0]) == (12345, 678_901, 0)
    assert (b.export_kwh[0], b.export_mwh[0]) == (0, 5)
    assert b.state(0)[7:] == a.state(0)[7:]          # times kept
    mptest.raises(ValueError, b.preset, 0, -1, 0)
    b.reset(0)
    assert b.state(0) == (energy.STATE_TAG,) + (0,) * 10
    assert b.state(1) == a.state(1)
    b.reset()
    assert b.state(1) == (energy.STATE_TAG,) + (0,) * 10


def test_add_is_allocation_free():
    m = Meter(3)
    for p, dt in ((1, 1), (-1, 1), (0, 200), (P_MAX_MW, MAX_DT_MS), (-P_MAX_MW, MAX_DT_MS),
                  (1_234_567, 200), (-987_654, 201)):
        mptest.assert_no_alloc(m.add, 2, p, dt)
    mptest.assert_no_alloc(m.add_gap, 2, 200)
