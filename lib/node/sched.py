"""Time-ordered running of components.

A component is any object with poll(now) -> next due (ticks_ms value).
The same components run either in virtual time (VirtualLoop: the clock
jumps to the earliest due time, as fast as possible) or in real time
(run_asyncio: one asyncio task per component). Exceptions never escape a
component: they are counted, remembered for STATUS and the component is
restarted after a back-off."""
try:
    from micropython import const
except ImportError:
    def const(__x):
        return __x

BACKOFF_MS = const(1000)      # retry delay after a failed poll
_NAME_MAX = const(40)


class Slot:
    """A component plus its bookkeeping (errors, due time)."""

    def __init__(self, name, comp):
        self.name = name
        self.comp = comp
        self.due = None          # None = run at the next opportunity
        self.errors = 0
        self.restarts = 0
        self.last_error = ""
        self.runs = 0

    def run(self, ticks, now):
        try:
            due = self.comp.poll(now)
            self.runs += 1
        except Exception as e:   # a broken task must not stop the node
            self.errors += 1
            msg = "%s: %s" % (type(e).__name__, e)
            self.last_error = msg[:_NAME_MAX]
            due = ticks.ticks_add(now, BACKOFF_MS)
            restart = getattr(self.comp, "restart", None)
            if restart is not None:
                try:
                    restart()
                    self.restarts += 1
                except Exception:
                    self.errors += 1
        if due is None:
            due = ticks.ticks_add(now, BACKOFF_MS)
        self.due = due
        return due


class Scheduler:
    def __init__(self, ticks):
        self.ticks = ticks
        self.slots = []

    def add(self, name, comp):
        s = Slot(name, comp)
        self.slots.append(s)
        return s

    def slot(self, name):
        for s in self.slots:
            if s.name == name:
                return s
        return None

    def errors(self):
        n = 0
        for s in self.slots:
            n += s.errors
        return n

    def earliest(self, now):
        """(slot, ms until due) of the slot due first; ms <= 0 when overdue."""
        best = None
        bd = 0
        diff = self.ticks.ticks_diff
        slots = self.slots
        n = len(slots)
        i = 0
        while i < n:
            s = slots[i]
            due = s.due
            d = 0 if due is None else diff(due, now)
            if best is None or d < bd:
                best = s
                bd = d
            i += 1
        return best, bd


class VirtualLoop:
    """Runs a Scheduler's components in time order on a virtual clock.

    advance(ms) moves the clock behind `ticks` forward (e.g. the simulator's
    VirtualClock.advance); hooks(now) (optional) runs after every step (the
    host side: console pumping, cut checks) and may return True to stop."""

    def __init__(self, sched, advance, hook=None):
        self.sched = sched
        self.advance = advance
        self.hook = hook
        self.steps = 0

    def run(self, ms, max_step_ms=0):
        """Advance virtual time by `ms`, running everything due on the way.
        max_step_ms > 0 caps each jump so the hook sees time pass.
        Returns False if the hook asked to stop early."""
        ticks = self.sched.ticks
        left = ms
        while True:
            now = ticks.ticks_ms()
            s, d = self.sched.earliest(now)
            if s is not None and d <= 0:
                s.run(ticks, now)
                self.steps += 1
                continue
            if left <= 0:
                return True
            step = left if (s is None or d > left) else d
            if 0 < max_step_ms < step:
                step = max_step_ms
            self.advance(step)
            left -= step
            if self.hook is not None and self.hook(ticks.ticks_ms()):
                return False


async def _task(slot, ticks, sleep_ms, wake):
    while True:
        now = ticks.ticks_ms()
        due = slot.run(ticks, now)
        d = ticks.ticks_diff(due, ticks.ticks_ms())
        if wake is not None and d > 0:
            try:
                await wake(slot, d)
            except Exception as e:     # a broken waker must not end the task
                slot.errors += 1
                slot.last_error = ("wake %s" % (e,))[:_NAME_MAX]
                await sleep_ms(d)
        else:
            await sleep_ms(d if d > 0 else 0)


def run_asyncio(sched, extra=None, wake=None):
    """Real time: one asyncio task per component (never returns on a board).
    extra: optional list of further coroutines (e.g. a DRDY waiter).
    wake(slot, ms): optional coroutine used instead of sleep_ms so that a
    component can be woken early (UART input, DRDY)."""
    import asyncio

    async def main():
        tasks = []
        for s in sched.slots:
            tasks.append(asyncio.create_task(_task(s, sched.ticks, asyncio.sleep_ms, wake)))
        if extra:
            for c in extra:
                tasks.append(asyncio.create_task(c))
        for t in tasks:
            await t

    asyncio.run(main())
