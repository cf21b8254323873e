"""Durable totals: glue between the energy engine (through a Source), the
journal (flash), the fast record (retained RAM) and the save policy.

Source interface (duck-typed; MeterSource adapts energy.Meter):
  state(i) -> tuple of ints      restore(i, tuple)
  energy(i) -> (imp_kwh, imp_mwh, exp_kwh, exp_mwh)
  preset(i, import_mwh, export_mwh)      reset(i)
Channels are numbered globally i = 0.. in the order of `modules`, a list of
(uid bytes or None, i2c addr, nch). Each channel has its own journal (one
small record per file keeps every save inside LittleFS's 128-byte inline
limit: one metadata commit, no data-block erase)."""
import time

from store import record
from store import rtcmem
from store.journal import Journal, key_for, _hex
from store.policy import Policy, add_age, DUE_NO, DUE_MAXAGE

# store meta counters kept in every record: boots, presets, resets, fast recoveries
M_BOOTS = 0
M_PRESETS = 1
M_RESETS = 2
M_FASTREC = 3
NMETA = 4


class MeterSource:
    """Source over energy.Meter objects: pairs[i] = (meter, ch)."""

    def __init__(self, pairs):
        self.pairs = pairs

    def state(self, i):
        m, c = self.pairs[i]
        return m.state(c)

    def restore(self, i, t):
        m, c = self.pairs[i]
        m.restore(c, t)

    def energy(self, i):
        m, c = self.pairs[i]
        return (m.import_kwh[c], m.import_mwh[c], m.export_kwh[c], m.export_mwh[c])

    def preset(self, i, imp, exp):
        m, c = self.pairs[i]
        m.preset(c, imp, exp)

    def reset(self, i):
        m, c = self.pairs[i]
        if hasattr(m, "reset"):
            m.reset(c)          # energy.Meter: energy and times back to zero
        else:
            m.preset(c, 0, 0)


def _default_ticks():
    if hasattr(time, "ticks_ms"):
        return time            # MicroPython
    from clock import Ticks    # CPython host runs
    mono = getattr(time, "monotonic")
    return Ticks(source=lambda: int(mono() * 1000))


def _unsaved(e, s):
    # mWh since commit, per direction; kWh rollovers counted without bigints
    dk = e[0] - s[0]
    di = 2000000 if dk > 1 else dk * 1000000 + e[1] - s[1]
    dk = e[2] - s[2]
    de = 2000000 if dk > 1 else dk * 1000000 + e[3] - s[3]
    return di if di > de else de


class Store:
    def __init__(self, source, modules, journal=None, fast=None, policy=None,
                 ticks=None, fast_fields=None, fast_ms=1000, audit=True, files_per_tick=0,
                 prefill=False):
        """files_per_tick > 0: a policy commit writes at most that many
        channel files per tick() and continues on the next calls (pending()
        says so), so a commit of many channels does not hold the caller's
        loop (flash erases run with interrupts off on rp2). Explicit
        commit()s (save, shutdown, power-fail, preset) stay whole.
        prefill: a channel new to the journal gets both A/B slot files at
        boot, before sampling starts (creating them later grows the
        directory inside a run-time commit: several erases in one write)."""
        self.src = source
        self.mods = modules
        self.j = journal if journal is not None else Journal()
        self.pol = policy if policy is not None else Policy()
        if ticks is None:
            ticks = _default_ticks()
        self.tk_ms = ticks.ticks_ms
        self.tk_diff = ticks.ticks_diff
        self.keys = [key_for(u, a) for (u, a, n) in modules]
        self.chans = []                      # global i -> (module index, ch)
        self.ckeys = []                      # global i -> journal key
        for m in range(len(modules)):
            for c in range(modules[m][2]):
                self.chans.append((m, c))
                self.ckeys.append("%s-%d" % (self.keys[m], c))
        n = len(self.chans)
        self.seq = [0] * n                   # per-channel journal seq
        self.meta = [[0] * NMETA for _ in modules]
        self.saved = [None] * n              # state tuple in the channel's last record
        self.saved_e = [(0, 0, 0, 0)] * n
        self.ch_age = [0] * n                # ms since the channel was last written
        self.faults = {}                     # name -> message (fs, identity...)
        self.report = []                     # boot findings, human readable
        self.audit = audit
        self.ff = fast_fields                # carried field indices, None = all
        self.fast_ms = fast_ms
        self._fidx = ()
        self._fast_be = fast if fast is not None else rtcmem.Noop()
        self.fast = rtcmem.Fast(self._fast_be, n, 0, 0)   # sized in boot()
        self.age_ms = 0
        self.dirty_ms = 0
        self.fast_age = 0
        self._prev = self.tk_ms()
        self.failing = False
        self._busy = False
        self._again = -1
        self.commits = 0
        self.files_written = 0
        self.fails = 0
        self.last_kind = -1
        self.bytes_written = 0
        self.per_tick = files_per_tick
        self.prefill = prefill
        self._todo = []                      # channels of a spread policy commit still to write
        self._todo_kind = 0
        self._todo_first = False

    # ---- boot ---------------------------------------------------------
    def _tag(self, nf):
        s = bytearray(b"\x02")              # fast record layout 2 (1-byte len and seqs)
        for k in self.ckeys:
            s.extend(k.encode())
            s.append(0)
        s.append(nf & 0xFF)
        for x in self._fidx:
            s.append(x & 0xFF)
        return rtcmem.crc16(s, 0, len(s)) & 0xFF

    def _fault(self, name, msg):
        self.faults[name] = msg

    def boot(self):
        """Recover totals into the source; returns the list of findings."""
        rep = self.report
        n = len(self.chans)
        recs = []
        try:
            self.j.ensure()
            keys = self.j.keys()
            for i in range(n):
                recs.append(self.j.load(self.ckeys[i]))
            self._identity(keys, recs)
        except OSError as e:
            recs = []
            self._fault("fs", "filesystem unusable (%s): RAM-only" % (e,))
            self.failing = True
        while len(recs) < n:
            recs.append(None)
        if self.j.corrupt:
            rep.append("journal: %d damaged record(s) skipped" % self.j.corrupt)
        for i in range(n):
            r = recs[i]
            if r is not None:
                self.seq[i] = r.seq
                mt = self.meta[self.chans[i][0]]
                for k in range(min(NMETA, len(r.meta))):
                    if r.meta[k] > mt[k]:
                        mt[k] = r.meta[k]
        for mt in self.meta:
            mt[M_BOOTS] += 1
        tuples = [(r.chan(r.chans[0][0]) if (r is not None and r.chans) else None) for r in recs]
        self._fast_setup(tuples)
        diffs = self.fast.read(self.seq)
        if diffs is None:
            if self.fast.cap:
                rep.append("no valid fast state")
        else:
            used = 0
            for i in range(n):
                if diffs[i] is None:
                    rep.append("channel %d: fast state older than flash, ignored" % i)
                elif any(diffs[i]):
                    tuples[i] = self._apply(i, tuples[i], diffs[i])
                    used += 1
            if used:
                rep.append("fast state applied")
                for mt in self.meta:
                    mt[M_FASTREC] += 1
        for i in range(n):
            r = recs[i]
            ft = r.chans[0][1] if (r is not None and r.chans) else None
            self._restore(i, tuples[i], ft)
        for i in range(n):
            r = recs[i]
            self.saved[i] = r.chans[0][1] if (r is not None and r.chans) else None
            self.saved_e[i] = self.src.energy(i) if (diffs is None and r is not None) else (0, 0, 0, 0)
        # channels recovered from the fast record go to flash right away; the
        # others are as on flash (the boot counter rides on the next commit)
        states = [self.src.state(i) for i in range(n)]
        for i in range(n):
            r = recs[i]
            moved = r is not None and r.addr != self.mods[self.chans[i][0]][1]
            if (states[i] != self.saved[i] or moved) and not self.failing:
                ok = self.commit(record.K_RECOVER, only=i, states=states)
                if ok and r is None and self.prefill and self.j.pattern == "ab":
                    self.commit(record.K_RECOVER, only=i, states=states)
        self._rebase(states)
        return rep

    def _restore(self, i, t, ft):
        """Restore t (flash tuple ft + fast deltas). The deltas must not make
        either energy direction go below the flash record (e.g. a carried mWh
        field without its kWh field across a rollover): else flash alone."""
        rep = self.report
        if t is None:
            return
        try:
            e0 = None
            if ft is not None and ft != t:
                self.src.restore(i, ft)
                e0 = self.src.energy(i)
            self.src.restore(i, t)
            if e0 is not None:
                e1 = self.src.energy(i)
                if (e1[0], e1[1]) < (e0[0], e0[1]) or (e1[2], e1[3]) < (e0[2], e0[3]):
                    raise ValueError("energy below flash record")
            return
        except Exception as e:
            err = e
        try:
            if ft is None or ft == t:
                raise err
            self.src.restore(i, ft)
            rep.append("channel %d: fast state rejected (%s), flash record used" % (i, err))
        except Exception as e2:
            rep.append("channel %d: restore failed (%s), starting from zero" % (i, e2))

    def _identity(self, keys, recs):
        rep = self.report
        mine = self.ckeys
        for i in range(len(self.chans)):
            m, c = self.chans[i]
            uid, addr, nch = self.mods[m]
            r = recs[i]
            if r is not None and r.addr != addr and c == 0:
                rep.append("module %s moved from 0x%02x to 0x%02x: totals follow it" % (self.keys[m], r.addr, addr))
        for k in keys:
            if k in mine:
                continue
            o = self.j.load(k)
            if o is None or not o.chans:
                continue
            for m in range(len(self.mods)):
                uid, addr, nch = self.mods[m]
                if uid and o.addr == addr and o.uid != uid and o.chans[0][0] < nch:
                    self._fault("identity", "0x%02x" % addr)
                    rep.append("identity mismatch at 0x%02x ch%d: now UID %s, journal %s holds UID %s; "
                               "old totals kept, not attached" % (addr, o.chans[0][0], _hex(uid), k, _hex(o.uid)))

    def _fast_setup(self, tuples):
        if self.ff is not None:
            self._fidx = tuple(self.ff)
        else:
            nf = 0
            for i in range(len(self.chans)):
                t = tuples[i]
                if t is None:
                    t = self.src.state(i)
                if len(t) > nf:
                    nf = len(t)
            self._fidx = tuple(range(nf))
        nf = len(self._fidx)
        self.fast = rtcmem.Fast(self._fast_be, len(self.chans), nf * len(self.chans), self._tag(nf))
        if self.fast.cap and self.fast.min_len() > self.fast.cap:
            # can never fit: no fast state rather than a commit every min interval
            self.report.append("fast state off: %d channels x %d fields do not fit %d bytes" % (
                len(self.chans), nf, self.fast.cap))
            self.fast = rtcmem.Fast(rtcmem.Noop(), len(self.chans), 0, 0)

    def _apply(self, i, t, d):
        base = list(t) if t is not None else list(self.src.state(i))
        fi = self._fidx
        for k in range(len(fi)):
            if fi[k] < len(base):
                base[fi[k]] += d[k]
        return tuple(base)

    # ---- run time -----------------------------------------------------
    def _load_cur(self, states):
        cur = self.fast.cur
        fi = self._fidx
        j = 0
        for t in states:
            n = len(t)
            for f in fi:
                cur[j] = t[f] if f < n else 0
                j += 1

    def tick(self, now=None):
        """Call every second (or every sample): updates the fast record every
        fast_ms and commits when the policy says so. Returns the DUE_* reason."""
        if now is None:
            now = self.tk_ms()
        dt = self.tk_diff(now, self._prev)
        self._prev = now
        if dt < 0:
            dt = 0
        self.age_ms = add_age(self.age_ms, dt)
        self.fast_age = add_age(self.fast_age, dt)
        n = len(self.chans)
        ages = self.ch_age
        for i in range(n):
            ages[i] = add_age(ages[i], dt)
        states = [self.src.state(i) for i in range(n)]
        changed = False
        worst = 0
        for i in range(n):
            if states[i] != self.saved[i]:
                changed = True
                u = _unsaved(self.src.energy(i), self.saved_e[i])
                if u > worst:
                    worst = u
        if changed:
            self.dirty_ms = add_age(self.dirty_ms, dt)
        fast = self.fast
        if fast.cap and self.fast_age >= self.fast_ms:
            self.fast_age = 0
            self._load_cur(states)
            fast.update()
        urgent = fast.cap > 0 and fast.overflows > 0 and changed
        if self._todo:
            self._continue(states)
            return DUE_NO
        why = self.pol.due(self.age_ms, self.dirty_ms, worst, changed, urgent, self.failing)
        if why != DUE_NO:
            kind = record.K_MAXAGE if why == DUE_MAXAGE else record.K_PERIODIC
            if self.per_tick > 0 and not self.failing:
                self._todo = [i for i in range(n) if self._wanted(i, kind, states, None, False)]
                self._todo_kind = kind
                self._todo_first = True
                self._continue(states)
            else:
                self.commit(kind, states=states)
        return why

    def pending(self):
        """Channel files of a spread commit still to write."""
        return len(self._todo)

    def _continue(self, states):
        k = self.per_tick
        while k > 0 and self._todo:
            i = self._todo.pop(0)
            if states[i] == self.saved[i]:
                continue                     # written meanwhile (save, shutdown)
            k -= 1
            c0 = self.commits
            if not self.commit(self._todo_kind, only=i, states=states):
                self._todo = []              # RAM-only now; the policy retries later
                return
            if self._todo_first:
                self._todo_first = False     # `commits` counts the spread commit once
            else:
                self.commits = c0

    def fast_update(self):
        """Just the fast record from the current state (no policy)."""
        states = [self.src.state(i) for i in range(len(self.chans))]
        self._load_cur(states)
        return self.fast.update()

    def _wanted(self, i, kind, states, only, force):
        if only is not None:
            return i == only
        if force:
            return True
        if states[i] == self.saved[i]:
            return False
        if kind != record.K_PERIODIC:
            return True
        # periodic: channels with new energy, or time-only changes once they
        # are older than the max interval (keeps idle channels off the flash)
        return (_unsaved(self.src.energy(i), self.saved_e[i]) > 0
                or self.ch_age[i] >= self.pol.max_ms)

    def commit(self, kind=record.K_COMMAND, event=None, only=None, force=False, states=None):
        """Write a record for each channel that needs one (`only`: that
        global channel; force: all). Returns True if all reached flash."""
        if self._busy:
            # re-entered from a scheduled callback (power-fail pin) during a
            # commit: the running commit is followed by another one
            self._again = kind
            return False
        self._busy = True
        try:
            ok = self._commit(kind, event, only, force, states)
            while self._again >= 0:
                kind = self._again
                self._again = -1
                ok = self._commit(kind, None, None, False, None) and ok
        finally:
            self._busy = False
        return ok

    def _commit(self, kind, event, only, force, states):
        n = len(self.chans)
        if states is None:
            states = [self.src.state(i) for i in range(n)]
        ok = True
        if self.failing:
            try:
                self.j.ensure()        # the medium may be back (or the dir gone)
            except OSError:
                pass
        for i in range(n):
            if not self._wanted(i, kind, states, only, force):
                continue
            m, c = self.chans[i]
            uid, addr, nch = self.mods[m]
            rec = record.Record((self.seq[i] + 1) & 0xFFFFFFFF, kind, uid or b"", addr,
                                tuple(self.meta[m]), [(c, states[i])], event if i == only else None)
            try:
                self.bytes_written += self.j.write(self.ckeys[i], rec)
            except OSError as e:
                ok = False
                self.fails += 1
                self._fault("fs", "commit failed (%s): RAM-only, retrying" % (e,))
                continue
            self.files_written += 1
            self.seq[i] = rec.seq
            self.saved[i] = states[i]
            self.saved_e[i] = self.src.energy(i)
            self.ch_age[i] = 0
        self.age_ms = 0
        if ok:
            self.failing = False
            self.faults.pop("fs", None)
            self.dirty_ms = 0
            self.commits += 1
            self.last_kind = kind
        else:
            self.failing = True
        self._rebase(states)
        return ok

    def _rebase(self, states):
        f = self.fast
        if not f.cap:
            return
        fi = self._fidx
        nf = len(fi)
        for i in range(len(self.chans)):
            t = self.saved[i]
            for k in range(nf):
                f.base[i * nf + k] = t[fi[k]] if (t is not None and fi[k] < len(t)) else 0
            f.seqs[i] = self.seq[i] & 0xFF
        f.overflows = 0
        self._load_cur(states)
        if not f.update():
            f.clear()            # an older record must not outlive its base seqs

    # ---- commands -----------------------------------------------------
    def index(self, module, ch):
        """Global channel index for module (index < 8, I2C address or UID
        bytes) and channel; ValueError if there is none."""
        for i in range(len(self.chans)):
            m, c = self.chans[i]
            uid, addr, n = self.mods[m]
            if c != ch:
                continue
            if isinstance(module, (bytes, bytearray)):
                if uid == module:
                    return i
            elif module == m if module < 0x08 else module == addr:
                return i
        raise ValueError("no such channel")

    def _event(self, i, kind, ev, apply):
        m, c = self.chans[i]
        before = self.src.state(i)
        meta0 = list(self.meta[m])
        try:
            apply()
        except ValueError as e:
            self.src.restore(i, before)
            return False, str(e)
        self.meta[m][M_PRESETS if ev[0] == record.EV_PRESET else M_RESETS] += 1
        if self.commit(kind, event=ev, only=i):
            self._audit(i, kind, ev)
            return True, "ok"
        # not durable -> not applied: roll back so RAM and flash agree
        self.src.restore(i, before)
        self.meta[m] = meta0
        return False, self.faults.get("fs", "commit failed")

    def preset(self, module, ch, import_mwh, export_mwh):
        """Set a channel's totals (e.g. to match the utility meter); applied
        only if its record reached flash. Returns (ok, message)."""
        if import_mwh < 0 or export_mwh < 0:
            return False, "negative total"
        i = self.index(module, ch)
        ev = (record.EV_PRESET, ch, (import_mwh // 1000000, import_mwh % 1000000,
                                     export_mwh // 1000000, export_mwh % 1000000))
        return self._event(i, record.K_PRESET, ev, lambda: self.src.preset(i, import_mwh, export_mwh))

    def reset(self, module, ch):
        i = self.index(module, ch)
        return self._event(i, record.K_RESET, (record.EV_RESET, ch, ()), lambda: self.src.reset(i))

    def shutdown(self):
        return self.commit(record.K_SHUTDOWN)

    def save(self):
        """Signed SAVE: a record for each channel whose state differs from
        its last record; nothing (no flash write, no commit) when none does.
        Returns (all reached flash, channels written)."""
        n = len(self.chans)
        states = [self.src.state(i) for i in range(n)]
        todo = 0
        for i in range(n):
            if states[i] != self.saved[i]:
                todo += 1
        if not todo:
            return True, 0
        before = self.files_written
        ok = self.commit(record.K_COMMAND, states=states)
        return ok, self.files_written - before

    def powerfail(self, _arg=None):
        """Commit now, ignoring the minimum interval (power-fail pin ISR via
        micropython.schedule, or a supercap early-warning)."""
        return self.commit(record.K_POWERFAIL)

    def attach_powerfail(self, pin, active_low=True):
        """Commit on the power-fail input edge (supercap boards)."""
        import machine
        import micropython

        def later(_a):
            self.powerfail()

        def isr(_p):
            micropython.schedule(later, 0)
        trig = machine.Pin.IRQ_FALLING if active_low else machine.Pin.IRQ_RISING
        pin.irq(handler=isr, trigger=trig)

    def _audit(self, i, kind, ev):
        if not self.audit:
            return
        line = "%d %s %s %s\n" % (self.seq[i], self.ckeys[i], record.KIND_NAMES[kind],
                                  " ".join(str(v) for v in ev[2]))
        p = self.j.root + "/audit.log"
        try:
            try:
                if self.j.fs.size(p) > 4096:
                    self.j.fs.rename(p, self.j.root + "/audit.old")
            except OSError:
                pass
            self.j.fs.append(p, line.encode())
        except OSError:
            pass   # the journal record already carries the event

    def status(self):
        return {
            "seq": list(self.seq), "commits": self.commits, "files": self.files_written,
            "fails": self.fails, "faults": dict(self.faults), "ram_only": self.failing,
            "fast_writes": self.fast.writes, "fast_overflows": self.fast.overflows,
            "meta": [list(x) for x in self.meta],
        }
