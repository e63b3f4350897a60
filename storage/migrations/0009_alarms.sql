-- Alarms and the assistance centre (issue 6). One open alarm per (device, type); every change is an
-- append-only audit row, which is also the operator stream (its id is the stream cursor).
CREATE TABLE alarms (
    id                    bigserial PRIMARY KEY,
    device_id             bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    type                  text NOT NULL,
    severity              text NOT NULL CHECK (severity IN ('warning', 'minor', 'major', 'critical')),
    active                boolean NOT NULL DEFAULT true,
    acknowledged          boolean NOT NULL DEFAULT false,
    count                 integer NOT NULL DEFAULT 1,
    first_ts              timestamptz NOT NULL,
    last_ts               timestamptz NOT NULL,
    raised_at             timestamptz NOT NULL,
    last_seen_at          timestamptz,
    acknowledged_at       timestamptz,
    acknowledged_by       text,
    assignee              text,
    assigned_at           timestamptz,
    cleared_at            timestamptz,
    cleared_by            text,
    resolved_at           timestamptz,
    resolved_by           text,
    outcome               text CHECK (outcome IN ('real_emergency', 'false_alarm', 'test', 'no_answer')),
    customer_feedback     text,
    customer_feedback_at  timestamptz,
    escalation_level      integer NOT NULL DEFAULT 0,
    next_step             integer NOT NULL DEFAULT 0,
    next_step_at          timestamptz,
    stale                 boolean NOT NULL DEFAULT false,
    event_id              text,
    sensor                text,
    lat                   double precision,
    lon                   double precision
);
CREATE UNIQUE INDEX alarms_one_open ON alarms (device_id, type) WHERE resolved_at IS NULL;
CREATE INDEX alarms_due ON alarms (next_step_at) WHERE next_step_at IS NOT NULL;
CREATE INDEX alarms_device ON alarms (device_id, raised_at);

CREATE TABLE alarm_audit (
    id        bigserial PRIMARY KEY,
    alarm_id  bigint NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    actor     text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}',
    alarm     jsonb NOT NULL
);
CREATE INDEX alarm_audit_alarm ON alarm_audit (alarm_id, id);
-- Append-only: an audit row is never rewritten (rows go only with their alarm's device).
CREATE FUNCTION alarm_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alarm_audit is append-only';
END $$;
CREATE TRIGGER alarm_audit_no_update BEFORE UPDATE ON alarm_audit
    FOR EACH ROW EXECUTE FUNCTION alarm_audit_append_only();

-- An escalation step runs once: its row is inserted in the transaction that enqueues its notices.
CREATE TABLE alarm_steps (
    alarm_id     bigint NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    step         integer NOT NULL,
    executed_at  timestamptz NOT NULL,
    PRIMARY KEY (alarm_id, step)
);

-- Device events the alarm service has applied, whichever path brought them (bus or catch-up sweep).
CREATE TABLE alarm_inputs (
    device_id     bigint NOT NULL,
    event_id      text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, event_id)
);

CREATE TABLE alarm_arming (
    device_id   bigint PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    armed       boolean NOT NULL,
    changed_ts  timestamptz NOT NULL
);

-- Supervision: when each device was last heard of (events; fixes are read from device_last_fix).
CREATE TABLE alarm_liveness (
    device_id     bigint PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    last_seen_at  timestamptz NOT NULL,
    battery_pct   real
);

CREATE TABLE alarm_cursor (
    name          text PRIMARY KEY,
    swept_until   timestamptz NOT NULL
);

-- The catch-up sweep reads device events by arrival time.
CREATE INDEX device_events_received ON device_events (received_at);
