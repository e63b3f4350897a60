-- The customer behind devices.owner (accounts.customer_id): who the assistance centre calls and where help
-- is sent. One row per customer, shared by every login of that customer (a household).
CREATE TABLE customers (
    customer_id   text PRIMARY KEY CHECK (customer_id <> '' AND length(customer_id) <= 64),
    display_name  text NOT NULL,
    -- Postal address of the insured place (home kit, pets' home); country is ISO 3166-1 alpha-2.
    street        text NOT NULL,
    postal_code   text NOT NULL,
    city          text NOT NULL,
    country       text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    -- Where the address is (WGS84 degrees), for the console's map; both or neither.
    lat           double precision CHECK (lat BETWEEN -90 AND 90),
    lon           double precision CHECK (lon BETWEEN -180 AND 180),
    phone         text NOT NULL,
    email         text,
    language      text NOT NULL,
    -- Free text for whoever is sent: door code, key safe, "dog in the yard".
    instructions  text,
    -- Emergency and verification contacts in calling order: [{name, phone, relation, keyholder}]. An
    -- ordered JSON array rather than a child table: it is always read and replaced whole, with the profile.
    contacts      jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(contacts) = 'array' AND jsonb_array_length(contacts) <= 5),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text NOT NULL,
    CHECK ((lat IS NULL) = (lon IS NULL))
);
