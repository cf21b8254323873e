# Frozen boot.py: runs /boot.py if the filesystem has one, else the built-in one (lib/node/entry.py)
import node.entry
node.entry.stage("boot.py")
