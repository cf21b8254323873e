import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The same search path the MicroPython runs use: the firmware (lib/), the
# simulator (tools/rbamp_sim), the dual-runtime helpers and tests.
for p in ("lib", "tools", "tests", os.path.join("tests", "support"), os.path.join("tests", "lib")):
    full = os.path.join(ROOT, p)
    if full not in sys.path:
        sys.path.insert(0, full)
