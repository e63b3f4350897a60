-- Broker accounts: one per device (username = the device's external id) plus gateway and simulator
-- accounts. Only PBKDF2 hashes in Mosquitto's password-file format are kept; the plaintext is shown once.
-- A device account is removed with its device; the CHECK keeps a device row tied to a device and an
-- account row free of one, so the generated ACL cannot hand device patterns to the wrong kind of user.
CREATE TABLE mqtt_credentials (
    username       text PRIMARY KEY,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('device', 'gateway', 'simulator')),
    device_id      bigint NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'device') = (device_id IS NOT NULL))
);
CREATE INDEX mqtt_credentials_device ON mqtt_credentials (device_id);
