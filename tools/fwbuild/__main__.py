"""python -m fwbuild rp2|rp2-stock|unix-ble|unix-ble32|mpy-cross|mpy|fsimage [--force] [--json]"""
import argparse
import json
import sys

from . import BuildError, mpy_cross, rp2_firmware, rp2_stock, unix_ble, unix_ble32


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m fwbuild", description=__doc__)
    ap.add_argument("what", choices=["rp2", "rp2-stock", "unix-ble", "unix-ble32", "mpy-cross", "mpy", "fsimage"])
    ap.add_argument("--port", default="rp2", choices=["rp2", "esp32"], help="mpy: target architecture")
    ap.add_argument("--force", action="store_true", help="rebuild even if the cache is current")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--out", help="fsimage: output path (default build/firmware/fs/rp2-lfs.bin)")
    ap.add_argument("--config", help="fsimage: config.json to put at /config.json")
    a = ap.parse_args(argv)
    try:
        if a.what in ("rp2", "rp2-stock"):
            r = (rp2_firmware if a.what == "rp2" else rp2_stock)(force=a.force)
            info = r["info"]
            line = "%s: %d B of %d B (%.1f %%), %s" % (r["bin"], info["bin_bytes"], info["budget_bytes"],
                                                     100.0 * info["bin_bytes"] / info["budget_bytes"],
                                                     "built in %.1f s" % info["seconds"] if r["built"] else "cached")
            out = {k: r[k] for k in ("elf", "bin", "uf2", "built")}
            out.update(info=info)
        elif a.what in ("unix-ble", "unix-ble32"):
            path = (unix_ble if a.what == "unix-ble" else unix_ble32)(force=a.force)
            line = path
            out = {"path": path}
        elif a.what == "mpy":
            from . import fsimage
            line = fsimage.stage(a.port)
            out = {"path": line}
        elif a.what == "mpy-cross":
            line = mpy_cross()
            out = {"path": line}
        else:
            from . import fsimage
            r = fsimage.build_image(out=a.out, config=a.config)
            line = "%s: %d files, %d of %d blocks used" % (r["image"], len(r["files"]), r["blocks_used"],
                                                           r["block_count"])
            out = r
    except BuildError as e:
        print("fwbuild: error: %s" % e, file=sys.stderr)
        return 2
    print(json.dumps(out, indent=1) if a.json else line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
