# The metering node: wire the board from /config.json and run forever.
import node

if not (node.BOOT is not None and node.BOOT.safe):
    import node.app
    node.app.main()
