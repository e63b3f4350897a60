-- Device events: home-kit sensor events, arm/disarm, heartbeats, pet SOS presses.
-- A device's own event id makes a replayed event a no-op.
CREATE TABLE device_events (
    id           bigserial PRIMARY KEY,
    device_id    bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    ts           timestamptz NOT NULL,
    type         text NOT NULL,
    sensor       text,
    event_id     text,
    value        real,
    lat          double precision,
    lon          double precision,
    accuracy_m   real,
    seq          bigint,
    late         boolean NOT NULL DEFAULT false,
    received_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX device_events_dedup ON device_events (device_id, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX device_events_device_ts ON device_events (device_id, ts);
