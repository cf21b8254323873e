"""Advertising data helpers (pure)."""


def short_name(name, node_id, room):
    """The advertisement's short name: the configured name if it fits, else
    "rb" + the end of the node id (the default name is rbmeter-<id>)."""
    b = name.encode()
    if len(b) <= room:
        return b
    if room < 3:
        return b[:room]
    return ("rb" + node_id[-(room - 2):]).encode()
