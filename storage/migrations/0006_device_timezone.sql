-- The IANA time zone where a device lives: night driving is judged in local time.
ALTER TABLE devices ADD COLUMN timezone text NOT NULL DEFAULT 'UTC';
