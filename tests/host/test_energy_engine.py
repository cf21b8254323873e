"""CPython-only property tests of the energy engine (hypothesis).

The 31-bit proof runs an instrumented twin of lib/energy/engine.py: the
module's own source, with every arithmetic result (BinOp, unary minus,
augmented assignment) wrapped in a checker, so any change to the engine's
arithmetic is covered automatically."""
import ast
import os
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings, strategies as st

import energy
from energy import Meter, fmt_kwh, fmt_wh, MAX_DT_MS, P_MAX_MW, Q_MWMS

LIM = (1 << 30) - 1
ENGINE = os.path.join(os.path.dirname(__file__), "..", "..", "lib", "energy", "engine.py")


class _Wrap(ast.NodeTransformer):
    def _chk(self, node):
        return ast.copy_location(ast.Call(ast.Name("__chk__", ast.Load()), [node], []), node)

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return self._chk(node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        return self._chk(node) if isinstance(node.op, ast.USub) else node

    def visit_AugAssign(self, node):
        # x += y  ->  x = chk(x + y)   (targets are names or subscripts)
        self.generic_visit(node)
        load = ast.parse(ast.unparse(node.target), mode="eval").body
        val = self._chk(ast.BinOp(load, node.op, node.value))
        return ast.copy_location(ast.Assign([node.target], val), node)


def _twin():
    src = open(ENGINE).read()
    tree = _Wrap().visit(ast.parse(src))
    ast.fix_missing_locations(tree)
    seen = {"max": 0, "n": 0, "armed": False}

    def chk(v):
        if seen["armed"] and isinstance(v, int):
            seen["n"] += 1
            seen["max"] = max(seen["max"], abs(v))
            assert -LIM <= v <= LIM, "intermediate out of 31-bit range: %d" % v
        return v
    ns = {"__chk__": chk, "__name__": "engine_twin"}
    exec(compile(tree, "engine_twin", "exec"), ns)
    return ns, seen


TWIN, SEEN = _twin()

p_st = st.one_of(st.integers(-P_MAX_MW, P_MAX_MW), st.sampled_from([P_MAX_MW, -P_MAX_MW, 3599, -3599, 3600, 0]))
dt_st = st.one_of(st.integers(0, MAX_DT_MS), st.just(MAX_DT_MS))
samples = st.lists(st.tuples(st.integers(0, 1), p_st, dt_st), min_size=1, max_size=300)


def _near_cap_state(draw_frac):
    return (energy.STATE_TAG, energy.KWH_MAX, 999_999, Q_MWMS - 1 - draw_frac,
            energy.KWH_MAX, 999_999 - draw_frac, Q_MWMS - 1, 999_999_999, 999, 999_999_999, 999)


@settings(max_examples=300, deadline=None)
@given(samples, st.booleans(), st.integers(0, 1000))
def test_twin_every_intermediate_is_31bit(seq, near_cap, frac):
    m = TWIN["Meter"](2)
    if near_cap:
        m.restore(0, _near_cap_state(frac))
        m.restore(1, _near_cap_state(frac))
    SEEN["armed"] = True
    try:
        for ch, p, dt in seq:
            m.add(ch, p, dt)
            m.add_gap(ch, dt)
    finally:
        SEEN["armed"] = False
    for ch in (0, 1):
        assert all(-LIM <= v <= LIM for v in m.state(ch))


def test_twin_is_live_and_worst_case_margin():
    # the checker really sees the products, and the worst case stays well inside
    SEEN["max"] = 0
    m = TWIN["Meter"](1)
    m.restore(0, _near_cap_state(0))
    SEEN["armed"] = True
    try:
        m.add(0, P_MAX_MW, MAX_DT_MS)
        m.add(0, 3599, MAX_DT_MS)
        m.add(0, -P_MAX_MW + 1, MAX_DT_MS)
    finally:
        SEEN["armed"] = False
    assert SEEN["n"] > 20
    # largest intermediates are the long counters themselves (kWh, seconds,
    # set near 1e9 here); the biggest product is a*dt = 13_888 * 20_000
    assert SEEN["max"] <= 1_000_000_000 + 60
    bad = TWIN["Meter"](1)
    bad.import_kwh[0] = LIM
    bad.import_mwh[0] = 999_999
    SEEN["armed"] = True
    try:
        raised = False
        try:
            bad.add(0, P_MAX_MW, MAX_DT_MS)
        except AssertionError:
            raised = True
        assert raised, "twin failed to flag a 2**30 carry"
    finally:
        SEEN["armed"] = False


@settings(max_examples=400, deadline=None)
@given(samples)
def test_exact_vs_fraction(seq):
    m = Meter(2)
    imp = [Fraction(0)] * 2
    exp = [Fraction(0)] * 2
    secs = [0, 0]
    for ch, p, dt in seq:
        m.add(ch, p, dt)
        e = Fraction(p * dt, Q_MWMS)       # mWh
        if p > 0:
            imp[ch] += e
        else:
            exp[ch] -= e
        secs[ch] += dt
        # the bound holds after every sample, not just at the end
        gi = imp[ch] - m.import_total_mwh(ch)
        ge = exp[ch] - m.export_total_mwh(ch)
        assert 0 <= gi < 1 and 0 <= ge < 1
        assert gi == Fraction(m.import_rem[ch], Q_MWMS) and ge == Fraction(m.export_rem[ch], Q_MWMS)
    for ch in (0, 1):
        net = m.net(ch)
        assert net[0] * 1_000_000 + net[1] == m.import_total_mwh(ch) - m.export_total_mwh(ch)
        assert abs((imp[ch] - exp[ch]) - (net[0] * 1_000_000 + net[1])) < 1
        assert m.int_time_ms(ch) == secs[ch]


@settings(max_examples=300, deadline=None)
@given(st.integers(-(10 ** 15), 10 ** 15))
def test_fmt_matches_decimal(total_mwh):
    k = int(total_mwh / 1_000_000) if total_mwh >= 0 else -((-total_mwh) // 1_000_000)
    mw = total_mwh - k * 1_000_000           # same sign as k (like Meter.net)
    want = Decimal(total_mwh) / Decimal(1_000_000)
    assert Decimal(fmt_kwh(k, mw)) == want
    assert fmt_kwh(k, mw) == ("-" if total_mwh < 0 else "") + "%d.%06d" % divmod(abs(total_mwh), 1_000_000)
    assert Decimal(fmt_wh(k, mw)) == want * 1000
    assert "e" not in fmt_wh(k, mw).lower()


@settings(max_examples=100, deadline=None)
@given(samples, samples)
def test_restore_then_continue_equals_uninterrupted(a, b):
    m1, m2 = Meter(2), Meter(2)
    for ch, p, dt in a:
        m1.add(ch, p, dt)
    for ch in (0, 1):
        m2.restore(ch, m1.state(ch))
        assert all(type(v) is int for v in m1.state(ch))
    for ch, p, dt in b:
        m1.add(ch, p, dt)
        m2.add(ch, p, dt)
    assert [m1.state(c) for c in (0, 1)] == [m2.state(c) for c in (0, 1)]
