# Runs before main.py (the firmware's frozen boot.py hands over to this file).
# Frozen modules first on sys.path (a directory on the filesystem must never
# shadow a package). Safe mode (file /safemode or the safe pin held low at
# reset) leaves the board at the REPL without starting the meter, with the
# hardware watchdog stopped where the port can (rp2). lib/node/entry.py.
import node.entry
node.entry.boot()
