"""Safe-mode decision, made once per boot by boot.py and read by main.py:
a flag file or a held pin skips the application (REPL stays free for
repair, e.g. after a config that crashes the node at start-up)."""
import os

FLAG = "safemode"


def flag_present(root="/"):
    try:
        os.stat(root.rstrip("/") + "/" + FLAG)
        return True
    except OSError:
        return False


class Decision:
    # held by the caller (boot.py puts it into node's package namespace)
    def __init__(self, safe, why):
        self.safe = safe
        self.why = why


def decide(root="/", pin=None, pin_held=None):
    """pin_held(pin) -> bool reads the button (board.pin_held on a board)."""
    if flag_present(root):
        return Decision(True, "flag file /" + FLAG)
    if pin is not None and pin >= 0 and pin_held is not None:
        try:
            if pin_held(pin):
                return Decision(True, "pin %d held" % pin)
        except Exception:
            pass
    return Decision(False, "")
