"""The MQTT side of `rbmeter bridge`: one paho-mqtt connection per node, with
the node's availability topic as its last will (docs/bridge.md)."""
import collections
import threading

from rbmeter.bridge_store import safe_name

WINDOW = 16                 # unacknowledged messages per node connection


def node_topic(node_id, leaf):
    return "rbmeter/%s/%s" % (node_id, leaf)


class Link:
    """paho client of one node. Callbacks only record events (paho calls
    on_publish with its own lock held); the node worker does the rest."""

    def __init__(self, s, node_id, log):
        import paho.mqtt.client as mqtt
        self.mqtt = mqtt
        self.s = s
        self.node_id = node_id
        self.log = log
        self.avail_topic = node_topic(node_id, "availability")
        self.acks = collections.deque()
        self.wake = threading.Event()
        self.connected = False
        self.connects = 0
        self.fatal = None
        self.last_error = None
        self.ha_birth = False
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rbmeter-bridge-" + safe_name(node_id),
                        clean_session=True, protocol=mqtt.MQTTv311)
        c.will_set(self.avail_topic, "offline", qos=1, retain=True)
        if s.user:
            c.username_pw_set(s.user, s.password)
        if s.tls:
            c.tls_set(ca_certs=s.cafile)
        c.max_inflight_messages_set(WINDOW + 4)
        c.reconnect_delay_set(1, 60)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_connect_fail = self._on_connect_fail
        c.on_message = self._on_message
        self.c = c
        c.connect_async(s.host, s.mqtt_port, keepalive=30)
        c.loop_start()

    def _on_connect(self, c, userdata, flags, rc, props=None):
        if rc.is_failure:
            self.last_error = "broker refused the connection: %s" % rc
            if rc.value in (4, 5, 0x86, 0x87, 134, 135):   # bad user/password, not authorized
                self.fatal = self.last_error
            self.wake.set()
            return
        self.connected = True
        self.connects += 1
        self.last_error = None
        c.subscribe(self.s.prefix + "/status", qos=1)
        self.wake.set()

    def _on_disconnect(self, c, userdata, flags, rc, props=None):
        if self.connected:
            self.last_error = "connection to the broker lost (%s)" % rc
        self.connected = False
        self.wake.set()

    def _on_connect_fail(self, c, userdata):
        self.last_error = "cannot reach MQTT broker %s:%d" % (self.s.host, self.s.mqtt_port)
        self.wake.set()

    def _on_publish(self, c, userdata, mid, rc=None, props=None):
        self.acks.append(mid)
        self.wake.set()

    def _on_message(self, c, userdata, msg):
        # Home Assistant restarted: send the discovery configs again
        if msg.payload == b"online":
            self.ha_birth = True
            self.wake.set()

    def publish(self, topic, payload, retain=True):
        return self.c.publish(topic, payload, qos=1, retain=retain)

    def close(self, offline=True, wait=2.0):
        if offline and self.connected:
            try:
                info = self.c.publish(self.avail_topic, "offline", qos=1, retain=True)
                info.wait_for_publish(wait)
            except (RuntimeError, ValueError):
                pass
        self.c.disconnect()
        self.c.loop_stop()
