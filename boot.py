# Runs before main.py. Safe mode (file /safemode or the safe pin held low at
# reset) leaves the board at the REPL without starting the meter.
import node
import node.safe
from node import board

node.BOOT = node.safe.decide("/", node.SAFE_PIN, board.pin_held)
if node.BOOT.safe:
    print("rbmeter: safe mode (%s), app not started" % node.BOOT.why)
