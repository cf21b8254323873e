"""Issue 9's board-level defects on the MicroPython unix port, with the
machine stand-in (tools/simboard/machine.py, port="rp2": ids and pins are
checked as ports/rp2 does) and a real LittleFS (flashsim) where it matters:
  item 0   a journal dir on the filesystem root shadowed the frozen `store`
           package (sys.path starts with '' on rp2/ESP32): the 2nd boot died;
  item 7   the power-fail pin commits;
  item 10  pins the port rejects are a STATUS problem, the console serves;
  item 13  the watchdog is armed by main() only, released on Ctrl-C;
  item 14  IEC 62056-21 mode C on its own UART, read by the PyPI client
           through a bridge that passes bytes only while both ends use the
           same rate and framing."""
import os
import pty
import select
import subprocess
import sys
import termios
import threading
import time

import pytest

import iecread

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MP = os.path.join(ROOT, ".venv", "bin", "micropython")
PATH = [os.path.join(ROOT, p) for p in ("lib", "tools", os.path.join("tools", "simboard"))]


def _mp(code, cwd=ROOT, timeout=60, path=None):
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(path or ([".frozen"] + PATH)))
    r = subprocess.run([MP, "-X", "heapsize=4M", "-c", code], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    return r


# A board power-up as rp2 does it: LittleFS mounted at the root the imports
# see ('' first on sys.path = the flash), boot.py, then main()'s start-up.
_BOOT = r"""
import sys, os, json
sys.path[:] = ['', '.frozen'] + %(path)r      # rp2/ESP32: ['', '.frozen', '/lib']
import flashsim
from flashsim import RAMFlash
img = %(img)r
first = not os.path.exists(img) if hasattr(os, 'path') else False
try:
    os.stat(img); first = False
except OSError:
    first = True
d = RAMFlash(64, path=img)
flashsim.mount(d, '/flash', mkfs=first)
os.chdir('/flash')                 # '' is now the board's filesystem root
%(pre)s
import machine, rbamp_sim
clk = rbamp_sim.VirtualClock(0)
bus = rbamp_sim.Bus([rbamp_sim.Module(addr=0x50, variant='UI2', seed=2, uid=b'\x44' * 12,
                     profile=rbamp_sim.Profile.constant([1500.0, -800.0]))], clock=clk)
machine.attach(bus=bus, tty=%(tty)r, port='rp2')
exec(open(%(boot)r).read())        # the repo's boot.py
import node.app
from clock import Ticks
n = node.app.start(Ticks(source=clk.now_ms), root='/flash', sim=True, delay_ms=clk.advance)
from node.sched import VirtualLoop
VirtualLoop(n.sched, clk.advance).run(20000)
n.save()
ch = n.channels()
print('TOTALS', ch[0]['import_mwh'], ch[1]['export_mwh'])
print('PROBLEMS', json.dumps(n.problems))
print('FILES', json.dumps(sorted(os.listdir('/flash'))))
flashsim.umount('/flash')
d.save()
"""


def _boot(tmp_path, tty, pre=""):
    code = _BOOT % {"path": PATH, "img": str(tmp_path / "flash.img"), "tty": tty,
                    "boot": os.path.join(ROOT, "boot.py"), "pre": pre}
    return _mp(code, cwd=str(tmp_path))


def _field(out, key):
    for ln in out.splitlines():
        if ln.startswith(key + " "):
            return ln[len(key) + 1:]
    raise AssertionError("no %s in %r" % (key, out[-2000:]))


@pytest.fixture
def tty():
    m, s = pty.openpty()
    yield os.ttyname(s)
    os.close(m)
    os.close(s)


def test_second_boot_imports_store_and_keeps_totals(tmp_path, tty):
    # item 0: boots with the default config (no /config.json), twice
    outs = []
    for k in range(3):
        r = _boot(tmp_path, tty)
        assert r.returncode == 0, (k, r.stdout[-1500:], r.stderr[-1500:])
        outs.append(r)
    files = _field(outs[0].stdout, "FILES")
    assert "rbmeter.d" in files and '"store"' not in files
    t = [tuple(int(x) for x in _field(r.stdout, "TOTALS").split()) for r in outs]
    assert t[0][0] > 0 and t[1][0] > t[0][0] and t[2][0] > t[1][0], t     # totals carried over


def test_old_store_journal_migrated(tmp_path, tty):
    # firmware 0.1.0 left its journal in /store: the fixed firmware moves it
    # (before the store package is imported) and keeps the totals
    pre = r"""
from store.persist import Store, MeterSource
from store.journal import Journal
from energy import Meter
if first:
    m = Meter(2)
    m.preset(0, 7000000, 0)
    m.preset(1, 0, 3000000)
    st = Store(MeterSource([(m, 0), (m, 1)]), [(b'\x44' * 12, 0x50, 2)], journal=Journal('/flash/store'))
    st.boot()
    st.commit(force=True)
    for k in [k for k in sys.modules if k == 'store' or k.startswith('store.') or k == 'energy' or k.startswith('energy.')]:
        del sys.modules[k]
"""
    r = _boot(tmp_path, tty, pre=pre)
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-1500:])
    imp, exp = (int(x) for x in _field(r.stdout, "TOTALS").split())
    assert imp >= 7000000 and exp >= 3000000, (imp, exp)
    assert "journal moved from /store to /rbmeter.d" in _field(r.stdout, "PROBLEMS")
    files = _field(r.stdout, "FILES")
    assert '"store"' not in files and "rbmeter.d" in files


_START = r"""
import sys, json
import machine, rbamp_sim
clk = rbamp_sim.VirtualClock(0)
bus = rbamp_sim.Bus([rbamp_sim.Module(addr=0x50, variant='UI2', seed=2,
                     profile=rbamp_sim.Profile.constant([1500.0, -800.0]))], clock=clk)
machine.attach(bus=bus if %(bus)r else None, tty=%(tty)r, port='rp2', ttys=%(ttys)r)
import os
try:
    os.mkdir(%(root)r)
except OSError:
    pass
with open(%(root)r + '/config.json', 'w') as f:
    f.write(json.dumps(%(cfg)r))
import node.app
from node import board
from clock import Ticks
n = node.app.start(Ticks(source=clk.now_ms), root=%(root)r, sim=True, delay_ms=clk.advance)
from node.sched import VirtualLoop
loop = VirtualLoop(n.sched, clk.advance)
loop.run(3000)
%(then)s
"""


def _start(tmp_path, tty, cfg, then="", ttys=None, bus=True):
    code = _START % {"tty": tty, "ttys": ttys or {}, "root": str(tmp_path / "fs"), "cfg": cfg, "then": then,
                     "bus": bus}
    r = _mp(code)
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-2000:])
    return r.stdout


def test_rejected_pins_are_problems_and_console_serves(tmp_path, tty):
    # item 10: SCL GP3 and UART0 TX GP5 are refused by ports/rp2
    cfg = {"i2c": {"id": 0, "scl": 3, "sda": 4}, "uart": {"id": 0, "tx": 5, "rx": 1},
           "modules": [{"addr": 0x50}]}
    out = _start(tmp_path, tty, cfg, then="""
print('PROBLEMS', json.dumps(n.problems))
print('CONSOLE', n.console is not None, [u[:1] for u in machine.hw()['uart_log']])
print('MOD', n.modules[0].ok, n.channels()[0]['import_mwh'] > 0)
""")
    probs = _field(out, "PROBLEMS")
    assert "i2c: ValueError: bad SCL pin" in probs and "console uart: ValueError: bad TX pin" in probs
    assert "using the board default" in probs
    assert _field(out, "CONSOLE").startswith("True")
    assert _field(out, "MOD") == "True True"     # the default I2C pins found the module


def test_no_i2c_at_all_leaves_a_serving_node(tmp_path, tty):
    # neither the configured nor the default I2C can be built (the port
    # raises OSError): modules missing, problems reported, console serving
    out = _start(tmp_path, tty, {"i2c": {"id": 1, "scl": 5, "sda": 4}}, bus=False, then="""
print('STATUS', json.dumps(n.status()['faults']), json.dumps(n.problems))
print('CONSOLE', n.console is not None)
""")
    assert _field(out, "CONSOLE") == "True"
    st = _field(out, "STATUS")
    assert "0x50" in st and "bad SCL pin" in st and "i2c default: OSError" in st


def test_powerfail_pin_commits(tmp_path, tty):
    # item 7: the validated pin is wired: a falling edge commits at once
    out = _start(tmp_path, tty, {"powerfail": {"pin": 9, "active_low": True}, "modules": [{"addr": 0x50}]},
                 then="""
from store import record
st = n.store
c0 = st.commits
loop.run(1000)                   # 1 s after the last commit: inside the 5 s minimum interval
c1 = st.commits
machine.fire_irqs(9)
for _ in range(100):             # scheduled callbacks run between bytecodes
    pass
print('PF', c0 == c1, st.commits - c1, st.last_kind == record.K_POWERFAIL, n.powerfails)
""")
    assert _field(out, "PF") == "True 1 True 1"


def test_watchdog_armed_only_by_main_and_released_on_ctrl_c(tmp_path, tty):
    # item 13: start() (used by main() after boot) never arms the WDT; main()
    # arms it once the node runs; a clean Ctrl-C saves and releases it
    out = _start(tmp_path, tty, {"modules": [{"addr": 0x50}]}, then="""
print('ARMED_BY_START', machine.hw()['wdt'])
n.arm_watchdog(board.wdt(n.tm['wdt_ms']))
loop.run(5000)
c = n.store.commits
node.app.stop(n, board)
print('STOP', machine.hw()['wdt'], machine.hw()['wdt_released'], n.store.commits > c)
""")
    assert _field(out, "ARMED_BY_START") == "[]"
    assert _field(out, "STOP") == "[8000] 1 True"
    assert "watchdog released" in out


def test_safe_mode_releases_the_watchdog(tmp_path):
    code = ("import machine; machine.attach(pins={0: 0})\n"
            "exec(open('boot.py').read())\n"
            "print('REL', machine.hw()['wdt_released'], machine.hw()['wdt'])\n")
    r = _mp(code)
    assert r.returncode == 0, r.stderr
    assert "REL 1 []" in r.stdout and "watchdog not armed" in r.stdout


# ---- item 14: IEC 62056-21 mode C on its own UART ---------------------------

_SPEED = {termios.B300: 300, termios.B600: 600, termios.B1200: 1200, termios.B2400: 2400,
          termios.B4800: 4800, termios.B9600: 9600, termios.B19200: 19200}


def _framing(fd):
    a = termios.tcgetattr(fd)
    c = a[2]
    return (_SPEED.get(a[5], a[5]), 7 if c & termios.CSIZE == termios.CS7 else 8,
            "N" if not c & termios.PARENB else ("O" if c & termios.PARODD else "E"),
            2 if c & termios.CSTOPB else 1)


class RateBridge:
    """Two ptys joined like a serial line: bytes pass only while both ends
    have programmed the same baud rate (else they are lost, as a UART at the
    wrong rate would garble them). Records what each end used. Framing cannot
    be compared on a pty (Linux forces CS8 and clears PARENB on ptys): the
    node's 7E1 shows in the UART stand-in's log instead."""

    def __init__(self):
        self.nm, self.ns = pty.openpty()         # node side
        self.cm, self.cs = pty.openpty()         # client side
        self.node_path = os.ttyname(self.ns)
        self.client_path = os.ttyname(self.cs)
        self.passed = []                         # (framing, direction, nbytes)
        self.lost = 0
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop:
            r, _, _ = select.select([self.nm, self.cm], [], [], 0.02)
            for fd in r:
                try:
                    data = os.read(fd, 1024)
                except OSError:
                    continue
                a, b = _framing(self.ns), _framing(self.cs)
                if a[0] == b[0]:
                    os.write(self.cm if fd == self.nm else self.nm, data)
                    self.passed.append((a, "node>" if fd == self.nm else "client>", len(data)))
                else:
                    self.lost += len(data)

    def close(self):
        self.stop = True
        self.t.join()
        for fd in (self.nm, self.ns, self.cm, self.cs):
            os.close(fd)


def test_iec_port_mode_c_with_pypi_client(tmp_path, tty):
    br = RateBridge()
    cfg = {"modules": [{"addr": 0x50}], "iec": {"uart": {"id": 1, "tx": 8, "rx": 9}, "baud": 9600}}
    code = _START % {"tty": tty, "ttys": {1: br.node_path}, "root": str(tmp_path / "fs"), "cfg": cfg,
                     "bus": True, "then": """
import time
print('READY', n.iec is not None, json.dumps(n.problems)); sys.stdout.flush()
t0 = time.ticks_ms()
nt = n.ticks
t1 = t0
while time.ticks_diff(time.ticks_ms(), t0) < 15000 and n.iec.readouts < 1:
    n.iec.poll(nt.ticks_ms())       # the node's iec task (the sampler rests: totals as at 3 s)
    time.sleep_ms(5)
    w = time.ticks_ms()
    clk.advance(time.ticks_diff(w, t1))   # node time follows the wall clock
    t1 = w
print('UARTLOG', json.dumps([u for u in machine.hw()['uart_log'] if u[0] == 1]))
print('READOUTS', n.iec.readouts)
"""}
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([".frozen"] + PATH))
    p = subprocess.Popen([MP, "-X", "heapsize=4M", "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("READY True"), (line, p.stderr.read() if p.poll() is not None else "")
        vals = iecread.readout(br.client_path)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        br.close()
    assert vals["1-1:1.8.0"][1] == "kWh" and float(vals["1-1:1.8.0"][0]) > 0
    assert vals["1-2:2.8.0"][1] == "kWh" and float(vals["1-2:2.8.0"][0]) > 0
    # the node's IEC UART: opened at 300 7E1, 9600 after the ACK, 300 after the readout
    log = [tuple(x[1:]) for x in __import__("json").loads(_field(out, "UARTLOG"))]
    assert log == [(300, 7, 0, 1), (9600, 7, 0, 1), (300, 7, 0, 1)], log
    assert _field(out, "READOUTS") == "1"
    rates = [f[0] for f, d, n in br.passed]
    assert rates[0] == 300 and 9600 in rates                # sign-on at 300, the block at 9600
    assert all(f[0] == 9600 for f, d, n in br.passed if d == "node>" and n > 40)   # the data block
    assert br.lost == 0
