"""One file lock per shared cache resource, so that pytest-xdist workers and
two engineers building at once never write the same tree together."""
import contextlib
import fcntl
import os


@contextlib.contextmanager
def locked(cache, name):
    d = os.path.join(cache, "locks")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".lock"), "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
