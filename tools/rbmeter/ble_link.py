"""A virtual BLE radio for the sim node: Bumble controllers on one link.

The node's controller speaks H4 on a pty (the NimBLE unix build opens it as
$MICROPYBTUART); centrals are Bumble devices on further controllers of the
same link, in this process (tests) or behind a transport another process
opens with `--ble-hci` (a person trying rbmeter without hardware):

    python -m rbmeter.ble_link --hci tcp-server:127.0.0.1:9001 -- --duration 600
      (starts `rbmeter sim --ble-hci-uart <pty> --duration 600` on the link; then
       rbmeter info --ble-hci tcp-client:127.0.0.1:9001 --ble rbmeter-5e1a0001)

RoutingLink: Bumble's LocalLink stamps LE data with the sender's random
address, so a peripheral advertising its public address (what the node does:
the address must stay the same across reboots) would lose its ATT traffic.
This link routes LE data by the connection's own address (toolchain notes §12)."""
import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading

from rbmeter.ble import Loop


def routing_link():
    from bumble.core import PhysicalTransport
    from bumble.link import LocalLink

    class RoutingLink(LocalLink):
        def send_acl_data(self, sender_controller, destination_address, transport, data):
            if transport != PhysicalTransport.LE:
                return super().send_acl_data(sender_controller, destination_address, transport, data)
            dest = self.find_le_controller(destination_address)
            conn = sender_controller.le_connections.get(destination_address)
            src = getattr(conn, "self_address", None) or sender_controller.random_address
            if dest is not None:
                asyncio.get_running_loop().call_soon(lambda: dest.on_link_acl_data(src, transport, data))

    return RoutingLink()


NODE_ADDR = "F0:F0:F0:F0:F0:F1"


class Radio:
    """The link, the node's controller on a pty and any number of centrals,
    all on a private event loop (thread)."""

    def __init__(self, node_addr=NODE_ADDR, pty_link=None):
        self.loop = Loop()
        self.tmp = None
        if pty_link is None:
            self.tmp = tempfile.mkdtemp(prefix="rbm-ble-")
            pty_link = os.path.join(self.tmp, "hci")
        self.pty_link = pty_link
        self.node_addr = node_addr
        self.transports = []
        self.controllers = []
        self.loop.run(self._setup(), 30)
        self.node_tty = os.path.realpath(pty_link)
        self._n = 1

    async def _setup(self):
        from bumble.controller import Controller
        from bumble.transport import open_transport
        self.link = routing_link()
        t = await open_transport("pty:" + self.pty_link)
        self.transports.append(t)
        self.node_ctrl = Controller("node", host_source=t.source, host_sink=t.sink, link=self.link,
                                    public_address=self.node_addr)

    def drop_node_controller(self):
        """The node's controller goes away (its HCI pty is closed): a dead
        external controller, as far as the node can tell."""
        async def run():
            self.link.remove_controller(self.node_ctrl)
            t = self.transports.pop(0)
            await t.close()
        self.loop.run(run(), 10)

    def new_node_controller(self):
        """A fresh controller for the node on a new pty at the same path
        (same public address), as after replacing a dongle."""
        async def run():
            from bumble.controller import Controller
            from bumble.transport import open_transport
            if os.path.lexists(self.pty_link):
                os.unlink(self.pty_link)
            t = await open_transport("pty:" + self.pty_link)
            self.transports.insert(0, t)
            self.node_ctrl = Controller("node", host_source=t.source, host_sink=t.sink, link=self.link,
                                        public_address=self.node_addr)
        self.loop.run(run(), 10)
        self.node_tty = os.path.realpath(self.pty_link)

    def central(self, addr=None):
        """A powered Bumble Device on a new controller of the link."""
        self._n += 1
        addr = addr or "F0:F0:F0:F0:F1:%02X" % self._n
        return self.loop.run(self._central(addr, self._n), 30)

    async def _central(self, addr, n):
        from bumble.controller import Controller
        from bumble.device import Device
        from bumble.hci import Address
        from bumble.host import Host
        from bumble.transport.common import AsyncPipeSink
        c = Controller("c%d" % n, link=self.link, public_address=addr)
        self.controllers.append(c)
        dev = Device(address=Address(addr), host=Host(c, AsyncPipeSink(c)))
        await dev.power_on()
        return dev

    def serve(self, spec, addr=None):
        """A controller of the link exposed on a Bumble transport (e.g.
        tcp-server:127.0.0.1:9001) for `rbmeter ... --ble-hci`."""
        self._n += 1
        addr = addr or "F0:F0:F0:F0:F2:%02X" % self._n
        return self.loop.run(self._serve(spec, addr, self._n), 30)

    async def _serve(self, spec, addr, n):
        from bumble.controller import Controller
        from bumble.transport import open_transport
        t = await open_transport(spec)
        self.transports.append(t)
        c = Controller("h%d" % n, host_source=t.source, host_sink=t.sink, link=self.link, public_address=addr)
        self.controllers.append(c)
        return c

    def close(self):
        async def _close():
            for t in self.transports:
                try:
                    await t.close()
                except Exception:
                    pass
        try:
            self.loop.run(_close(), 5)
        except Exception:
            pass
        self.loop.stop()
        if self.tmp:
            import shutil
            shutil.rmtree(self.tmp, ignore_errors=True)


def ble_micropython():
    """The unix port with NimBLE, built from the firmware's source (make
    firmware-ble; cached outside the clone)."""
    import fwbuild
    return fwbuild.unix_ble()


class BleNode:
    """simnode.py on the NimBLE unix build with BLE enabled, its HCI UART on
    the radio's pty and its console on a PtyBridge (tests, benchmarks).
    config: extra /config.json content (dict); reboot-safe: start() again
    on the same state after a REBOOT or stop()."""

    def __init__(self, radio, state, config=None, args=(), micropython=None, heap="4M", ble=True):
        self.radio = radio
        self.state = state
        self.config = config or {}
        self.args = list(args)
        self.mp = micropython or ble_micropython()
        self.heap = heap
        self.ble = ble            # False: the same build and node with BLE off (heap baselines)
        self.proc = None
        self.bridge = None
        self.lines = []
        self.boots = 0

    def start(self, timeout=60):
        import json
        import queue
        from rbmeter.ptybridge import PtyBridge
        from rbmeter.sim import node_env, ROOT
        if self.bridge is not None:
            self.bridge.close()           # a fresh console per power-up
        self.bridge = PtyBridge()
        cfgp = os.path.join(self.state, "provision.json")
        with open(cfgp, "w") as f:
            json.dump(self.config, f)
        env = node_env()
        env["MICROPYBTUART"] = self.radio.pty_link    # the link: a replaced controller is found again
        argv = [self.mp, "-X", "heapsize=" + self.heap, os.path.join(ROOT, "tools", "simboard", "simnode.py"),
                "--tty", self.bridge.node_path, "--state", self.state] + (["--ble"] if self.ble else []) + self.args
        if not self.boots:
            argv += ["--config", cfgp]        # factory provisioning: first power-up only
        self.boots += 1
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        q = queue.Queue()

        def reader(proc=self.proc):
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                self.lines.append(line)
                q.put(line)
            q.put(None)
        threading.Thread(target=reader, daemon=True).start()
        import time
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = q.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith("READY"):
                return self
        raise RuntimeError("BLE node did not start: %s" % "\n".join(self.lines[-30:]))

    @property
    def console(self):
        return self.bridge.host_path

    def wait_exit(self, timeout=10):
        return self.proc.wait(timeout)

    def stop(self, timeout=10):
        from rbmeter.sim import stop_node
        if self.proc is not None:
            stop_node(self.proc, timeout)
        return self.proc.returncode if self.proc else None

    def close(self):
        self.stop()
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m rbmeter.ble_link",
                                description="Virtual BLE radio: runs `rbmeter sim --ble-hci-uart <pty>` on a "
                                            "Bumble link and serves a second controller for --ble-hci.")
    p.add_argument("--hci", default="tcp-server:127.0.0.1:9001",
                   help="transport of the controller for rbmeter --ble-hci (default tcp-server:127.0.0.1:9001; "
                        "connect with tcp-client:127.0.0.1:9001)")
    p.add_argument("sim_args", nargs="*", help="further `rbmeter sim` options (after --)")
    a = p.parse_args(argv)
    radio = Radio()
    radio.serve(a.hci)
    client_spec = a.hci.replace("tcp-server:", "tcp-client:").replace("_:", "127.0.0.1:")
    print("node HCI pty: %s" % radio.node_tty, flush=True)
    print("try: rbmeter scan --ble-hci %s" % client_spec, flush=True)
    print("     rbmeter totals --ble-hci %s --ble rbmeter-5e1a0001" % client_spec, flush=True)
    cmd = [sys.executable, "-m", "rbmeter", "sim", "--ble-hci-uart", radio.node_tty] + a.sim_args
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()
    finally:
        radio.close()


if __name__ == "__main__":
    sys.exit(main())
