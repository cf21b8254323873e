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
    parity = {"N": None, "E": 0, "O": 1}[u["parity"]]
    if u["tx"] is None or u["rx"] is None:
        return machine.UART(u["id"], u["baud"], u["bits"], parity, u["stop"], timeout=0)
    return machine.UART(u["id"], u["baud"], u["bits"], parity, u["stop"], tx=machine.Pin(u["tx"]),
                        rx=machine.Pin(u["rx"]), timeout=0)


def wdt(ms):
    if not ms:
        return None
    return machine.WDT(timeout=ms)


def reset_cause():
    return machine.reset_cause()


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
