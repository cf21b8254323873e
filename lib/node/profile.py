"""Board profiles: the defaults that depend on the port, chosen by
sys.platform. They keep the REPL usable and avoid boot-strapping pins:
  - ESP32: UART0 is the REPL/mpremote UART, so the console is UART2 on
    GPIO17 (TX) / GPIO16 (RX); GPIO0 (and 2, 5, 12, 15) are strapping pins,
    GPIO0 held low at reset starts the ROM downloader before boot.py runs,
    so the safe-mode button is GPIO13 (a plain GPIO on ESP32 and ESP32-S3).
  - rp2: the REPL is USB CDC; the console is UART0 on GP0 (TX) / GP1 (RX)
    (the port's default pins), safe-mode button GP15.
  - anything else (unix, wasm): the stand-ins (tools/simboard: UART 0 is
    the pty, pin 0 the safe button).
Config values in /config.json always win over these (store.config)."""
import sys

PROFILES = {
    "esp32": {"uart.id": 2, "uart.tx": 17, "uart.rx": 16, "safe_pin": 13},
    "rp2": {"uart.id": 0, "uart.tx": 0, "uart.rx": 1, "safe_pin": 15},
}
_NONE = {"safe_pin": 0}


def get(platform=None):
    """The profile dict of `platform` (default: this port)."""
    return PROFILES.get(sys.platform if platform is None else platform, _NONE)


def config_defaults(platform=None):
    """The dotted config keys of the profile (for store.config.defaults)."""
    p = get(platform)
    out = {}
    for k in p:
        if "." in k:
            out[k] = p[k]
    return out
