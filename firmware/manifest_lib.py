# The node's own packages (port-independent). firmware/manifest.py adds them to a
# port's frozen set; the unix + NimBLE test build includes this file after the
# unix variant's manifest. Paths are relative to this file's folder.
module("clock.py", base_path="../lib")
package("rbamp", base_path="../lib")
package("energy", base_path="../lib")
package("store", base_path="../lib")
package("proto", base_path="../lib")
package("node", base_path="../lib")
package("ble", base_path="../lib")
