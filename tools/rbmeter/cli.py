"""rbmeter command line: read, stream, log and simulate rbAmp metering nodes."""
import argparse
import sys

from rbmeter import __version__


def build_parser():
    p = argparse.ArgumentParser(prog="rbmeter", description=__doc__)
    p.add_argument("--version", action="version", version="rbmeter " + __version__)
    p.add_subparsers(dest="cmd", metavar="COMMAND")
    return p


def main(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    if not args.cmd:
        p.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
