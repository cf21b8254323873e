"""Board wiring from the validated config (store.config): the only node
module that touches `machine`. On the unix port tools/simboard/machine.py
stands in for the built-in, so this same code runs on ESP32, RP2040 and the
laptop simulation. Pins left null in the config use the port's defaults."""
import machine


def i2c(cfg):
    c = cfg["i2c"]
    if c["scl"] is None or c["sda"] is None:
        return machine.I2C(c["id"], freq=c["freq"])
    return machine.I2C(c["id"], scl=machine.Pin(c["scl"]), sda=machine.Pin(c["sda"]), freq=c["freq"])


# the ports' default I2C pins (config i2c.scl/sda null): (scl, sda) per id
_I2C_PINS = {"rp2": ((5, 4), (7, 6)), "esp32": ((18, 19), (25, 26))}


def i2c_pins(cfg):
    """(scl, sda) GPIO numbers of the configured bus, or None if unknown."""
    c = cfg["i2c"]
    if c["scl"] is not None and c["sda"] is not None:
        return c["scl"], c["sda"]
    import sys
    d = _I2C_PINS.get(sys.platform)
    if d is None:
        f = getattr(machine, "i2c_pins", None)      # unix stand-in
        return f(c["id"]) if f is not None else None
    return d[c["id"]] if 0 <= c["id"] < len(d) else None


def bus_clear(cfg):
    """The standard bus clear (I2C spec UM10204 3.1.16) for a target that
    holds SDA low: take SCL and SDA from the I2C controller as open-drain
    GPIOs, clock SCL up to 9 times until SDA reads high, generate a STOP,
    then build the I2C controller again (which takes the pins back).
    Returns (new i2c, clocks sent, SDA released). Raises where the port
    refuses (no pins known, no open-drain mode): the caller reports it."""
    import time
    pins = i2c_pins(cfg)
    if pins is None:
        raise ValueError("i2c pins unknown on this port")
    P = machine.Pin
    scl = P(pins[0], P.OPEN_DRAIN, value=1)
    sda = P(pins[1], P.OPEN_DRAIN, value=1)
    n = 0
    while sda.value() == 0 and n < 9:
        scl.value(0)
        time.sleep_us(10)            # 50 kHz half-periods
        scl.value(1)
        time.sleep_us(10)
        n += 1
    free = sda.value() == 1
    scl.value(0)                     # STOP: SDA rises while SCL is high
    time.sleep_us(10)
    sda.value(0)
    time.sleep_us(10)
    scl.value(1)
    time.sleep_us(10)
    sda.value(1)
    time.sleep_us(10)
    return i2c(cfg), n, free


def drdy_pin(cfg):
    n = cfg.get("drdy_pin")
    if n is None:
        return None
    # open-drain line, idle high: the module needs the master's pull-up
    return machine.Pin(n, machine.Pin.IN, machine.Pin.PULL_UP)


def drdy_irq(pin, handler):
    # soft IRQ: the handler sets a ThreadSafeFlag (allowed outside hard IRQs)
    pin.irq(handler=handler, trigger=machine.Pin.IRQ_FALLING)


def uart(cfg):
    u = cfg["uart"]
    return uart_open(u["id"], u["tx"], u["rx"], u["baud"], u["bits"], u["parity"], u["stop"])


def uart_open(id, tx, rx, baud, bits=8, parity="N", stop=1):
    par = {"N": None, "E": 0, "O": 1}[parity]
    if tx is None or rx is None:
        return machine.UART(id, baud, bits, par, stop, timeout=0)
    return machine.UART(id, baud, bits, par, stop, tx=machine.Pin(tx), rx=machine.Pin(rx), timeout=0)


def uart_reinit(port, baud, bits=8, parity="N", stop=1):
    """Change rate/framing of an open UART (IEC 62056-21 mode C switch)."""
    port.init(baud, bits, {"N": None, "E": 0, "O": 1}[parity], stop, timeout=0)


def input_pin(n):
    return machine.Pin(n, machine.Pin.IN, machine.Pin.PULL_UP)


def edge_irq(pin, fn, falling=True):
    """fn() runs soon after the edge, in thread context (micropython.schedule
    from the pin IRQ: may allocate, may touch the filesystem)."""
    import micropython

    def later(_a):
        fn()

    def isr(_p):
        try:
            micropython.schedule(later, 0)
        except RuntimeError:
            pass            # schedule queue full: the next edge or tick does it
    pin.irq(handler=isr, trigger=machine.Pin.IRQ_FALLING if falling else machine.Pin.IRQ_RISING)


def wdt(ms):
    if not ms:
        return None
    return machine.WDT(timeout=ms)


_RP2_WDT_CTRL_CLR = 0x40058000 + 0x3000    # WATCHDOG CTRL, atomic bit-clear alias
_RP2_WDT_ENABLE = 1 << 30


def wdt_release():
    """Stop the hardware watchdog where the port can: machine.WDT has no
    deinit, but on RP2040 clearing CTRL.ENABLE (what pico-sdk's
    watchdog_disable() does) stops it. ESP32's task watchdog cannot be
    stopped from Python: returns False there (docs/architecture.md)."""
    import sys
    if sys.platform == "rp2":
        if "RP2350" in getattr(sys.implementation, "_machine", ""):
            return False          # other address map; not tried
        machine.mem32[_RP2_WDT_CTRL_CLR] = _RP2_WDT_ENABLE  # type: ignore
        return True
    rel = getattr(machine, "wdt_release", None)     # unix stand-in
    return bool(rel()) if rel is not None else False


def reset_cause():
    return machine.reset_cause()


def wdt_was_reset():
    """True if the watchdog reset the chip (rp2, ESP32, unix stand-in)."""
    return machine.reset_cause() == machine.WDT_RESET


def node_id():
    u = machine.unique_id()
    return "".join("%02x" % b for b in u[-4:])


def pin_held(n, level=0):
    """True if input pin n (pulled up) reads `level` (safe-mode button)."""
    if n is None or n < 0:
        return False
    return machine.Pin(n, machine.Pin.IN, machine.Pin.PULL_UP).value() == level


def reboot():
    machine.reset()
