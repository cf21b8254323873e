"""Text rendering of node readings: exact kWh/W strings (integers only, no
float rounding) and the refreshing ANSI table of `rbmeter live`."""

CLEAR = "\x1b[H\x1b[2J"       # cursor home + clear screen: plain ANSI, any terminal
BOLD = "\x1b[1m"
RESET = "\x1b[0m"


def fmt_kwh(mwh):
    """Exact mWh int -> "12.345678" kWh."""
    if mwh is None:
        return "-"
    sign = "-" if mwh < 0 else ""
    k, m = divmod(abs(int(mwh)), 1000000)
    return "%s%d.%06d" % (sign, k, m)


def fmt_w(p_mw):
    """mW int -> "-1234.567" W; None (invalid channel) -> "-"."""
    if p_mw is None:
        return "-"
    sign = "-" if p_mw < 0 else ""
    w, m = divmod(abs(int(p_mw)), 1000)
    return "%s%d.%03d" % (sign, w, m)


def fmt_s(ms):
    if not ms:
        return "0"
    s, m = divmod(int(ms), 1000)
    return "%d.%03d" % (s, m)


COLS = ("module", "ch", "power W", "import kWh", "export kWh", "net kWh", "gap s")


def table_rows(channels):
    rows = []
    for c in channels:
        imp = c.get("import_mwh")
        exp = c.get("export_mwh")
        net = None if imp is None or exp is None else imp - exp
        rows.append((str(c.get("module", "")), str(c.get("ch", "")), fmt_w(c.get("p_mw")),
                     fmt_kwh(imp), fmt_kwh(exp), fmt_kwh(net), fmt_s(c.get("gap_ms", 0))))
    return rows


def render_table(channels, title="", footer="", ansi=True):
    rows = table_rows(channels)
    widths = [len(h) for h in COLS]
    for r in rows:
        for i, v in enumerate(r):
            widths[i] = max(widths[i], len(v))

    def line(vals):
        # text columns left, numbers right
        return "  ".join(v.ljust(widths[i]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(vals))

    out = []
    if ansi:
        out.append(CLEAR)
    if title:
        out.append((BOLD + title + RESET) if ansi else title)
        out.append("\n")
    out.append(line(COLS) + "\n")
    out.append("  ".join("-" * w for w in widths) + "\n")
    for r in rows:
        out.append(line(r) + "\n")
    if footer:
        out.append(footer + "\n")
    return "".join(out)
