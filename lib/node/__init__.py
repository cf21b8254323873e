"""The metering node: wires rbamp + energy + store + proto from config and
runs them (asyncio in real time, node.sched.VirtualLoop in virtual time)."""
import sys

VERSION = "0.1.0"
# safe-mode button, read by boot.py before any config is loaded
SAFE_PIN = 15 if sys.platform == "rp2" else 0   # ESP32: BOOT button GPIO0
BOOT = None         # node.safe.Decision, set once by boot.py
