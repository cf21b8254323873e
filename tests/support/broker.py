"""A real MQTT broker for tests: Debian's mosquitto on a free loopback port.

    b = Broker(tmp_dir)            # installs mosquitto via apt-get when missing
    b.start(); ...; b.stop(); b.start()   # a restart keeps port and persistence
    b.close()

`ensure_mosquitto()` returns the binary path or raises BrokerUnavailable with
the reason (the tests skip with it). Persistence is on (a subscriber's
persistent session and its queued QoS 1 messages survive a restart).
"""
import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time

CANDIDATES = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")


class BrokerUnavailable(Exception):
    pass


def _find():
    for p in CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    return shutil.which("mosquitto")


def ensure_mosquitto():
    path = _find()
    if path:
        return path
    if os.geteuid() != 0:
        raise BrokerUnavailable("mosquitto is not installed and apt-get needs root")
    if not shutil.which("apt-get"):
        raise BrokerUnavailable("mosquitto is not installed and there is no apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = []
    import fcntl
    lock = open(os.path.join(tempfile.gettempdir(), "rbmeter-apt-mosquitto.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)     # parallel test workers: one apt-get at a time
    path = _find()
    if path:
        return path
    for cmd in (["apt-get", "install", "-y", "--no-install-recommends", "mosquitto"],
                ["apt-get", "update"],
                ["apt-get", "install", "-y", "--no-install-recommends", "mosquitto"]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        log.append(r.stderr[-500:])
        path = _find()
        if path:
            return path
    raise BrokerUnavailable("apt-get install mosquitto failed: %s" % " | ".join(log))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_certs(d, host="127.0.0.1"):
    """A throw-away CA and a server certificate for `host` (IP SAN), with the
    openssl command line. Returns (ca.pem, server.pem, server.key)."""
    if not shutil.which("openssl"):
        raise BrokerUnavailable("openssl not found (Debian package openssl)")
    ca, cakey = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    crt, key, csr = os.path.join(d, "server.pem"), os.path.join(d, "server.key"), os.path.join(d, "server.csr")
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:%s\n" % host)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]     # fast keys
    for cmd in (["openssl", "req", "-x509"] + ec + ["-days", "2", "-subj", "/CN=rbmeter test CA",
                                                     "-keyout", cakey, "-out", ca],
                ["openssl", "req"] + ec + ["-subj", "/CN=%s" % host, "-keyout", key, "-out", csr],
                ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial", "-days", "2",
                 "-extfile", ext, "-out", crt]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise BrokerUnavailable("openssl failed: %s" % r.stderr[-300:])
    os.chmod(key, 0o644)      # mosquitto may run as another user
    return ca, crt, key


class Broker:
    def __init__(self, workdir, passwords=None, tls=False):
        """passwords: {user: password} -> authentication required (anonymous refused).
        tls: a second listener (tls_port) with a certificate from a throw-away
        CA (self.cafile); the plain listener stays for subscribers."""
        self.bin = ensure_mosquitto()
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.tls_port = None
        self.cafile = None
        self.proc = None
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        lines = ["listener %d 127.0.0.1" % self.port,
                 "persistence true",
                 "persistence_location %s/" % self.dir,
                 "autosave_interval 1",
                 "max_queued_messages 100000",
                 "log_dest file %s" % os.path.join(self.dir, "mosquitto.log"),
                 "user %s" % getpass.getuser()]
        if passwords:
            pw = os.path.join(self.dir, "passwd")
            open(pw, "w").close()
            os.chmod(pw, 0o600)
            for u, p in passwords.items():
                subprocess.run([self._passwd_bin(), "-b", pw, u, p], check=True, capture_output=True)
            lines += ["allow_anonymous false", "password_file %s" % pw]
        else:
            lines.append("allow_anonymous true")
        if tls:
            self.cafile, crt, key = make_certs(self.dir)
            self.tls_port = free_port()
            lines += ["listener %d 127.0.0.1" % self.tls_port, "cafile %s" % self.cafile,
                      "certfile %s" % crt, "keyfile %s" % key]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _passwd_bin(self):
        for p in ("/usr/bin/mosquitto_passwd", shutil.which("mosquitto_passwd") or ""):
            if p and os.access(p, os.X_OK):
                return p
        raise BrokerUnavailable("mosquitto_passwd not found")

    @property
    def url(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=10):
        self.proc = subprocess.Popen([self.bin, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise BrokerUnavailable("mosquitto exited: %s" % self.proc.stderr.read().decode()[-800:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise BrokerUnavailable("mosquitto did not listen on %d" % self.port)

    def stop(self):
        """SIGTERM: mosquitto saves its persistence file and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self):
        self.stop()


class Subscriber:
    """A real paho-mqtt subscriber recording (topic, payload str, retain) in
    arrival order. clean_session=False: a persistent session, so QoS 1
    messages published while it is away (broker restart) are delivered later."""

    def __init__(self, port, topics=("#",), client_id=None, user=None, password=None):
        import threading
        import paho.mqtt.client as mqtt
        self.msgs = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        cid = client_id or "rbmeter-test-sub-%d" % os.getpid()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False)
        if user:
            self.c.username_pw_set(user, password)
        self.topics = topics

        def on_connect(c, u, flags, rc, props=None):
            for t in self.topics:
                c.subscribe(t, qos=1)
            self.connected.set()

        def on_disconnect(c, u, flags, rc, props=None):
            self.connected.clear()

        def on_message(c, u, m):
            with self.lock:
                self.msgs.append((m.topic, m.payload.decode("utf-8", "replace"), bool(m.retain)))

        self.c.on_connect = on_connect
        self.c.on_disconnect = on_disconnect
        self.c.on_message = on_message
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect_async("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        if not self.connected.wait(10):
            raise BrokerUnavailable("subscriber could not connect to port %d" % port)

    def snapshot(self):
        with self.lock:
            return list(self.msgs)

    def wait_for(self, pred, timeout=20, poll=0.05):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = pred(self.snapshot())
            if got:
                return got
            time.sleep(poll)
        return pred(self.snapshot())

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()
