# Runs before main.py. Frozen modules first on sys.path (a directory on the
# filesystem must never shadow a package). Safe mode (file /safemode or the
# safe pin held low at reset) leaves the board at the REPL without starting
# the meter, with the hardware watchdog stopped where the port can (rp2).
import node.layout
node.layout.fix_path()
import node
import node.safe
from node import board

node.BOOT = node.safe.decide("/", node.SAFE_PIN, board.pin_held)
if node.BOOT.safe:
    # a watchdog armed before a soft reset keeps running on rp2
    board.wdt_release()
    print("rbmeter: safe mode (%s), app not started, watchdog not armed" % node.BOOT.why)
