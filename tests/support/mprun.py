"""Runs tests/lib test modules on a MicroPython runtime (unix port or the
wasm32 port). Usage: run(["test_x", ...]) or `micropython mprun.py test_x`.
Prints one line per test and a closing 'N passed, N failed, N skipped'."""
import gc
import sys
import mptest

# Collect early and often: the unix port's allocator slows down a lot as a
# big heap fills between collections (long simulator runs).
try:
    gc.threshold(64 * 1024)
except AttributeError:
    pass


def run_module(name, out):
    passed = failed = skipped = 0
    try:
        mod = __import__(name)
    except Exception as e:
        out("FAIL %s: import error" % name)
        sys.print_exception(e)
        return 0, 1, 0
    names = sorted(n for n in dir(mod) if n.startswith("test_"))
    for n in names:
        fn = getattr(mod, n)
        if not callable(fn):
            continue
        try:
            fn()
        except mptest.SkipTest as e:
            skipped += 1
            out("SKIP %s.%s: %s" % (name, n, e))
        except Exception as e:
            failed += 1
            out("FAIL %s.%s" % (name, n))
            sys.print_exception(e)
        else:
            passed += 1
            out("PASS %s.%s" % (name, n))
    return passed, failed, skipped


def run(names, out=print):
    tp = tf = ts = 0
    for name in names:
        p, f, s = run_module(name, out)
        out("MODULE %s %d %d %d" % (name, p, f, s))
        tp += p
        tf += f
        ts += s
    out("runtime %s: %d passed, %d failed, %d skipped" % (mptest.RUNTIME, tp, tf, ts))
    return tf == 0


if __name__ == "__main__":
    ok = run(sys.argv[1:])
    sys.exit(0 if ok else 1)
