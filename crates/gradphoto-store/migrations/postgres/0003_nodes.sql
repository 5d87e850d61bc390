-- Many nodes, one service. PostgreSQL dialect (see ../sqlite): claims take rows with FOR UPDATE SKIP LOCKED.

-- An outbox row is claimed for a while by the node delivering it (a lease): two nodes never deliver the same row
-- at once, and a node that dies mid-delivery leaves a lease that expires, after which another node takes the row.
ALTER TABLE outbox ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
CREATE INDEX outbox_claim ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;

-- Sign-in attempts per client address (a keyed hash of it, never the address), in windows of a minute, counted
-- here so that every node limits alike.
CREATE TABLE rate_windows (
    key BYTEA PRIMARY KEY,
    window_start BIGINT NOT NULL,
    count BIGINT NOT NULL
);

-- Periodic jobs (payment reconciliation, purges) run on one node per period: the node whose claim of the job's
-- lease succeeds.
CREATE TABLE job_leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);
