-- SQLite dialect (see ../postgres). Machine credentials: a school's own systems call the API with a bearer token.
-- Only the token's SHA-256 is kept (as for sessions); the secret is shown once when the token is made. `scopes` are
-- the scope ids it was given, comma-separated; a revoked token stays listed, with the time it stopped working.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id BIGINT NOT NULL REFERENCES schools (id),
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_by BIGINT NOT NULL REFERENCES staff (id),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_school ON api_tokens (school_id, id);
