-- Geofences: customers' car areas and pets' virtual fences, and the transitions the geofence processor
-- found. ``fences.id`` is the fence_id the geofence core and its events use.
CREATE TABLE fences (
    id          bigserial PRIMARY KEY,
    owner       text NOT NULL,              -- customer id
    -- customer: applies to all the owner's cars; vehicle: to one car; pet: to one pet (its own fences).
    scope       text NOT NULL CHECK (scope IN ('customer', 'vehicle', 'pet')),
    device_id   bigint REFERENCES devices (id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '',
    kind        text NOT NULL CHECK (kind IN ('circle', 'polygon')),
    geometry    jsonb NOT NULL,             -- GeoJSON Polygon, or Point (the centre) of a circle
    radius_m    double precision,           -- circles only
    anti_flap   jsonb NOT NULL DEFAULT '{}',  -- overrides of the core's defaults (geofence.shapes.AntiFlap)
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Soft delete: past events keep their fence; the processor drops it from the active set.
    deleted_at  timestamptz,
    CHECK ((scope = 'customer') = (device_id IS NULL)),
    CHECK ((kind = 'circle') = (radius_m IS NOT NULL))
);
CREATE INDEX fences_owner ON fences (owner, id) WHERE deleted_at IS NULL;
CREATE INDEX fences_device ON fences (device_id, id) WHERE deleted_at IS NULL;

-- One row bumped by every change to ``fences`` (statement trigger, so in the writer's transaction and
-- serialised by the row lock): the processor reloads its fence set when the number moves. A timestamp or
-- sequence would not do: transactions can commit out of their start order.
CREATE TABLE fence_set_version (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    version  bigint NOT NULL
);
INSERT INTO fence_set_version VALUES (true, 0);

CREATE FUNCTION bump_fence_set_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE fence_set_version SET version = version + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER fences_changed AFTER INSERT OR UPDATE OR DELETE ON fences
    FOR EACH STATEMENT EXECUTE FUNCTION bump_fence_set_version();

-- Transitions. A replay writes the same rows again, which the unique key turns into no-ops.
-- The processor's own state lives in processor_state (name 'geofence'), like the trip processor's.
CREATE TABLE geofence_events (
    id          bigserial PRIMARY KEY,
    device_id   bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    fence_id    bigint NOT NULL REFERENCES fences (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('enter', 'exit', 'cross')),
    ts          timestamptz NOT NULL,       -- the fix that confirmed it
    since       timestamptz NOT NULL,       -- first fix on the new side (enter/exit), previous fix (cross)
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    -- true: notices were queued to be sent; false: stored only (late data, or nobody to tell).
    notified    boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, fence_id, ts, kind)
);
CREATE INDEX geofence_events_device_ts ON geofence_events (device_id, ts);
CREATE INDEX geofence_events_fence_ts ON geofence_events (fence_id, ts);
