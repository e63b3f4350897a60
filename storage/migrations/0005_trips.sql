-- Trips and driving events written by the trip processor, and the processor's own state.
CREATE TABLE trips (
    id                     bigserial PRIMARY KEY,
    device_id              bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    start_ts               timestamptz NOT NULL,
    end_ts                 timestamptz NOT NULL,
    start_lat              double precision NOT NULL,
    start_lon              double precision NOT NULL,
    end_lat                double precision NOT NULL,
    end_lon                double precision NOT NULL,
    distance_m             double precision NOT NULL,
    duration_s             double precision NOT NULL,
    moving_s               double precision NOT NULL,
    idle_s                 double precision NOT NULL,
    max_speed_kmh          double precision NOT NULL,
    mean_speed_kmh         double precision NOT NULL,
    night_m                double precision NOT NULL,
    urban_m                double precision NOT NULL,
    extra_urban_m          double precision NOT NULL,
    highway_m              double precision NOT NULL,
    road_class_source      text NOT NULL,
    speeding_s             double precision NOT NULL,
    speeding_excess_kmh_s  double precision NOT NULL,
    n_fixes                integer NOT NULL,
    event_counts           jsonb NOT NULL,
    event_severity         jsonb NOT NULL,
    score                  double precision NOT NULL,
    score_smoothness       double precision NOT NULL,
    score_speed            double precision NOT NULL,
    score_time_of_day      double precision NOT NULL,
    processed_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, start_ts)
);

CREATE TABLE trip_events (
    id              bigserial PRIMARY KEY,
    device_id       bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    trip_start_ts   timestamptz,
    ts              timestamptz NOT NULL,
    lat             double precision NOT NULL,
    lon             double precision NOT NULL,
    type            text NOT NULL,
    severity        smallint NOT NULL,
    value           real NOT NULL,
    duration_s      real NOT NULL,
    UNIQUE (device_id, ts, type)
);
CREATE INDEX trip_events_trip ON trip_events (device_id, trip_start_ts);

-- One row per processor: its serialised per-device state and the arrival time it covers.
CREATE TABLE processor_state (
    name        text PRIMARY KEY,
    state       bytea NOT NULL,
    covers_received_before timestamptz NOT NULL,
    saved_at    timestamptz NOT NULL DEFAULT now()
);
