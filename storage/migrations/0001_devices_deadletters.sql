-- Devices known to the platform. ``id`` is the dense integer code carried inside batches;
-- ``device_id`` is the external id (IMEI, serial) used in MQTT topics and the API.
CREATE TABLE devices (
    id          bigserial PRIMARY KEY,
    device_id   text NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('car', 'home', 'pet')),
    owner       text,
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('provisioned', 'active', 'suspended', 'returned')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_owner ON devices (owner);

-- Every rejected device message, whole, with the reason it was refused: nothing is lost.
CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '',
    payload      bytea NOT NULL
);
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at);

-- The newest fix per device, kept by the writer so Find-Vehicle is one primary-key read.
CREATE TABLE device_last_fix (
    device_id    bigint PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    ts           timestamptz NOT NULL,
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    speed_kmh    real,
    heading_deg  real,
    accuracy_m   real,
    ignition     boolean,
    received_at  timestamptz NOT NULL
);

CREATE TABLE storage_meta (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
