-- The durable notification outbox: every notice to a customer or the assistance centre, once.
CREATE TABLE notifications (
    id               bigserial PRIMARY KEY,
    dedup_key        text NOT NULL UNIQUE,
    recipient        text NOT NULL,
    channel          text NOT NULL CHECK (channel IN ('push', 'sms', 'email', 'supervisor')),
    subject          text NOT NULL,
    body             text NOT NULL,
    event_ts         timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'failed', 'suppressed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    sent_at          timestamptz
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
