# Freeze manifest for the metering node (ESP32 and RP2040 builds):
#   make BOARD=... FROZEN_MANIFEST=<repo>/firmware/manifest.py   (see BUILD.md)
# Relative paths resolve against this file's folder (makemanifest chdirs here).
include("$(PORT_DIR)/boards/manifest.py")   # the port's own frozen modules (asyncio, ...)

module("clock.py", base_path="../lib")
package("rbamp", base_path="../lib")
package("energy", base_path="../lib")
package("store", base_path="../lib")
package("proto", base_path="../lib")
package("node", base_path="../lib")
# boot.py and main.py stay on the filesystem (mpremote cp), so safe mode and
# the start-up can be changed without reflashing.
