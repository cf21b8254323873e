# The metering node: wire the board from /config.json and run (returns on
# Ctrl-C with the totals saved). Skipped in safe mode. lib/node/entry.py.
import node.entry
node.entry.main()
