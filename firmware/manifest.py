# Freeze manifest for the metering node (RPI_PICO, ESP32_GENERIC, ESP32_GENERIC_S3):
#   rp2:   cmake ... -DMICROPY_FROZEN_MANIFEST=<repo>/firmware/manifest.py   (see BUILD.md)
#   esp32: make BOARD=ESP32_GENERIC FROZEN_MANIFEST=<repo>/firmware/manifest.py
# Relative paths resolve against this file's folder (makemanifest chdirs here).
include("$(PORT_DIR)/boards/manifest.py")   # the port's own frozen modules (asyncio, ...)
include("manifest_lib.py")                  # our packages from lib/
# Frozen boot.py/main.py (they run instead of the filesystem's): each runs
# /boot.py or /main.py when the filesystem has one (mpremote cp: the start-up
# stays changeable without reflashing), else the built-in start-up
# (lib/node/entry.py), so a blank or erased filesystem still boots the node.
module("boot.py", base_path="frozen")
module("main.py", base_path="frozen")
