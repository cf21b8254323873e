import mptest
from clock import Ticks, PERIOD


def test_wrap_and_diff():
    t = Ticks(start=PERIOD - 100)
    a = t.ticks_ms()
    t.advance(250)
    b = t.ticks_ms()
    assert b == 150
    assert t.ticks_diff(b, a) == 250
    assert t.ticks_diff(a, b) == -250
    assert t.ticks_add(a, 250) == b
    mptest.small(t.ticks_diff(b, a))


def test_diff_matches_micropython_semantics():
    r = mptest.Rng(7)
    for _ in range(2000):
        a = r.below(PERIOD)
        d = r.range(-(PERIOD // 2) + 1, PERIOD // 2)
        b = Ticks.ticks_add(a, d)
        assert Ticks.ticks_diff(b, a) == d


def test_source_driven():
    now = [1000]
    t = Ticks(start=PERIOD - 10, source=lambda: now[0])
    assert t.ticks_ms() == PERIOD - 10
    now[0] += 30
    assert t.ticks_ms() == 20


def _diff(a, b):
    return Ticks.ticks_diff(a, b)


def test_diff_allocation_free():
    assert mptest.assert_no_alloc(_diff, 5, PERIOD - 5) == 10
