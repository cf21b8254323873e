# Freeze manifest for the metering node (RPI_PICO, ESP32_GENERIC, ESP32_GENERIC_S3):
#   rp2:   cmake ... -DMICROPY_FROZEN_MANIFEST=<repo>/firmware/manifest.py   (see BUILD.md)
#   esp32: make BOARD=ESP32_GENERIC FROZEN_MANIFEST=<repo>/firmware/manifest.py
# Relative paths resolve against this file's folder (makemanifest chdirs here).
include("$(PORT_DIR)/boards/manifest.py")   # the port's own frozen modules (asyncio, ...)
include("manifest_lib.py")                  # our packages from lib/
# boot.py and main.py stay on the filesystem (mpremote cp), so safe mode and
# the start-up can be changed without reflashing.
