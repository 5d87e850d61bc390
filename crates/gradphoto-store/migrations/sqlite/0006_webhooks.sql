-- SQLite dialect (see ../postgres). Webhooks: a school's own systems follow its decisions and exports through one
-- URL, delivered by the outbox like the students' messages (docs/webhooks.md).

-- One webhook per school. The signing secret is sealed by the vault (as openids are), not hashed: the service
-- needs it to sign every delivery. last_* tell the admin how deliveries go.
CREATE TABLE webhooks (
    school_id BIGINT PRIMARY KEY REFERENCES schools (id),
    url TEXT NOT NULL,
    secret_cipher BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    last_delivered_at BIGINT,
    last_error TEXT,
    last_error_at BIGINT
);

-- An outbox row is for a student (site, WeChat) or for a school (webhook): student_id becomes nullable and
-- school_id names the school. SQLite cannot drop a NOT NULL, so the table is rebuilt with its rows, its indexes
-- and its AUTOINCREMENT sequence: an outbox id is a webhook's delivery id, which receivers de-duplicate on, so an
-- id once used must never come back.
CREATE TABLE outbox_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    student_id BIGINT REFERENCES students (id),
    channel TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'notice',
    payload TEXT NOT NULL DEFAULT '{}',
    dead_at BIGINT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    school_id BIGINT REFERENCES schools (id),
    CONSTRAINT outbox_recipient CHECK (student_id IS NOT NULL OR school_id IS NOT NULL)
);
INSERT INTO outbox_new (id, student_id, channel, title, body, attempts, next_attempt_at, delivered_at, last_error,
    created_at, kind, payload, dead_at, lease_until, lease_owner)
SELECT id, student_id, channel, title, body, attempts, next_attempt_at, delivered_at, last_error, created_at, kind,
    payload, dead_at, lease_until, lease_owner FROM outbox;
DELETE FROM sqlite_sequence WHERE name = 'outbox_new';
INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox_new', seq FROM sqlite_sequence WHERE name = 'outbox';
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt_at);
CREATE INDEX outbox_claim ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_school ON outbox (school_id) WHERE school_id IS NOT NULL;
