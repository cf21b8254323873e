"""machine-module shim for running the node on the MicroPython unix port.

Shadows the built-in `machine` (put tools/simboard on MICROPYPATH). The
launcher (simnode.py) calls attach(...) with the simulated hardware before
the node starts; the node then uses the same calls as on a board:
I2C (-> rbamp_sim.Bus), Pin (DRDY from the simulator), UART (-> a tty),
RTC/WDT (RAM only: lost at a simulated power cut, like on the board)."""
import sys

_hw = {}        # filled by attach(); the shim is the one place with global state

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def attach(bus=None, tty=None, drdy_pin=None, drdy=None, reset_cause=PWRON_RESET,
           pins=None, uid=b"\x5e\x1a\x00\x01", on_reset=None, ttys=None, port=None):
    """bus: rbamp_sim.Bus; tty: console device path; drdy_pin: pin number of
    the DRDY line; drdy(): current DRDY level from the simulator; pins:
    {pin: level} for plain inputs (e.g. a held safe-mode pin); ttys: {UART
    id: tty path} for further UARTs; port="rp2": check I2C/UART ids and pins
    as the rp2 port does (ValueError "bad SCL pin", "UART(3) doesn't exist")."""
    _hw.clear()
    _hw["ttys"] = ttys or {}
    _hw["port"] = port
    _hw["uart_log"] = []          # (id, baud, bits, parity, stop) per (re)init, in order
    _hw["wdt"] = []               # timeouts armed
    _hw["wdt_released"] = 0
    _hw["bus"] = bus
    _hw["tty"] = tty
    _hw["drdy_pin"] = drdy_pin
    _hw["drdy"] = drdy
    _hw["cause"] = reset_cause
    _hw["pins"] = pins or {}
    _hw["uid"] = uid
    _hw["on_reset"] = on_reset
    _hw["irqs"] = []
    _hw["wdt_feeds"] = 0
    _hw["rtc_mem"] = b""
    _hw["wedge"] = 0              # > 0: a target holds SDA low until this many SCL clocks
    _hw["i2c_pins"] = None        # (scl, sda) of the last I2C built
    _hw["i2c_builds"] = 0
    _hw["scl_clocks"] = 0         # SCL rising edges driven as a GPIO


def i2c_pins(id):
    """The default (scl, sda) of I2C(id), as on rp2 (node.board.i2c_pins)."""
    return ((5, 4), (7, 6))[id]


def wedge(clocks=9):
    """A target starts holding SDA low (a reset mid-byte): every transfer
    times out (ETIMEDOUT, as the rp2/ESP32 drivers report a held bus) and
    SDA reads low until SCL is clocked `clocks` times through Pin."""
    _hw["wedge"] = clocks


def hw():
    return _hw


def reset_cause():
    return _hw.get("cause", PWRON_RESET)


def unique_id():
    return _hw.get("uid", b"\x00\x00\x00\x00")


def freq(*a):
    return 240000000


def idle():
    pass


def reset():
    cb = _hw.get("on_reset")
    if cb is not None:
        cb()
    sys.exit(98)


def soft_reset():
    reset()


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self._v = 1 if value is None else value
        self._handler = None

    def value(self, v=None):
        pins = _hw.get("i2c_pins")
        if v is not None:
            if pins is not None and self.id == pins[0] and v and not self._v:
                _hw["scl_clocks"] = _hw.get("scl_clocks", 0) + 1
                if _hw.get("wedge", 0) > 0:
                    _hw["wedge"] -= 1          # the target shifts one bit out
            self._v = v
            return None
        if pins is not None and self.id == pins[1] and _hw.get("wedge", 0) > 0:
            return 0
        if self.id == _hw.get("drdy_pin") and _hw.get("drdy") is not None:
            return _hw["drdy"]()
        pins = _hw.get("pins", {})
        if self.id in pins:
            return pins[self.id]
        return self._v

    def __call__(self, v=None):
        return self.value(v)

    def irq(self, handler=None, trigger=IRQ_FALLING, hard=False):
        # the launcher calls fire_irqs() when the simulator pulsed DRDY
        self._handler = handler
        if handler is not None and self not in _hw["irqs"]:
            _hw["irqs"].append(self)
        return None


def fire_irqs(pin_id):
    for p in _hw.get("irqs", ()):
        if p.id == pin_id and p._handler is not None:
            p._handler(p)


def _pin_no(p):
    return p if p is None or isinstance(p, int) else p.id


def _rp2_check_i2c(id, scl, sda):
    # ports/rp2/machine_i2c.c + machine_i2c.h IS_VALID_SCL/SDA
    if id not in (0, 1):
        raise ValueError("I2C(%d) doesn't exist" % id)
    if scl is not None and not (scl & 1 == 1 and (scl & 2) >> 1 == id):
        raise ValueError("bad SCL pin")
    if sda is not None and not (sda & 1 == 0 and (sda & 2) >> 1 == id):
        raise ValueError("bad SDA pin")


def _rp2_check_uart(id, tx, rx):
    # ports/rp2/machine_uart.c IS_VALID_TX/RX (RP2040)
    if id not in (0, 1):
        raise ValueError("UART(%d) doesn't exist" % id)
    if tx is not None and not (tx & 3 == 0 and ((tx + 4) & 8) >> 3 == id):
        raise ValueError("bad TX pin")
    if rx is not None and not (rx & 3 == 1 and ((rx + 4) & 8) >> 3 == id):
        raise ValueError("bad RX pin")


def wdt_release():
    """What node.board.wdt_release() does on rp2 (CTRL.ENABLE cleared)."""
    _hw["wdt_released"] = _hw.get("wdt_released", 0) + 1
    return True


class I2C:
    def __init__(self, id=0, scl=None, sda=None, freq=400000, timeout=50000):
        if _hw.get("port") == "rp2":
            _rp2_check_i2c(id, _pin_no(scl), _pin_no(sda))
        self.bus = _hw.get("bus")
        if self.bus is None:
            raise OSError(19)
        _hw["i2c_pins"] = (_pin_no(scl), _pin_no(sda)) if scl is not None else i2c_pins(id)
        _hw["i2c_builds"] = _hw.get("i2c_builds", 0) + 1
        self.freq = freq
        if hasattr(self.bus, "freq"):
            try:
                self.bus.freq = freq
            except Exception:
                pass

    def _held(self):
        if _hw.get("wedge", 0) > 0:
            raise OSError(110)         # ETIMEDOUT: the controller never gets the bus

    def scan(self):
        if _hw.get("wedge", 0) > 0:
            return []
        return self.bus.scan()

    def readfrom_mem_into(self, addr, reg, buf, addrsize=8):
        self._held()
        return self.bus.readfrom_mem_into(addr, reg, buf)

    def readfrom_mem(self, addr, reg, n, addrsize=8):
        self._held()
        return self.bus.readfrom_mem(addr, reg, n)

    def writeto_mem(self, addr, reg, buf, addrsize=8):
        self._held()
        return self.bus.writeto_mem(addr, reg, buf)

    def readfrom_into(self, addr, buf, stop=True):
        self._held()
        return self.bus.readfrom_into(addr, buf)

    def readfrom(self, addr, n, stop=True):
        self._held()
        buf = bytearray(n)
        self.bus.readfrom_into(addr, buf)
        return bytes(buf)

    def writeto(self, addr, buf, stop=True):
        self._held()
        return self.bus.writeto(addr, buf)


SoftI2C = I2C


# Linux termios values (the unix port's termios module has few constants)
_LINUX_B = {300: 0o7, 600: 0o10, 1200: 0o11, 2400: 0o13, 4800: 0o14, 9600: 0o15, 19200: 0o16,
            38400: 0o17, 57600: 0o10001, 115200: 0o10002}


class UART:
    """The console over a tty path (raw mode, non-blocking via select.poll;
    never flush() a tty on the unix port: EINVAL)."""

    def __init__(self, id=1, baudrate=115200, bits=8, parity=None, stop=1, tx=None, rx=None, **kw):
        import select
        import termios
        if _hw.get("port") == "rp2":
            _rp2_check_uart(id, _pin_no(tx), _pin_no(rx))
        path = _hw.get("ttys", {}).get(id) or (_hw.get("tty") if id not in _hw.get("ttys", {}) else None)
        if not path:
            raise OSError(19)
        self.id = id
        self._f = open(path, "r+b")
        fd = self._f.fileno()
        termios.setraw(fd)
        # VMIN=0/VTIME=0: read() returns what is buffered instead of waiting
        # for the whole buffer (the unix port's stream read fills it otherwise)
        a = termios.tcgetattr(fd)
        a[6][6] = 0
        a[6][5] = 0
        termios.tcsetattr(fd, termios.TCSANOW, a)
        self._p = select.poll()
        self._p.register(self._f, select.POLLIN)
        self.baudrate = baudrate
        self.init(baudrate, bits, parity, stop)

    def init(self, baudrate=115200, bits=8, parity=None, stop=1, **kw):
        """Re-program rate and framing: recorded in hw()["uart_log"]; the
        speed is set on the tty, so a bridge can pass bytes only while both
        ends agree, as a real line does. Framing stays in the log only: Linux
        forces CS8 without parity on a pty, and the unix port's tcsetattr
        (an uninitialised struct termios) then fails with EINVAL on a pty
        that an earlier process had set up (seen after every power cut)."""
        import termios
        _hw.setdefault("uart_log", []).append((self.id, baudrate, bits, parity, stop))
        self.baudrate = baudrate
        spd = _LINUX_B.get(baudrate)
        if spd is None:
            return
        fd = self._f.fileno()
        a = termios.tcgetattr(fd)
        if a[4] == spd and a[5] == spd:
            return
        a[4] = spd
        a[5] = spd
        termios.tcsetattr(fd, termios.TCSANOW, a)

    def txdone(self):
        return True

    def any(self):
        return 1 if self._p.poll(0) else 0

    def read(self, n=-1):
        if not self._p.poll(0):
            return None
        # raw tty: read() returns what is there (at most 256 per call here)
        return self._f.read(256 if n is None or n < 0 else n)

    def readinto(self, buf):
        if not self._p.poll(0):
            return None
        return self._f.readinto(buf)

    def write(self, b):
        return self._f.write(b)

    def stream(self):
        # for asyncio.StreamReader: the tty file itself (select.poll-able)
        return self._f

    def fileno(self):
        return self._f.fileno()

    def wait(self, ms):
        """Block up to ms for input (the sim's stand-in for a UART IRQ)."""
        return 1 if self._p.poll(ms) else 0

    def deinit(self):
        self._f.close()


class RTC:
    def __init__(self, id=0):
        pass

    def memory(self, data=None):
        if data is None:
            return _hw.get("rtc_mem", b"")
        _hw["rtc_mem"] = bytes(data)
        return None

    def datetime(self, dt=None):
        return (2026, 1, 1, 3, 0, 0, 0, 0)


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        _hw.setdefault("wdt", []).append(timeout)

    def feed(self):
        _hw["wdt_feeds"] = _hw.get("wdt_feeds", 0) + 1
