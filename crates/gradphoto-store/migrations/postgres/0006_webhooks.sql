-- PostgreSQL dialect (see ../sqlite). Webhooks: a school's own systems follow its decisions and exports through
-- one URL, delivered by the outbox like the students' messages (docs/webhooks.md).

-- One webhook per school. The signing secret is sealed by the vault (as openids are), not hashed: the service
-- needs it to sign every delivery. last_* tell the admin how deliveries go.
CREATE TABLE webhooks (
    school_id BIGINT PRIMARY KEY REFERENCES schools (id),
    url TEXT NOT NULL,
    secret_cipher BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    last_delivered_at BIGINT,
    last_error TEXT,
    last_error_at BIGINT
);

-- An outbox row is for a student (site, WeChat) or for a school (webhook): student_id becomes nullable and
-- school_id names the school. (SQLite rebuilds the table for this; here the columns change in place, the ids and
-- the identity sequence stay.)
ALTER TABLE outbox ALTER COLUMN student_id DROP NOT NULL;
ALTER TABLE outbox ADD COLUMN school_id BIGINT REFERENCES schools (id);
ALTER TABLE outbox ADD CONSTRAINT outbox_recipient CHECK (student_id IS NOT NULL OR school_id IS NOT NULL);
CREATE INDEX outbox_school ON outbox (school_id) WHERE school_id IS NOT NULL;
