"""MQTT (paho-mqtt 2.x): segment events, per-source state and totals, and the run's availability.

Imported only when `--mqtt` is given. Topics under the URL's prefix (default `screentime`):
`<prefix>/events` (new/update/end, see stream/outputs/segments.py), `<prefix>/<source>/state` and
`<prefix>/<source>/totals` (retained), `<prefix>/available` (retained: `online` on every
connect, `offline` on a clean stop, and the broker's last will `offline` when the process dies).

A broker that goes away never stalls the analysis: paho's network thread reconnects with capped
backoff while messages wait in the bounded outbox (stream/outputs/outbox.py); on every (re)connect the
latest retained state and totals are published again, since a restarted broker may have lost them.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from stream.defaults import MQTT_PREFIX
from stream.errors import BadInputError
from stream.outputs.outbox import OUTBOX_CAPACITY, Message, Sender
from stream.sources.open import mask_url

log = logging.getLogger(__name__)

PORTS = {"mqtt": 1883, "mqtts": 8883}
KEEPALIVE_S = 15  # a half-open connection to a broker is noticed within 1.5x this
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.5, 10.0  # paho's backoff between connection attempts
QOS = 1  # at least once: QoS 1 messages wait in paho across a short disconnection
AVAILABLE = "available"


@dataclass(frozen=True)
class MqttTarget:
    """A broker from `mqtt://[user:pass@]host[:port][/prefix]` (`mqtts://` for TLS)."""

    host: str
    port: int
    prefix: str
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> MqttTarget:
        shown = mask_url(url)
        parts = urlsplit(url)
        if parts.scheme not in PORTS:
            raise BadInputError(f"--mqtt {shown}: expected mqtt://[user:pass@]host[:port][/prefix] (or mqtts://)")
        try:
            port = parts.port or PORTS[parts.scheme]
        except ValueError:
            raise BadInputError(f"--mqtt {shown}: bad port") from None
        if not parts.hostname:
            raise BadInputError(f"--mqtt {shown}: no host")
        prefix = parts.path.strip("/") or MQTT_PREFIX
        if any(c in prefix for c in "+#") or "//" in prefix:
            raise BadInputError(f"--mqtt {shown}: the topic prefix may not contain '+', '#' or empty levels")
        return cls(
            host=parts.hostname,
            port=port,
            prefix=prefix,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            tls=parts.scheme == "mqtts",
        )

    @property
    def shown(self) -> str:
        """The broker as logs show it: never the password."""
        user = f"{self.username}:***@" if self.password is not None else f"{self.username}@" if self.username else ""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{user}{self.host}:{self.port}/{self.prefix}"


class MqttSender(Sender):
    """One connection per run (one last will), shared by every source's EventSink."""

    kind = "mqtt"

    def __init__(self, target: MqttTarget, capacity: int = OUTBOX_CAPACITY) -> None:
        super().__init__(capacity)
        self.target = target
        self._connected = threading.Event()
        self._closing = False
        self._retained: dict[str, Message] = {}  # topic -> latest: published again on every connect
        self._retained_lock = threading.Lock()
        self._warned = False
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"screentime-{os.getpid()}-{secrets.token_hex(3)}",
            protocol=mqtt.MQTTv311,
        )
        if target.username is not None:
            client.username_pw_set(target.username, target.password)
        if target.tls:
            client.tls_set()
        client.will_set(self._full(AVAILABLE), "offline", qos=QOS, retain=True)
        # paho annotates the delays as int, but sleeps for them as seconds: a float works as one.
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)  # type: ignore[arg-type]
        client.max_queued_messages_set(capacity)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._client = client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def put(self, message: Message) -> None:
        if message.retain:
            with self._retained_lock:
                self._retained[message.topic] = message
        super().put(message)

    def _full(self, topic: str) -> str:
        return f"{self.target.prefix}/{topic}"

    # -- Sender ---------------------------------------------------------------------------------

    def _connect(self) -> None:
        log.info("MQTT: publishing to %s", self.target.shown)
        self._client.connect_async(self.target.host, self.target.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()  # its thread connects, and reconnects with backoff, for as long as it runs

    def _deliver(self, message: Message) -> bool | None:
        if not self._connected.wait(0.5):
            return False
        info = self._client.publish(self._full(message.topic), message.payload, qos=QOS, retain=message.retain)
        return None if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE else True  # full: a broker that acknowledges nothing

    def _disconnect(self) -> None:
        self._closing = True
        try:
            if self._connected.is_set():
                info = self._client.publish(self._full(AVAILABLE), "offline", qos=QOS, retain=True)
                info.wait_for_publish(timeout=2.0)  # QoS 1 in order: everything before it is through too
        except (RuntimeError, ValueError) as exc:
            log.warning("MQTT: %s: could not say offline (%s)", self.target.shown, exc)
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    # -- paho's callbacks (its network thread) ---------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT: %s refused the connection: %s", self.target.shown, reason_code)
            return
        client.publish(self._full(AVAILABLE), "online", qos=QOS, retain=True)
        with self._retained_lock:
            latest = list(self._retained.values())
        for message in latest:  # a restarted broker may have lost them
            client.publish(self._full(message.topic), message.payload, qos=QOS, retain=True)
        if self._warned:
            log.info("MQTT: %s is back", self.target.shown)
            self._warned = False
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._closing and not self._warned:
            log.warning("MQTT: lost %s (%s); reconnecting, the analysis goes on", self.target.shown, reason_code)
            self._warned = True

    def _on_connect_fail(self, client, userdata) -> None:
        if not self._warned:
            log.warning("MQTT: cannot reach %s; retrying, the analysis goes on", self.target.shown)
            self._warned = True
