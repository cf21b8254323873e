"""The metering node: wires rbamp + energy + store + proto from config and
runs them (asyncio in real time, node.sched.VirtualLoop in virtual time)."""
from node import profile

VERSION = "0.1.0"
# safe-mode button, read by boot.py before any config is loaded; per port
# (node.profile): ESP32 GPIO13 (GPIO0 at reset is the ROM downloader), rp2 GP15
SAFE_PIN = profile.get()["safe_pin"]
BOOT = None         # node.safe.Decision, set once by boot.py
