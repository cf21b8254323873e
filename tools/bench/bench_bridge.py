"""Benchmark of `rbmeter bridge` (docs/bridge.md): nodes per bridge process
and end-to-end latency from a node's sample to the MQTT message.

Setup: Debian's mosquitto on a loopback port (tests/support/broker.py), N
nodes on ptys, one `rbmeter bridge` subprocess reading them every --interval
(default 1 s), a paho-mqtt subscriber in this process.

Nodes: lightweight fake nodes (rbmeter.bridge_fake: the real console engine,
lib/proto, on CPython in front of an exact meter model with the module's
200 ms sample window), all served by one thread of this process -- 50
MicroPython sim nodes do not fit on 2 cores next to the bridge. Each fake
node stamps its power with the wall time of its last sample (p_mw = sample
time in ms mod 10^6), so the subscriber computes sample -> MQTT latency from
every state message. `--sim K` adds a run with K real sim nodes (`rbmeter
sim`, MicroPython unix port, --speed 60) for the CPU per real node.

CPU: utime+stime of the bridge process (/proc/PID/stat) over the measuring
window after a warm-up, as % of one core.

usage: .venv/bin/python tools/bench/bench_bridge.py [--nodes 10,50] [--interval 1]
       [--seconds 20] [--sim 5] [--quick]"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from broker import Broker, BrokerUnavailable, Subscriber   # noqa: E402
from rbmeter.bridge_fake import FakeFleet   # noqa: E402

RBMETER = os.path.join(ROOT, ".venv", "bin", "rbmeter")
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICK      # utime + stime (fields 14, 15)


def proc_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def run(ports, broker, interval, seconds, warmup, stamped, label):
    d = tempfile.mkdtemp(prefix="bench-bridge-")
    sub = StampSubscriber(broker.port, topics=("rbmeter/+/+/+/state",), client_id="bench-%d" % time.monotonic_ns())
    argv = [RBMETER, "bridge", "--mqtt", broker.url, "--interval", str(interval), "--state-dir", d,
            "--progress", "0", "--status-interval", "60"]
    for p in ports:
        argv += ["--port", p]
    br = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        time.sleep(warmup)
        n0 = len(sub.stamped())
        c0 = proc_cpu(br.pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        cpu = proc_cpu(br.pid) - c0
        wall = time.monotonic() - t0
        rss = proc_rss_mb(br.pid)
        got = sub.stamped()[n0:]
        msgs = [m for m, _ in got]
        rx = [t for _, t in got]
    finally:
        br.send_signal(signal.SIGTERM)
        err = br.communicate(timeout=60)[1]
        sub.close()
        shutil.rmtree(d, ignore_errors=True)
    lat = []
    if stamped:
        for (topic, payload, _), t_rx in zip(msgs, rx):
            p = json.loads(payload)["power_w"]
            if p is None:
                continue
            sample_mod = int(round(p * 1000))
            lat.append(((int(t_rx * 1000) - sample_mod) % 1000000) / 1000.0)
    topics = len(set(t for t, _, _ in msgs))
    res = {"label": label, "nodes": len(ports), "cpu_pct": 100.0 * cpu / wall, "rss_mb": rss,
           "msgs_per_s": len(msgs) / wall, "topics": topics, "stopped_ok": br.returncode == 0}
    if lat:
        lat.sort()
        res.update(lat_median=statistics.median(lat), lat_p95=lat[int(0.95 * (len(lat) - 1))], lat_n=len(lat))
    if br.returncode != 0:
        res["stderr"] = err[-500:]
    return res


class StampSubscriber(Subscriber):
    """Records the arrival wall time of each message too."""

    def __init__(self, *a, **kw):
        self.rx = []
        Subscriber.__init__(self, *a, **kw)

        def on_message(c, u, m):
            t = time.time()
            with self.lock:
                self.rx.append(((m.topic, m.payload.decode("utf-8", "replace"), bool(m.retain)), t))
        self.c.on_message = on_message

    def stamped(self):
        with self.lock:
            return list(self.rx)


def main(argv):
    nodes = [10, 50]
    interval = 1.0
    seconds = 20.0
    sim_k = 5
    quick = "--quick" in argv
    i = 0
    while i < len(argv):
        if argv[i] == "--nodes":
            nodes = [int(x) for x in argv[i + 1].split(",")]
            i += 1
        elif argv[i] == "--interval":
            interval = float(argv[i + 1])
            i += 1
        elif argv[i] == "--seconds":
            seconds = float(argv[i + 1])
            i += 1
        elif argv[i] == "--sim":
            sim_k = int(argv[i + 1])
            i += 1
        i += 1
    if quick:
        seconds = min(seconds, 8.0)
    tmp = tempfile.mkdtemp(prefix="bench-mq-")
    try:
        broker = Broker(os.path.join(tmp, "mq")).start()
    except BrokerUnavailable as e:
        print("SKIP: no MQTT broker (%s)" % e)
        return 0
    rows = []
    try:
        for n in nodes:
            fleet = FakeFleet(n, prefix="be%02x" % (n % 256), stamp_power=True)
            try:
                rows.append(run(fleet.paths, broker, interval, seconds, 4.0, True,
                                "fake nodes (lib/proto engine on ptys)"))
            finally:
                fleet.close()
            print_row(rows[-1], interval)
        if sim_k:
            from rbmeter import sim as S
            sims = []
            try:
                for k in range(sim_k):
                    s = S.Sim(S.SimOptions(speed=60, start_ms=43200000, window_ms=1000,
                                           board_uid="5e1ac%03x" % k))
                    s.start()
                    sims.append(s)
                for s in sims:
                    while s.state_name != "running" and not s.finished:
                        s.step(0.1)
                rows.append(run([s.console for s in sims], broker, interval, seconds, 4.0, False,
                                "MicroPython sim nodes (rbmeter sim --speed 60)"))
            finally:
                for s in sims:
                    s.close()
            print_row(rows[-1], interval)
    finally:
        broker.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\ngoals: 50 nodes < 25 % of one core at a 1 s interval; median sample->MQTT latency < 1.5 s")
    print("latency = age of the published sample at the subscriber (sample window end -> message); a sample\n"
          "taken just after a reading waits up to one --interval more for the next one")
    return 0 if all(r["stopped_ok"] for r in rows) else 1


def print_row(r, interval):
    line = "%-46s nodes %3d  interval %.1f s  bridge CPU %5.1f %% of one core  RSS %5.1f MB  %6.1f msg/s" % (
        r["label"], r["nodes"], interval, r["cpu_pct"], r["rss_mb"], r["msgs_per_s"])
    if "lat_median" in r:
        line += "  latency sample->MQTT median %.2f s  p95 %.2f s (n=%d)" % (r["lat_median"], r["lat_p95"], r["lat_n"])
    print(line, flush=True)
    if not r["stopped_ok"]:
        print("  bridge exit error: %s" % r.get("stderr"))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
