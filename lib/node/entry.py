"""The firmware's own boot.py and main.py (frozen: firmware/frozen/). A
frozen boot.py/main.py runs instead of the filesystem's (pyexec_file_if_exists
looks for frozen modules first), so these hand over to /boot.py and /main.py
when the filesystem has them (start-up changeable without reflashing), and
otherwise do what the repo's boot.py and main.py do: a blank or erased
filesystem still boots a node that answers on the console."""


def stage(name):
    """Run /<name> from the filesystem if it exists, else the built-in one."""
    try:
        with open("/" + name) as f:
            src = f.read()
    except OSError:
        src = None
    if src is not None:
        exec(src, {"__name__": "__main__"})
    elif name == "boot.py":
        boot()
    else:
        main()


def boot(root="/"):
    """boot.py: frozen modules first on sys.path, then the safe-mode decision
    (flag file or safe pin); in safe mode the watchdog is stopped."""
    from node import layout
    layout.fix_path()
    import node
    import node.safe
    from node import board
    node.BOOT = node.safe.decide(root, node.SAFE_PIN, board.pin_held)
    if node.BOOT.safe:
        board.wdt_release()
        print("rbmeter: safe mode (%s), app not started, watchdog not armed" % node.BOOT.why)
    return node.BOOT


def main():
    """main.py: the node, unless boot() chose safe mode."""
    import node
    if not (node.BOOT is not None and node.BOOT.safe):
        import node.app
        node.app.main()
