-- People who log in to the API. A customer account names the customer it acts for (``customer_id``, the
-- value kept in devices.owner: several logins may share one customer, e.g. a household); an operator of
-- the assistance centre has none and sees every device. Only argon2id hashes are stored.
CREATE TABLE accounts (
    id                   bigserial PRIMARY KEY,
    username             text NOT NULL UNIQUE,
    email                text NOT NULL,
    role                 text NOT NULL CHECK (role IN ('customer', 'operator')),
    customer_id          text,
    password_hash        text NOT NULL,
    -- Consecutive failed logins since the last success or lock; reaching the limit locks the account.
    failed_logins        integer NOT NULL DEFAULT 0,
    locked_until         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    password_changed_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'customer') = (customer_id IS NOT NULL AND customer_id <> ''))
);
CREATE INDEX accounts_customer ON accounts (customer_id);

-- Refresh tokens: only a SHA-256 of each opaque token is kept. Every login starts a family; each use
-- rotates the token (the old one is marked used). A used token presented again means it leaked, and
-- the whole family is revoked.
CREATE TABLE refresh_tokens (
    id           bigserial PRIMARY KEY,
    token_hash   bytea NOT NULL UNIQUE,
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    family       bigint NOT NULL,
    issued_at    timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_account ON refresh_tokens (account_id);

-- Pending sensitive changes (password, e-mail) waiting for their 6-digit code. The code is kept as an
-- HMAC under the server key; ``change`` holds what is applied once the code is confirmed.
CREATE TABLE confirmations (
    id           text PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    purpose      text NOT NULL CHECK (purpose IN ('password', 'email')),
    change       jsonb NOT NULL,
    code_mac     bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    confirmed_at timestamptz
);
CREATE INDEX confirmations_account ON confirmations (account_id);
