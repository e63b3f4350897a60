-- Issued certificates: the signed canonical JSON exactly as signed, its Ed25519 signature and key id.
-- The JSON document and the PDF are rebuilt from these bytes, so they never drift from what was signed.
CREATE TABLE certificates (
    id          text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('fine_assist', 'driving_style', 'vehicle_usage')),
    device_id   bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    owner       text,
    body        bytea NOT NULL,
    signature   bytea NOT NULL CHECK (length(signature) = 64),
    key_id      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX certificates_device ON certificates (device_id, created_at);
CREATE INDEX certificates_owner ON certificates (owner, created_at);
